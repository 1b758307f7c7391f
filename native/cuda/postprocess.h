// CUDA: the model map's post-processing (bilinear upsample, separable Gaussian blur, score),
// the same steps and definitions as the CPU kernels in src/image_ops.h.
#pragma once

#include <cuda_runtime.h>

#include "image_ops.h"

namespace moead {

// Device buffers one post-processing call needs, sized for plan.out_width × plan.out_height.
struct PostprocessBuffers {
  float* out = nullptr;      // the processed map (out_width × out_height)
  float* scratch = nullptr;  // the column-blurred intermediate (same size)
  float* weights = nullptr;  // 2 * radius + 1 Gaussian weights, radius = int(4 * sigma + 0.5)
  unsigned* score = nullptr; // one word: the score as an order-preserving uint (decode with ScoreFromBits)
};

inline size_t GaussianTaps(double sigma) { return sigma > 0 ? 2 * static_cast<size_t>(4.0 * sigma + 0.5) + 1 : 0; }

// `map` is the device copy of the low-resolution map. Queues all kernels on `stream`.
cudaError_t cudaPostprocess(const float* map, const PostprocessPlan& plan, const PostprocessBuffers& buffers,
                            cudaStream_t stream);

// Decodes the score word written by cudaPostprocess.
float ScoreFromBits(unsigned bits);

}  // namespace moead
