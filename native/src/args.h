// Argument checks for the JS-facing functions. Each throws a TypeError or RangeError that
// names the argument, so a bad call fails before any work is queued.
//
// Order matters: reading an object's field can run the caller's JavaScript (a getter), which
// can detach, transfer or shrink any ArrayBuffer. So every object is read before an input
// typed array's pointer and length are taken; between those and queueing the work, no
// JavaScript runs (allocating an output can collect garbage, but the arguments stay reachable
// and their off-heap bytes do not move).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "image_ops.h"

namespace moead {

// A typed array's bytes as the addon sees them (no copy).
template <typename T>
struct View {
  Napi::TypedArray array;
  T* data = nullptr;
  size_t length = 0;  // elements
};

// Uint8Array / Buffer / Uint8ClampedArray of exactly `expected` bytes (any length when 0).
View<uint8_t> Uint8Arg(const Napi::Value& value, const char* name, uint64_t expected);
// Float32Array of exactly `expected` elements.
View<float> Float32Arg(const Napi::Value& value, const char* name, uint64_t expected);
// A new Float32Array of `length` elements, or the caller's `out` if given (checked).
View<float> OutputFloat32(Napi::Env env, const Napi::Value& out, const char* name, uint64_t length);

uint32_t UintArg(const Napi::Value& value, const std::string& name, uint32_t min, uint32_t max);
double NumberArg(const Napi::Value& value, const std::string& name);
bool BoolArg(const Napi::Value& value, const std::string& name);
Napi::Object ObjectArg(const Napi::Value& value, const std::string& name);

// A camera frame: format name, size, and the bytes checked against them.
struct FrameArg {
  View<uint8_t> bytes;
  PixelFormat format;
  uint32_t width;
  uint32_t height;
};
FrameArg ParseFrame(const Napi::CallbackInfo& info, size_t first);  // (frame, format, width, height)

// { width, height, color: 'RGB'|'BGR', scale, mean: [3], std: [3] } as the manifest's input.
NormalizeSpec ParseNormalizeSpec(const Napi::Value& value);

// (map, width, height, { width, height, alignCorners, sigma, kernel }, withMap?): withMap
// false asks for the score alone.
PostprocessPlan ParsePostprocessPlan(const Napi::CallbackInfo& info, View<float>* map);

// (rgb, map, width, height, { low, high, alpha }).
HeatmapSpec ParseHeatmapSpec(const Napi::Value& value);

// The arguments of a heatmap call, checked, with a fresh output Buffer of width × height × 3.
struct HeatmapCall {
  uint32_t width;
  uint32_t height;
  uint64_t pixels;
  View<uint8_t> rgb;
  View<float> map;
  HeatmapSpec spec;
  Napi::Buffer<uint8_t> out;
};
HeatmapCall ParseHeatmapCall(const Napi::CallbackInfo& info);

// The arguments of a snapshot overlay call, (rgb, width, height, map, mapWidth, mapHeight,
// { low, high }), checked (the map no larger than the frame), with a fresh output Buffer.
struct OverlayCall {
  uint32_t width;
  uint32_t height;
  View<uint8_t> rgb;
  uint32_t map_width;
  uint32_t map_height;
  View<float> map;
  float low;
  float high;
  Napi::Buffer<uint8_t> out;
};
OverlayCall ParseOverlayCall(const Napi::CallbackInfo& info);

}  // namespace moead
