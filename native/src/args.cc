#include "args.h"

#include <cmath>
#include <limits>

namespace moead {

namespace {

std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_uint8_array: return "Uint8Array";
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      default: return "another TypedArray";
    }
  }
  if (v.IsArrayBuffer()) return "ArrayBuffer";
  if (v.IsArray()) return "Array";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "string \"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsBoolean()) return "boolean";
  return "object";
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& name, const std::string& expected, const Napi::Value& got) {
  throw Napi::TypeError::New(env, "Expected " + expected + " for " + name + " but received " + Describe(got));
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

}  // namespace

View<uint8_t> Uint8Arg(const Napi::Value& value, const char* name, uint64_t expected) {
  if (!value.IsTypedArray()) ThrowType(value.Env(), name, "a Buffer or Uint8Array", value);
  auto array = value.As<Napi::TypedArray>();
  const napi_typedarray_type type = array.TypedArrayType();
  if (type != napi_uint8_array && type != napi_uint8_clamped_array) ThrowType(value.Env(), name, "a Buffer or Uint8Array", value);
  auto u8 = value.As<Napi::Uint8Array>();
  if (expected != 0 && u8.ElementLength() != expected) {
    ThrowRange(value.Env(), std::string(name) + ": expected " + std::to_string(expected) + " bytes but received " +
                                std::to_string(u8.ElementLength()));
  }
  return View<uint8_t>{array, u8.Data(), u8.ElementLength()};
}

View<float> Float32Arg(const Napi::Value& value, const char* name, uint64_t expected) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(value.Env(), name, "a Float32Array", value);
  }
  auto f32 = value.As<Napi::Float32Array>();
  if (f32.ElementLength() != expected) {
    ThrowRange(value.Env(), std::string(name) + ": expected " + std::to_string(expected) + " float32 elements but received " +
                                std::to_string(f32.ElementLength()));
  }
  return View<float>{value.As<Napi::TypedArray>(), f32.Data(), f32.ElementLength()};
}

View<float> OutputFloat32(Napi::Env env, const Napi::Value& out, const char* name, uint64_t length) {
  if (!out.IsUndefined() && !out.IsNull()) return Float32Arg(out, name, length);
  auto created = Napi::Float32Array::New(env, length);
  return View<float>{created, created.Data(), created.ElementLength()};
}

uint32_t UintArg(const Napi::Value& value, const std::string& name, uint32_t min, uint32_t max) {
  const std::string expected = "an integer " + std::to_string(min) + ".." + std::to_string(max);
  if (!value.IsNumber()) ThrowType(value.Env(), name, expected, value);
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || std::floor(d) != d) ThrowType(value.Env(), name, expected, value);
  return static_cast<uint32_t>(d);
}

double NumberArg(const Napi::Value& value, const std::string& name) {
  if (!value.IsNumber() || !std::isfinite(value.As<Napi::Number>().DoubleValue())) {
    ThrowType(value.Env(), name, "a finite number", value);
  }
  return value.As<Napi::Number>().DoubleValue();
}

bool BoolArg(const Napi::Value& value, const std::string& name) {
  if (!value.IsBoolean()) ThrowType(value.Env(), name, "a boolean", value);
  return value.As<Napi::Boolean>().Value();
}

Napi::Object ObjectArg(const Napi::Value& value, const std::string& name) {
  if (!value.IsObject() || value.IsArray() || value.IsTypedArray()) ThrowType(value.Env(), name, "an object", value);
  return value.As<Napi::Object>();
}

FrameArg ParseFrame(const Napi::CallbackInfo& info, size_t first) {
  Napi::Env env = info.Env();
  if (!info[first + 1].IsString()) ThrowType(env, "format", "a pixel format name", info[first + 1]);
  const std::string name = info[first + 1].As<Napi::String>().Utf8Value();
  PixelFormat format;
  if (!ParsePixelFormat(name, &format)) {
    ThrowType(env, "format", "one of rgb24, bgr24, rgba, gray, yuyv, nv12", info[first + 1]);
  }
  const uint32_t width = UintArg(info[first + 2], "width", 1, kMaxSide);
  const uint32_t height = UintArg(info[first + 3], "height", 1, kMaxSide);
  uint64_t bytes = 0;
  std::string why;
  if (!FrameBytes(format, width, height, &bytes, &why)) {
    ThrowRange(env, "frame " + std::to_string(width) + "x" + std::to_string(height) + " " + name + ": " + why);
  }
  if (!info[first].IsTypedArray()) ThrowType(env, "frame", "a Buffer or Uint8Array", info[first]);
  const std::string label = "frame (" + name + " " + std::to_string(width) + "x" + std::to_string(height) + ")";
  return FrameArg{Uint8Arg(info[first], label.c_str(), bytes), format, width, height};
}

