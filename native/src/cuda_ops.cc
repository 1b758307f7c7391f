// CUDA entry points, with the same arguments and checks as the CPU ones (cpu_ops.cc). Each
// call copies its inputs to the device, runs the kernels on its own stream and copies the
// result back; they exist for parity tests and benchmarks, and the TensorRT runner calls
// the kernels on device memory directly.
#include <napi.h>

#include <memory>
#include <vector>

#include "args.h"
#include "device_buffer.h"
#include "heatmap.h"
#include "ops.h"
#include "postprocess.h"
#include "preprocess.h"
#include "task_worker.h"

namespace moead {

namespace {

template <typename T>
void Upload(DeviceBuffer<T>& dst, const T* src, size_t count, const Stream& stream) {
  dst.Resize(count);
  CudaThrow(cudaMemcpyAsync(dst.get(), src, count * sizeof(T), cudaMemcpyHostToDevice, stream.get()), "upload");
}

template <typename T>
void Download(T* dst, const DeviceBuffer<T>& src, size_t count, const Stream& stream) {
  CudaThrow(cudaMemcpyAsync(dst, src.get(), count * sizeof(T), cudaMemcpyDeviceToHost, stream.get()), "download");
}

Napi::Value CudaPreprocessJs(const Napi::CallbackInfo& info) {
  // Object first, buffers last (args.h says why).
  const NormalizeSpec spec = ParseNormalizeSpec(info[4]);
  const size_t n = 3ull * spec.width * spec.height;
  const View<float> out = OutputFloat32(info.Env(), info[5], "out", n);
  const FrameArg frame = ParseFrame(info, 0);
  return TaskWorker::Start(
      info.Env(), {frame.bytes.array, out.array},
      [frame, spec, dst = out.data, n] {
        Stream stream;
        DeviceBuffer<uint8_t> d_frame;
        DeviceBuffer<float> d_out(n), d_scratch(PreprocessScratchElements(frame.height, spec));
        Upload(d_frame, frame.bytes.data, frame.bytes.length, stream);
        CudaThrow(cudaPreprocess(d_frame.get(), frame.format, frame.width, frame.height, spec, d_scratch.get(), d_out.get(),
                                 stream.get()),
                  "cudaPreprocess");
        Download(dst, d_out, n, stream);
        stream.Sync();
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[1].Value(); });
}

Napi::Value CudaPostprocessJs(const Napi::CallbackInfo& info) {
  View<float> map;
  const PostprocessPlan plan = ParsePostprocessPlan(info, &map);
  const size_t n = static_cast<size_t>(plan.out_width) * plan.out_height;
  // Score alone (withMap false): the map is not downloaded (see PostprocessJs in cpu_ops.cc).
  std::vector<Napi::Value> keep{map.array};
  float* dst = nullptr;
  if (plan.with_map) {
    const View<float> out = OutputFloat32(info.Env(), Napi::Value(), "out", n);
    keep.push_back(out.array);
    dst = out.data;
  }
  auto score = std::make_shared<float>(0.0f);
  return TaskWorker::Start(
      info.Env(), keep,
      [src = map.data, src_n = map.length, dst, n, plan, score] {
        Stream stream;
        DeviceBuffer<float> d_map, d_out(n), d_scratch(n), d_weights(GaussianTaps(plan.sigma) + 1);
        DeviceBuffer<unsigned> d_score(1);
        Upload(d_map, src, src_n, stream);
        const PostprocessBuffers buffers{d_out.get(), d_scratch.get(), d_weights.get(), d_score.get()};
        CudaThrow(cudaPostprocess(d_map.get(), plan, buffers, stream.get()), "cudaPostprocess");
        unsigned bits = 0;
        if (dst != nullptr) Download(dst, d_out, n, stream);
        CudaThrow(cudaMemcpyAsync(&bits, d_score.get(), sizeof bits, cudaMemcpyDeviceToHost, stream.get()), "download");
        stream.Sync();
        *score = ScoreFromBits(bits);
      },
      MapAndScoreResult(score));
}

Napi::Value CudaHeatmapJs(const Napi::CallbackInfo& info) {
  const HeatmapCall call = ParseHeatmapCall(info);
  return TaskWorker::Start(
      info.Env(), {call.rgb.array, call.map.array, call.out},
      [src = call.rgb.data, m = call.map.data, width = call.width, height = call.height, px = call.pixels,
       spec = call.spec, dst = call.out.Data()] {
        Stream stream;
        DeviceBuffer<uint8_t> d_rgb, d_out(px * 3);
        DeviceBuffer<float> d_map;
        Upload(d_rgb, src, px * 3, stream);
        Upload(d_map, m, px, stream);
        CudaThrow(cudaHeatmap(d_rgb.get(), d_map.get(), width, height, spec, d_out.get(), stream.get()), "cudaHeatmap");
        Download(dst, d_out, px * 3, stream);
        stream.Sync();
      },
      [](Napi::Env, const std::vector<Napi::ObjectReference>& kept) { return kept[2].Value(); });
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  // No driver, no device, or a driver older than the runtime: all mean no usable GPU here.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

void RegisterCudaOps(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaPreprocess", Napi::Function::New(env, CudaPreprocessJs, "cudaPreprocess"));
  exports.Set("cudaPostprocess", Napi::Function::New(env, CudaPostprocessJs, "cudaPostprocess"));
  exports.Set("cudaHeatmap", Napi::Function::New(env, CudaHeatmapJs, "cudaHeatmap"));
  exports.Set("cudaDeviceCount",
              Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), CudaDeviceCount()); }, "cudaDeviceCount"));
}

}  // namespace moead
