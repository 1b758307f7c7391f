#include "cuda_check.h"
#include "heatmap.h"
#include "pixel_math.h"

namespace moead {

namespace {

__global__ void heatmap_kernel(const uint8_t* rgb, const float* map, size_t n, float low, float span, float alpha,
                               uint8_t* out) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float colour[3];
  ColourRamp<float>(RampPosition<float>(map[i], low, span), colour);
#pragma unroll
  for (int c = 0; c < 3; ++c) out[3 * i + c] = BlendChannel<float>(rgb[3 * i + c], colour[c], alpha);
}

}  // namespace

cudaError_t cudaHeatmap(const uint8_t* rgb, const float* map, uint32_t width, uint32_t height, const HeatmapSpec& spec,
                        uint8_t* out, cudaStream_t stream) {
  if (!rgb || !map || !out) return cudaErrorInvalidDevicePointer;
  if (width == 0 || height == 0 || !(spec.high > spec.low)) return cudaErrorInvalidValue;
  const size_t n = static_cast<size_t>(width) * height;
  heatmap_kernel<<<DivUp(static_cast<unsigned>(n), 256), 256, 0, stream>>>(rgb, map, n, spec.low, spec.high - spec.low,
                                                                           spec.alpha, out);
  return cudaGetLastError();
}

}  // namespace moead
