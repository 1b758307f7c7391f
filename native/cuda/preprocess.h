// CUDA: camera frame → antialiased bilinear resize → normalized planar float32 CHW, the same
// definition as the CPU kernel (Preprocess in image_ops.h): a horizontal pass into a scratch
// buffer, then a vertical pass that also normalizes.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "image_ops.h"

namespace moead {

// Floats of scratch space cudaPreprocess needs for a frame `height` rows high.
inline size_t PreprocessScratchElements(uint32_t height, const NormalizeSpec& spec) {
  return static_cast<size_t>(height) * spec.width * 3;
}

// `frame`, `scratch` and `out` are device pointers; the caller has checked the frame's size
// against (format, width, height) on the host. `out` holds 3 × spec.height × spec.width floats.
cudaError_t cudaPreprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                           const NormalizeSpec& spec, float* scratch, float* out, cudaStream_t stream);

}  // namespace moead
