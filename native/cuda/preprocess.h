// CUDA: camera frame → bilinear resize → normalized planar float32 CHW, one fused kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "image_ops.h"

namespace moead {

// `frame` and `out` are device pointers; the caller has checked the frame's size against
// (format, width, height) on the host. `out` holds 3 × spec.height × spec.width floats.
cudaError_t cudaPreprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                           const NormalizeSpec& spec, float* out, cudaStream_t stream);

}  // namespace moead
