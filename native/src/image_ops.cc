#include "image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moead {

namespace {

struct FormatInfo {
  PixelFormat format;
  const char* name;
};
constexpr FormatInfo kFormats[] = {
    {PixelFormat::kRGB, "rgb24"}, {PixelFormat::kBGR, "bgr24"}, {PixelFormat::kRGBA, "rgba"},
    {PixelFormat::kGray, "gray"}, {PixelFormat::kYUYV, "yuyv"}, {PixelFormat::kNV12, "nv12"},
};

// Bilinear taps of every output column (or row), computed once per call instead of per pixel.
std::vector<Tap<double>> Taps(uint32_t in, uint32_t out, bool align_corners) {
  std::vector<Tap<double>> taps(out);
  for (uint32_t d = 0; d < out; ++d) taps[d] = BilinearTap<double>(static_cast<int>(d), static_cast<int>(in), static_cast<int>(out), align_corners);
  return taps;
}

}  // namespace

bool ParsePixelFormat(const std::string& name, PixelFormat* format) {
  for (const auto& f : kFormats) {
    if (name == f.name) {
      *format = f.format;
      return true;
    }
  }
  return false;
}

const char* PixelFormatName(PixelFormat format) {
  for (const auto& f : kFormats) {
    if (f.format == format) return f.name;
  }
  return "unknown";
}

bool FrameBytes(PixelFormat format, uint32_t width, uint32_t height, uint64_t* bytes, std::string* why) {
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide) {
    *why = "width and height must be 1.." + std::to_string(kMaxSide);
    return false;
  }
  const uint64_t px = static_cast<uint64_t>(width) * height;
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR: *bytes = px * 3; return true;
    case PixelFormat::kRGBA: *bytes = px * 4; return true;
    case PixelFormat::kGray: *bytes = px; return true;
    case PixelFormat::kYUYV:
      if (width % 2 != 0) {
        *why = "yuyv needs an even width";
        return false;
      }
      *bytes = px * 2;
      return true;
    case PixelFormat::kNV12:
      if (width % 2 != 0 || height % 2 != 0) {
        *why = "nv12 needs an even width and height";
        return false;
      }
      *bytes = px * 3 / 2;
      return true;
  }
  *why = "unknown pixel format";
  return false;
}

void Preprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                const NormalizeSpec& spec, float* out) {
  const auto xs = Taps(width, spec.width, false);
  const auto ys = Taps(height, spec.height, false);
  const size_t plane = static_cast<size_t>(spec.width) * spec.height;
  // Output channel c takes RGB component src_of[c]; mean/std are indexed by output channel.
  const int src_of[3] = {spec.bgr ? 2 : 0, 1, spec.bgr ? 0 : 2};
  const int w = static_cast<int>(width), h = static_cast<int>(height);
  for (uint32_t oy = 0; oy < spec.height; ++oy) {
    const Tap<double>& ty = ys[oy];
    for (uint32_t ox = 0; ox < spec.width; ++ox) {
      const Tap<double>& tx = xs[ox];
      double p00[3] = {}, p01[3] = {}, p10[3] = {}, p11[3] = {};
      LoadRgb<double>(frame, format, w, h, tx.i0, ty.i0, p00);
      LoadRgb<double>(frame, format, w, h, tx.i1, ty.i0, p01);
      LoadRgb<double>(frame, format, w, h, tx.i0, ty.i1, p10);
      LoadRgb<double>(frame, format, w, h, tx.i1, ty.i1, p11);
      const size_t o = static_cast<size_t>(oy) * spec.width + ox;
      for (int c = 0; c < 3; ++c) {
        const int s = src_of[c];
        const double top = p00[s] + (p01[s] - p00[s]) * tx.f;
        const double bottom = p10[s] + (p11[s] - p10[s]) * tx.f;
        const double v = top + (bottom - top) * ty.f;
        out[c * plane + o] = static_cast<float>((v * spec.scale - spec.mean[c]) / spec.std[c]);
      }
    }
  }
}

