#include <cstring>
#include <vector>

#include "cuda_check.h"
#include "pixel_math.h"
#include "postprocess.h"

namespace moead {

namespace {

// Floats map to unsigned words in the same order (negatives flipped), so atomicMax on the
// word is a max on the float.
__device__ __forceinline__ unsigned OrderedBits(float v) {
  const unsigned b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__global__ void upsample_kernel(const float* in, int iw, int ih, float* out, int ow, int oh, bool align_corners) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= ow || y >= oh) return;
  const Tap<double> tx = BilinearTap<double>(x, iw, ow, align_corners);
  const Tap<double> ty = BilinearTap<double>(y, ih, oh, align_corners);
  const float* r0 = in + static_cast<size_t>(ty.i0) * iw;
  const float* r1 = in + static_cast<size_t>(ty.i1) * iw;
  const float fx = static_cast<float>(tx.f), fy = static_cast<float>(ty.f);
  const float top = r0[tx.i0] + (r0[tx.i1] - r0[tx.i0]) * fx;
  const float bottom = r1[tx.i0] + (r1[tx.i1] - r1[tx.i0]) * fx;
  out[static_cast<size_t>(y) * ow + x] = top + (bottom - top) * fy;
}

// One pass of the separable blur: along columns (vertical, scipy's axis 0) or rows.
__global__ void blur_kernel(const float* in, int w, int h, const float* weights, int radius, bool vertical, float* out) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= w || y >= h) return;
  float acc = 0.f;
  for (int k = -radius; k <= radius; ++k) {
    const int sx = vertical ? x : ReflectIndex(x + k, w);
    const int sy = vertical ? ReflectIndex(y + k, h) : y;
    acc += weights[k + radius] * in[static_cast<size_t>(sy) * w + sx];
  }
  out[static_cast<size_t>(y) * w + x] = acc;
}

// Mean of the kernel×kernel window at each valid position, reduced to the maximum.
__global__ void window_max_kernel(const float* map, int w, int h, int kernel, unsigned* score) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  const int pw = w - kernel + 1, ph = h - kernel + 1;
  unsigned bits = 0;  // below every encoded float
  if (x < pw && y < ph) {
    float sum = 0.f;
    for (int dy = 0; dy < kernel; ++dy)
      for (int dx = 0; dx < kernel; ++dx) sum += map[static_cast<size_t>(y + dy) * w + x + dx];
    bits = OrderedBits(sum / static_cast<float>(kernel * kernel));
  }
  // Reduce within the block first: one atomic per block instead of per thread.
  __shared__ unsigned best[256];
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  best[t] = bits;
  __syncthreads();
  for (int s = (blockDim.x * blockDim.y) / 2; s > 0; s >>= 1) {
    if (t < s && best[t + s] > best[t]) best[t] = best[t + s];
    __syncthreads();
  }
  if (t == 0) atomicMax(score, best[0]);
}

}  // namespace

float ScoreFromBits(unsigned bits) {
  const unsigned b = (bits & 0x80000000u) ? (bits & 0x7fffffffu) : ~bits;
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

cudaError_t cudaPostprocess(const float* map, const PostprocessPlan& plan, const PostprocessBuffers& buffers,
                            cudaStream_t stream) {
  if (!map || !buffers.out || !buffers.score) return cudaErrorInvalidDevicePointer;
  const int iw = static_cast<int>(plan.in_width), ih = static_cast<int>(plan.in_height);
  const int ow = static_cast<int>(plan.out_width), oh = static_cast<int>(plan.out_height);
  if (iw <= 0 || ih <= 0 || ow <= 0 || oh <= 0 || static_cast<int>(plan.kernel) > ow || static_cast<int>(plan.kernel) > oh) {
    return cudaErrorInvalidValue;
  }
  const dim3 block(16, 16);
  const dim3 grid(DivUp(ow, block.x), DivUp(oh, block.y));
  upsample_kernel<<<grid, block, 0, stream>>>(map, iw, ih, buffers.out, ow, oh, plan.align_corners);
  MOEAD_CUDA_RETURN(cudaGetLastError());
  if (plan.sigma > 0) {
    if (!buffers.scratch || !buffers.weights) return cudaErrorInvalidDevicePointer;
    const std::vector<double> w64 = GaussianWeights(plan.sigma);
    const std::vector<float> w32(w64.begin(), w64.end());
    const int radius = static_cast<int>(w32.size() / 2);
    // From pageable memory this copy returns only once the host vector has been staged.
    MOEAD_CUDA_RETURN(cudaMemcpyAsync(buffers.weights, w32.data(), w32.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    blur_kernel<<<grid, block, 0, stream>>>(buffers.out, ow, oh, buffers.weights, radius, true, buffers.scratch);
    MOEAD_CUDA_RETURN(cudaGetLastError());
    blur_kernel<<<grid, block, 0, stream>>>(buffers.scratch, ow, oh, buffers.weights, radius, false, buffers.out);
    MOEAD_CUDA_RETURN(cudaGetLastError());
  }
  const int k = plan.kernel == 0 ? 1 : static_cast<int>(plan.kernel);
  MOEAD_CUDA_RETURN(cudaMemsetAsync(buffers.score, 0, sizeof(unsigned), stream));
  const dim3 pool_grid(DivUp(ow - k + 1, block.x), DivUp(oh - k + 1, block.y));
  window_max_kernel<<<pool_grid, block, 0, stream>>>(buffers.out, ow, oh, k, buffers.score);
  return cudaGetLastError();
}

}  // namespace moead
