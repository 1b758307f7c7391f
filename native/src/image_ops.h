// CPU pre- and post-processing kernels. Plain C++ on raw pointers: the caller (addon.cc)
// has already checked every size, so these never see a buffer shorter than its shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pixel_math.h"

namespace moead {

// Largest frame or map side accepted; keeps every index inside int and every product
// inside int64 without further checks.
constexpr uint32_t kMaxSide = 16384;

// Parses "rgb24" | "bgr24" | "rgba" | "gray" | "yuyv" | "nv12" (the capture contract's names).
bool ParsePixelFormat(const std::string& name, PixelFormat* format);
const char* PixelFormatName(PixelFormat format);

// Bytes of one whole frame; false with the reason in `why` for a shape the format cannot
// have (odd width for YUYV, odd width or height for NV12, a side of 0 or above kMaxSide).
bool FrameBytes(PixelFormat format, uint32_t width, uint32_t height, uint64_t* bytes, std::string* why);

// The model input: out = (pixel * scale - mean[c]) / std[c], channel c in `bgr` order.
struct NormalizeSpec {
  uint32_t width = 0;
  uint32_t height = 0;
  bool bgr = false;
  float scale = 1.0f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

// Camera frame → antialiased bilinear resize (AntialiasSpan in pixel_math.h) → normalized planar
// float32 CHW (3 × spec.height × spec.width). Colour conversion happens at each source pixel.
void Preprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                const NormalizeSpec& spec, float* out);

// What the host does to the model's low-resolution map (the manifest's postprocess section).
struct PostprocessPlan {
  uint32_t in_width = 0, in_height = 0;
  uint32_t out_width = 0, out_height = 0;
  bool align_corners = false;
  double sigma = 0;
  uint32_t kernel = 0;  // 0: plain max; else avgpool_max with this window
  // Whether the caller gets the full-size map back, or only the score computed from it.
  bool with_map = true;
};

// Upsample, blur and score: the map goes to `out` (out_width × out_height), or with `out`
// null to this thread's scratch, where only the score is read from it.
float PostprocessMap(const float* in, const PostprocessPlan& plan, float* out);

// Bilinear resize of a one-channel float map (align_corners as torch defines it).
void Upsample(const float* in, uint32_t in_width, uint32_t in_height, float* out, uint32_t out_width,
              uint32_t out_height, bool align_corners);

// Normalized Gaussian weights for offsets -r..r, r = int(4 * sigma + 0.5) (scipy's truncate=4).
std::vector<double> GaussianWeights(double sigma);

// scipy.ndimage.gaussian_filter(map, sigma, truncate=4, mode='reflect'); sigma 0 copies.
// `out` may be the same buffer as `in`.
void GaussianBlur(const float* in, uint32_t width, uint32_t height, double sigma, float* out);

float MaxScore(const float* map, uint32_t width, uint32_t height);

// Maximum over every kernel×kernel window (stride 1, no padding) of the window mean.
// The caller guarantees 1 <= kernel <= min(width, height).
float AvgPoolMaxScore(const float* map, uint32_t width, uint32_t height, uint32_t kernel);

// The anomaly map coloured by ColourRamp((v - low) / (high - low)) and blended over an RGB
// frame of the same size: out = (1 - alpha) * frame + alpha * colour, rounded. NaN and -inf
// map values get the low end's colour, +inf the high end's (RampPosition).
struct HeatmapSpec {
  float low = 0;
  float high = 1;
  float alpha = 0.5f;
};
void Heatmap(const uint8_t* rgb, const float* map, uint32_t width, uint32_t height, const HeatmapSpec& spec,
             uint8_t* out);

// An event snapshot's overlay, as the daemon's sharp path draws it (src/postprocess/snapshot.ts):
// each map value coloured by the ramp of t = (v - low) / (high - low) with opacity 0.15 + 0.55 t
// (t is 0 for NaN and -inf, 1 for +inf: RampPosition), both rounded to 8 bits, premultiplied,
// enlarged to the frame by half-pixel bilinear interpolation (map_width <= width, map_height <=
// height), and composited over the frame ("over"). rgb and out: width × height × 3.
void SnapshotOverlay(const uint8_t* rgb, uint32_t width, uint32_t height, const float* map, uint32_t map_width,
                     uint32_t map_height, float low, float high, uint8_t* out);

}  // namespace moead