NormalizeSpec ParseNormalizeSpec(const Napi::Value& value) {
  Napi::Object o = ObjectArg(value, "spec");
  NormalizeSpec spec;
  spec.width = UintArg(o.Get("width"), "spec.width", 1, kMaxSide);
  spec.height = UintArg(o.Get("height"), "spec.height", 1, kMaxSide);
  const Napi::Value color = o.Get("color");
  const std::string c = color.IsString() ? color.As<Napi::String>().Utf8Value() : "";
  if (c != "RGB" && c != "BGR") ThrowType(value.Env(), "spec.color", "\"RGB\" or \"BGR\"", color);
  spec.bgr = c == "BGR";
  spec.scale = static_cast<float>(NumberArg(o.Get("scale"), "spec.scale"));
  for (const char* key : {"mean", "std"}) {
    const Napi::Value v = o.Get(key);
    const std::string name = std::string("spec.") + key;
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) ThrowType(value.Env(), name, "an array of 3 numbers", v);
    for (uint32_t i = 0; i < 3; ++i) {
      const double d = NumberArg(v.As<Napi::Array>().Get(i), name + "[" + std::to_string(i) + "]");
      if (key[0] == 's' && d <= 0) ThrowRange(value.Env(), name + "[" + std::to_string(i) + "] must be positive");
      (key[0] == 'm' ? spec.mean : spec.std)[i] = static_cast<float>(d);
    }
  }
  return spec;
}

PostprocessPlan ParsePostprocessPlan(const Napi::CallbackInfo& info, View<float>* map) {
  PostprocessPlan p{};
  p.in_width = UintArg(info[1], "width", 1, kMaxSide);
  p.in_height = UintArg(info[2], "height", 1, kMaxSide);
  Napi::Object o = ObjectArg(info[3], "plan");
  p.out_width = UintArg(o.Get("width"), "plan.width", 1, kMaxSide);
  p.out_height = UintArg(o.Get("height"), "plan.height", 1, kMaxSide);
  p.align_corners = BoolArg(o.Get("alignCorners"), "plan.alignCorners");
  p.sigma = NumberArg(o.Get("sigma"), "plan.sigma");
  if (p.sigma < 0 || p.sigma > 100) ThrowRange(info.Env(), "plan.sigma must be 0..100");
  p.kernel = UintArg(o.Get("kernel"), "plan.kernel", 0, kMaxSide);
  if (p.kernel > p.out_width || p.kernel > p.out_height) {
    ThrowRange(info.Env(), "plan.kernel " + std::to_string(p.kernel) + " is larger than the " + std::to_string(p.out_width) +
                               "x" + std::to_string(p.out_height) + " map");
  }
  if (info.Length() > 4 && !info[4].IsUndefined()) p.with_map = BoolArg(info[4], "withMap");
  // Last: the plan's getters above could have detached or shrunk the map's buffer.
  *map = Float32Arg(info[0], "map", static_cast<uint64_t>(p.in_width) * p.in_height);
  return p;
}

HeatmapSpec ParseHeatmapSpec(const Napi::Value& value) {
  Napi::Object o = ObjectArg(value, "spec");
  HeatmapSpec s;
  s.low = static_cast<float>(NumberArg(o.Get("low"), "spec.low"));
  s.high = static_cast<float>(NumberArg(o.Get("high"), "spec.high"));
  s.alpha = static_cast<float>(NumberArg(o.Get("alpha"), "spec.alpha"));
  if (!(s.high > s.low)) ThrowRange(value.Env(), "spec.high must be greater than spec.low");
  if (s.alpha < 0 || s.alpha > 1) ThrowRange(value.Env(), "spec.alpha must be 0..1");
  return s;
}

HeatmapCall ParseHeatmapCall(const Napi::CallbackInfo& info) {
  const uint32_t width = UintArg(info[2], "width", 1, kMaxSide);
  const uint32_t height = UintArg(info[3], "height", 1, kMaxSide);
  const uint64_t px = static_cast<uint64_t>(width) * height;
  const HeatmapSpec spec = ParseHeatmapSpec(info[4]);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(info.Env(), px * 3);
  const View<uint8_t> rgb = Uint8Arg(info[0], "rgb", px * 3);
  const View<float> map = Float32Arg(info[1], "map", px);
  return {width, height, px, rgb, map, spec, out};
}

OverlayCall ParseOverlayCall(const Napi::CallbackInfo& info) {
  const uint32_t width = UintArg(info[1], "width", 1, kMaxSide);
  const uint32_t height = UintArg(info[2], "height", 1, kMaxSide);
  const uint64_t px = static_cast<uint64_t>(width) * height;
  // Enlargement only: shrinking needs an antialiasing filter, which the sharp path has.
  const uint32_t map_width = UintArg(info[4], "mapWidth", 1, width);
  const uint32_t map_height = UintArg(info[5], "mapHeight", 1, height);
  Napi::Object o = ObjectArg(info[6], "spec");
  const float low = static_cast<float>(NumberArg(o.Get("low"), "spec.low"));
  const float high = static_cast<float>(NumberArg(o.Get("high"), "spec.high"));
  if (!(high > low)) ThrowRange(info.Env(), "spec.high must be greater than spec.low");
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(info.Env(), px * 3);
  const View<uint8_t> rgb = Uint8Arg(info[0], "rgb", px * 3);
  const View<float> map = Float32Arg(info[3], "map", static_cast<uint64_t>(map_width) * map_height);
  return {width, height, rgb, map_width, map_height, map, low, high, out};
}

}  // namespace moead