void Upsample(const float* in, uint32_t in_width, uint32_t in_height, float* out, uint32_t out_width,
              uint32_t out_height, bool align_corners) {
  const auto xs = Taps(in_width, out_width, align_corners);
  const auto ys = Taps(in_height, out_height, align_corners);
  for (uint32_t oy = 0; oy < out_height; ++oy) {
    const Tap<double>& ty = ys[oy];
    const float* r0 = in + static_cast<size_t>(ty.i0) * in_width;
    const float* r1 = in + static_cast<size_t>(ty.i1) * in_width;
    for (uint32_t ox = 0; ox < out_width; ++ox) {
      const Tap<double>& tx = xs[ox];
      const double top = r0[tx.i0] + (static_cast<double>(r0[tx.i1]) - r0[tx.i0]) * tx.f;
      const double bottom = r1[tx.i0] + (static_cast<double>(r1[tx.i1]) - r1[tx.i0]) * tx.f;
      out[static_cast<size_t>(oy) * out_width + ox] = static_cast<float>(top + (bottom - top) * ty.f);
    }
  }
}

std::vector<double> GaussianWeights(double sigma) {
  const int radius = static_cast<int>(4.0 * sigma + 0.5);
  std::vector<double> w(2 * radius + 1);
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    w[i + radius] = std::exp(-0.5 * i * i / (sigma * sigma));
    sum += w[i + radius];
  }
  for (double& v : w) v /= sum;
  return w;
}

void GaussianBlur(const float* in, uint32_t width, uint32_t height, double sigma, float* out) {
  const size_t n = static_cast<size_t>(width) * height;
  if (sigma <= 0) {
    if (out != in) std::memcpy(out, in, n * sizeof(float));
    return;
  }
  const std::vector<double> w = GaussianWeights(sigma);
  const int r = static_cast<int>(w.size() / 2);
  const int W = static_cast<int>(width), H = static_cast<int>(height);
  // scipy filters axis 0 (down the columns) first, then axis 1 (along the rows).
  std::vector<double> tmp(n);
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      double acc = 0;
      for (int k = -r; k <= r; ++k) acc += w[k + r] * in[static_cast<size_t>(ReflectIndex(y + k, H)) * W + x];
      tmp[static_cast<size_t>(y) * W + x] = acc;
    }
  }
  for (int y = 0; y < H; ++y) {
    const double* row = tmp.data() + static_cast<size_t>(y) * W;
    for (int x = 0; x < W; ++x) {
      double acc = 0;
      for (int k = -r; k <= r; ++k) acc += w[k + r] * row[ReflectIndex(x + k, W)];
      out[static_cast<size_t>(y) * W + x] = static_cast<float>(acc);
    }
  }
}

float MaxScore(const float* map, uint32_t width, uint32_t height) {
  return *std::max_element(map, map + static_cast<size_t>(width) * height);
}

float AvgPoolMaxScore(const float* map, uint32_t width, uint32_t height, uint32_t kernel) {
  // Summed-area table in double: every window mean costs four reads.
  const size_t W1 = width + 1;
  std::vector<double> sat(W1 * (height + 1), 0.0);
  for (uint32_t y = 0; y < height; ++y) {
    double row = 0;
    for (uint32_t x = 0; x < width; ++x) {
      row += map[static_cast<size_t>(y) * width + x];
      sat[(y + 1) * W1 + x + 1] = sat[y * W1 + x + 1] + row;
    }
  }
  const double area = static_cast<double>(kernel) * kernel;
  double best = -INFINITY;
  for (uint32_t y = 0; y + kernel <= height; ++y) {
    for (uint32_t x = 0; x + kernel <= width; ++x) {
      const double s = sat[(y + kernel) * W1 + x + kernel] - sat[y * W1 + x + kernel] - sat[(y + kernel) * W1 + x] + sat[y * W1 + x];
      best = std::max(best, s / area);
    }
  }
  return static_cast<float>(best);
}

void Heatmap(const uint8_t* rgb, const float* map, uint32_t width, uint32_t height, const HeatmapSpec& spec,
             uint8_t* out) {
  const size_t n = static_cast<size_t>(width) * height;
  const double span = static_cast<double>(spec.high) - spec.low;
  for (size_t i = 0; i < n; ++i) {
    double colour[3];
    ColourRamp<double>((map[i] - spec.low) / span, colour);
    for (int c = 0; c < 3; ++c) out[3 * i + c] = BlendChannel<double>(rgb[3 * i + c], colour[c], spec.alpha);
  }
}

}  // namespace moead
