// CPU entry points: validate on the event loop, compute on the libuv pool.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "image_ops.h"
#include "ops.h"
#include "png_rows.h"
#include "task_worker.h"

namespace moead {

namespace {

// (frame, format, width, height, spec, out?) → Promise<Float32Array> (3 × spec.height × spec.width)
Napi::Value PreprocessJs(const Napi::CallbackInfo& info) {
  // Object first, buffers last (args.h says why).
  const NormalizeSpec spec = ParseNormalizeSpec(info[4]);
  const View<float> out = OutputFloat32(info.Env(), info[5], "out", 3ull * spec.width * spec.height);
  const FrameArg frame = ParseFrame(info, 0);
  return TaskWorker::Start(
      info.Env(), {frame.bytes.array, out.array},
      [frame_data = frame.bytes.data, format = frame.format, w = frame.width, h = frame.height, spec, dst = out.data] {
        Preprocess(frame_data, format, w, h, spec, dst);
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[1].Value(); });
}

// (scanlines, channels, width, height, spec, out?) → Promise<Float32Array>: an 8-bit,
// non-interlaced PNG's inflated IDAT (gray: 1 channel, RGB: 3, RGBA: 4) unfiltered in place,
// then preprocessed as a gray, rgb24 or rgba frame. The scanlines Buffer is scratch afterwards.
Napi::Value PreprocessPngJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t channels = UintArg(info[1], "channels", 1, 4);
  if (channels == 2) throw Napi::RangeError::New(env, "channels must be 1 (gray), 3 (RGB) or 4 (RGBA), not 2");
  const uint32_t width = UintArg(info[2], "width", 1, kMaxSide);
  const uint32_t height = UintArg(info[3], "height", 1, kMaxSide);
  const std::string label = "scanlines (" + std::to_string(width) + "x" + std::to_string(height) + ", " +
                            std::to_string(channels) + " channels)";
  const NormalizeSpec spec = ParseNormalizeSpec(info[4]);
  const View<float> out = OutputFloat32(env, info[5], "out", 3ull * spec.width * spec.height);
  const View<uint8_t> rows = Uint8Arg(info[0], label.c_str(), PngScanlineBytes(width, height, channels));
  const PixelFormat format = channels == 1 ? PixelFormat::kGray : channels == 3 ? PixelFormat::kRGB : PixelFormat::kRGBA;
  return TaskWorker::Start(
      env, {rows.array, out.array},
      [data = rows.data, format, channels, width, height, spec, dst = out.data] {
        UnfilterPngRows(data, width, height, channels);
        Preprocess(data, format, width, height, spec, dst);
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[1].Value(); });
}

// (map, width, height, plan, withMap = true) → Promise<{ map: Float32Array | null, score: number }>.
// Score alone (withMap false): the upsampled map stays in the pool thread's scratch. Every
// frame needs the score, only snapshots the map; a fresh 0.2 MB array per frame (224²) that
// nothing read was churning the allocator (docs/bench.md, memory).
Napi::Value PostprocessJs(const Napi::CallbackInfo& info) {
  View<float> map;
  const PostprocessPlan plan = ParsePostprocessPlan(info, &map);
  std::vector<Napi::Value> keep{map.array};
  float* dst = nullptr;
  if (plan.with_map) {
    const View<float> out = OutputFloat32(info.Env(), Napi::Value(), "out", static_cast<uint64_t>(plan.out_width) * plan.out_height);
    keep.push_back(out.array);
    dst = out.data;
  }
  auto score = std::make_shared<float>(0.0f);
  return TaskWorker::Start(
      info.Env(), keep, [src = map.data, dst, plan, score] { *score = PostprocessMap(src, plan, dst); },
      MapAndScoreResult(score));
}

// (rgb, map, width, height, { low, high, alpha }) → Promise<Buffer> (RGB, width × height × 3)
Napi::Value HeatmapJs(const Napi::CallbackInfo& info) {
  const HeatmapCall call = ParseHeatmapCall(info);
  return TaskWorker::Start(
      info.Env(), {call.rgb.array, call.map.array, call.out},
      [src = call.rgb.data, m = call.map.data, width = call.width, height = call.height, spec = call.spec,
       dst = call.out.Data()] { Heatmap(src, m, width, height, spec, dst); },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[2].Value(); });
}

// (rgb, width, height, map, mapWidth, mapHeight, { low, high }) → Promise<Buffer> (RGB, width × height × 3)
Napi::Value OverlayJs(const Napi::CallbackInfo& info) {
  const OverlayCall call = ParseOverlayCall(info);
  return TaskWorker::Start(
      info.Env(), {call.rgb.array, call.map.array, call.out},
      [src = call.rgb.data, width = call.width, height = call.height, m = call.map.data, mw = call.map_width,
       mh = call.map_height, low = call.low, high = call.high, dst = call.out.Data()] {
        SnapshotOverlay(src, width, height, m, mw, mh, low, high, dst);
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[2].Value(); });
}

}  // namespace

void RegisterCpuOps(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocess", Napi::Function::New(env, PreprocessJs, "preprocess"));
  exports.Set("preprocessPng", Napi::Function::New(env, PreprocessPngJs, "preprocessPng"));
  exports.Set("postprocess", Napi::Function::New(env, PostprocessJs, "postprocess"));
  exports.Set("heatmap", Napi::Function::New(env, HeatmapJs, "heatmap"));
  exports.Set("overlay", Napi::Function::New(env, OverlayJs, "overlay"));
}

}  // namespace moead
