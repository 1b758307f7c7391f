#include "cuda_check.h"
#include "pixel_math.h"
#include "preprocess.h"

namespace moead {

namespace {

// Mean and std travel by value so that concurrent calls on different streams share no state.
struct Norm {
  float scale;
  float mean[3];
  float std[3];
  int src_of[3];
};

// Pass 1: one thread per (output column, source row). Spans are computed in double, as on the
// CPU, so both read the same source pixels; the weighted sums run in float.
__global__ void resize_rows_kernel(const uint8_t* frame, PixelFormat format, int width, int height, int out_w,
                                   float* rows) {
  const int ox = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (ox >= out_w || y >= height) return;
  const AaSpan<double> s = AntialiasSpan<double>(ox, width, out_w);
  float total = 0.f, acc[3] = {0.f, 0.f, 0.f};
  for (int x = s.lo; x < s.hi; ++x) {
    const float w = static_cast<float>(AaWeight<double>(x, s));
    float rgb[3];
    LoadRgb<float>(frame, format, width, height, x, y, rgb);
    total += w;
#pragma unroll
    for (int c = 0; c < 3; ++c) acc[c] += w * rgb[c];
  }
  float* dst = rows + (static_cast<size_t>(y) * out_w + ox) * 3;
#pragma unroll
  for (int c = 0; c < 3; ++c) dst[c] = acc[c] / total;
}

// Pass 2: one thread per output pixel, down the columns of pass 1, then normalization.
__global__ void resize_cols_normalize_kernel(const float* rows, int height, int out_w, int out_h, Norm norm, float* out) {
  const int ox = blockIdx.x * blockDim.x + threadIdx.x;
  const int oy = blockIdx.y * blockDim.y + threadIdx.y;
  if (ox >= out_w || oy >= out_h) return;
  const AaSpan<double> s = AntialiasSpan<double>(oy, height, out_h);
  float total = 0.f, acc[3] = {0.f, 0.f, 0.f};
  for (int y = s.lo; y < s.hi; ++y) {
    const float w = static_cast<float>(AaWeight<double>(y, s));
    const float* px = rows + (static_cast<size_t>(y) * out_w + ox) * 3;
    total += w;
#pragma unroll
    for (int c = 0; c < 3; ++c) acc[c] += w * px[c];
  }
  const size_t plane = static_cast<size_t>(out_w) * out_h;
  const size_t o = static_cast<size_t>(oy) * out_w + ox;
#pragma unroll
  for (int c = 0; c < 3; ++c) out[c * plane + o] = (acc[norm.src_of[c]] / total * norm.scale - norm.mean[c]) / norm.std[c];
}

}  // namespace

cudaError_t cudaPreprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                           const NormalizeSpec& spec, float* scratch, float* out, cudaStream_t stream) {
  if (!frame || !scratch || !out) return cudaErrorInvalidDevicePointer;
  if (width == 0 || height == 0 || spec.width == 0 || spec.height == 0) return cudaErrorInvalidValue;
  const Norm norm{spec.scale, {spec.mean[0], spec.mean[1], spec.mean[2]}, {spec.std[0], spec.std[1], spec.std[2]},
                  {spec.bgr ? 2 : 0, 1, spec.bgr ? 0 : 2}};
  const dim3 block(16, 16);
  resize_rows_kernel<<<dim3(DivUp(spec.width, block.x), DivUp(height, block.y)), block, 0, stream>>>(
      frame, format, static_cast<int>(width), static_cast<int>(height), static_cast<int>(spec.width), scratch);
  MOEAD_CUDA_RETURN(cudaGetLastError());
  resize_cols_normalize_kernel<<<dim3(DivUp(spec.width, block.x), DivUp(spec.height, block.y)), block, 0, stream>>>(
      scratch, static_cast<int>(height), static_cast<int>(spec.width), static_cast<int>(spec.height), norm, out);
  return cudaGetLastError();
}

}  // namespace moead
