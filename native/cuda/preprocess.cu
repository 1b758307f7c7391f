#include "cuda_check.h"
#include "pixel_math.h"
#include "preprocess.h"

namespace moead {

namespace {

// Mean and std travel by value so that concurrent calls on different streams never share state.
struct Norm {
  float scale;
  float mean[3];
  float std[3];
  int src_of[3];
};

// One thread per output pixel, all three channels. Taps are computed in double (as the CPU
// kernel does) so both pick the same source pixels and weights; the blend runs in float.
__global__ void preprocess_kernel(const uint8_t* frame, PixelFormat format, int width, int height, int out_w,
                                  int out_h, Norm norm, float* out) {
  const int ox = blockIdx.x * blockDim.x + threadIdx.x;
  const int oy = blockIdx.y * blockDim.y + threadIdx.y;
  if (ox >= out_w || oy >= out_h) return;
  const Tap<double> tx = BilinearTap<double>(ox, width, out_w, false);
  const Tap<double> ty = BilinearTap<double>(oy, height, out_h, false);
  float p00[3], p01[3], p10[3], p11[3];
  LoadRgb<float>(frame, format, width, height, tx.i0, ty.i0, p00);
  LoadRgb<float>(frame, format, width, height, tx.i1, ty.i0, p01);
  LoadRgb<float>(frame, format, width, height, tx.i0, ty.i1, p10);
  LoadRgb<float>(frame, format, width, height, tx.i1, ty.i1, p11);
  const float fx = static_cast<float>(tx.f), fy = static_cast<float>(ty.f);
  const size_t plane = static_cast<size_t>(out_w) * out_h;
  const size_t o = static_cast<size_t>(oy) * out_w + ox;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    const int s = norm.src_of[c];
    const float top = p00[s] + (p01[s] - p00[s]) * fx;
    const float bottom = p10[s] + (p11[s] - p10[s]) * fx;
    const float v = top + (bottom - top) * fy;
    out[c * plane + o] = (v * norm.scale - norm.mean[c]) / norm.std[c];
  }
}

}  // namespace

cudaError_t cudaPreprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                           const NormalizeSpec& spec, float* out, cudaStream_t stream) {
  if (!frame || !out) return cudaErrorInvalidDevicePointer;
  if (width == 0 || height == 0 || spec.width == 0 || spec.height == 0) return cudaErrorInvalidValue;
  Norm norm{spec.scale, {spec.mean[0], spec.mean[1], spec.mean[2]}, {spec.std[0], spec.std[1], spec.std[2]},
            {spec.bgr ? 2 : 0, 1, spec.bgr ? 0 : 2}};
  const dim3 block(16, 16);
  const dim3 grid(DivUp(spec.width, block.x), DivUp(spec.height, block.y));
  preprocess_kernel<<<grid, block, 0, stream>>>(frame, format, static_cast<int>(width), static_cast<int>(height),
                                                static_cast<int>(spec.width), static_cast<int>(spec.height), norm, out);
  return cudaGetLastError();
}

}  // namespace moead
