// CPU entry points: validate on the event loop, compute on the libuv pool.
#include <napi.h>

#include <memory>
#include <vector>

#include "args.h"
#include "image_ops.h"
#include "ops.h"
#include "task_worker.h"

namespace moead {

namespace {

// (frame, format, width, height, spec, out?) → Promise<Float32Array> (3 × spec.height × spec.width)
Napi::Value PreprocessJs(const Napi::CallbackInfo& info) {
  const FrameArg frame = ParseFrame(info, 0);
  const NormalizeSpec spec = ParseNormalizeSpec(info[4]);
  const View<float> out = OutputFloat32(info.Env(), info[5], "out", 3ull * spec.width * spec.height);
  return TaskWorker::Start(
      info.Env(), {frame.bytes.array, out.array},
      [frame_data = frame.bytes.data, format = frame.format, w = frame.width, h = frame.height, spec, dst = out.data] {
        Preprocess(frame_data, format, w, h, spec, dst);
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[1].Value(); });
}

// (map, width, height, plan) → Promise<{ map: Float32Array, score: number }>
Napi::Value PostprocessJs(const Napi::CallbackInfo& info) {
  View<float> map;
  const PostprocessPlan plan = ParsePostprocessPlan(info, &map);
  const View<float> out = OutputFloat32(info.Env(), Napi::Value(), "out", static_cast<uint64_t>(plan.out_width) * plan.out_height);
  auto score = std::make_shared<float>(0.0f);
  return TaskWorker::Start(
      info.Env(), {map.array, out.array},
      [src = map.data, dst = out.data, plan, score] {
        Upsample(src, plan.in_width, plan.in_height, dst, plan.out_width, plan.out_height, plan.align_corners);
        GaussianBlur(dst, plan.out_width, plan.out_height, plan.sigma, dst);
        *score = plan.kernel == 0 ? MaxScore(dst, plan.out_width, plan.out_height)
                                  : AvgPoolMaxScore(dst, plan.out_width, plan.out_height, plan.kernel);
      },
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

}  // namespace

void RegisterCpuOps(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocess", Napi::Function::New(env, PreprocessJs, "preprocess"));
  exports.Set("postprocess", Napi::Function::New(env, PostprocessJs, "postprocess"));
  exports.Set("heatmap", Napi::Function::New(env, HeatmapJs, "heatmap"));
}

}  // namespace moead
