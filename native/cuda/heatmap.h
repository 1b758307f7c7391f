// CUDA: the anomaly map coloured and blended over an RGB frame (as Heatmap in image_ops.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "image_ops.h"

namespace moead {

// Device pointers: rgb and out hold width × height × 3 bytes, map width × height floats.
cudaError_t cudaHeatmap(const uint8_t* rgb, const float* map, uint32_t width, uint32_t height, const HeatmapSpec& spec,
                        uint8_t* out, cudaStream_t stream);

}  // namespace moead
