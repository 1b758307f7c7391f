#include "image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

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

namespace {

// Normalized antialiased taps of every output index along one axis.
struct AaTaps {
  std::vector<int> lo, count;
  std::vector<double> weights;  // count[d] weights of output d start at d * stride
  int stride = 0;
};

AaTaps AntialiasTaps(uint32_t in, uint32_t out) {
  AaTaps t;
  t.lo.resize(out);
  t.count.resize(out);
  std::vector<AaSpan<double>> spans(out);
  for (uint32_t d = 0; d < out; ++d) {
    spans[d] = AntialiasSpan<double>(static_cast<int>(d), static_cast<int>(in), static_cast<int>(out));
    t.stride = std::max(t.stride, spans[d].hi - spans[d].lo);
  }
  t.weights.assign(static_cast<size_t>(out) * t.stride, 0.0);
  for (uint32_t d = 0; d < out; ++d) {
    const AaSpan<double>& s = spans[d];
    double* w = &t.weights[static_cast<size_t>(d) * t.stride];
    double total = 0;
    for (int j = s.lo; j < s.hi; ++j) total += (w[j - s.lo] = AaWeight<double>(j, s));
    for (int j = s.lo; j < s.hi; ++j) w[j - s.lo] /= total;
    t.lo[d] = s.lo;
    t.count[d] = s.hi - s.lo;
  }
  return t;
}

}  // namespace

namespace {

// Per-thread scratch for the kernels' intermediate buffers, one per (type, slot). The libuv
// pool threads live as long as the process; in the saturated pipeline a fresh zeroed
// allocation per frame (0.7 MB of resized rows, 0.4 MB of summed-area table) was 14 % of
// their CPU (perf). Each thread keeps its largest request; contents are not cleared.
template <typename T, int Slot>
T* ThreadScratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// The kernel for one pixel format: with the format a template argument, LoadRgb's switch
// folds away and the inner loops are straight arithmetic.
template <PixelFormat F>
void PreprocessAs(const uint8_t* frame, uint32_t width, uint32_t height, const NormalizeSpec& spec, float* out) {
  const AaTaps xs = AntialiasTaps(width, spec.width);
  const AaTaps ys = AntialiasTaps(height, spec.height);
  const int w = static_cast<int>(width), h = static_cast<int>(height);
  const size_t ow = spec.width;
  // Pass 1, along x: every source row → spec.width RGB samples (no rounding).
  // This pass touches every source pixel, so it runs in float for byte formats (exact
  // integer samples, ≤ 1e-7 relative error over the few dozen taps of a shrink). The YUV
  // formats stay in double: their conversion cancels to near zero at dark pixels, where
  // float's absolute error would show after normalization.
  using Acc = std::conditional_t<F == PixelFormat::kYUYV || F == PixelFormat::kNV12, double, float>;
  const std::vector<Acc> wxf(xs.weights.begin(), xs.weights.end());
  float* const rows = ThreadScratch<float, 0>(static_cast<size_t>(height) * ow * 3);
  // Each source row is converted to RGB once; a shrink's overlapping filter windows then
  // read the converted row instead of converting every pixel about twice.
  Acc* const line = ThreadScratch<Acc, 1>(static_cast<size_t>(width) * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) LoadRgb<Acc>(frame, F, w, h, x, y, &line[3 * static_cast<size_t>(x)]);
    float* dst = &rows[static_cast<size_t>(y) * ow * 3];
    for (size_t ox = 0; ox < ow; ++ox) {
      const Acc* wx = &wxf[ox * xs.stride];
      const Acc* px = &line[3 * static_cast<size_t>(xs.lo[ox])];
      const int n = xs.count[ox];
      Acc r = 0, g = 0, b = 0;
      for (int k = 0; k < n; ++k) {
        r += wx[k] * px[3 * k];
        g += wx[k] * px[3 * k + 1];
        b += wx[k] * px[3 * k + 2];
      }
      dst[3 * ox] = static_cast<float>(r);
      dst[3 * ox + 1] = static_cast<float>(g);
      dst[3 * ox + 2] = static_cast<float>(b);
    }
  }
  // Pass 2, along y, then normalization into planar CHW in the manifest's channel order.
  const size_t plane = ow * spec.height;
  const int src_of[3] = {spec.bgr ? 2 : 0, 1, spec.bgr ? 0 : 2};
  double gain[3], offset[3];
  for (int c = 0; c < 3; ++c) {
    gain[c] = static_cast<double>(spec.scale) / spec.std[c];
    offset[c] = static_cast<double>(spec.mean[c]) / spec.std[c];
  }
  double* const acc = ThreadScratch<double, 2>(ow * 3);
  for (uint32_t oy = 0; oy < spec.height; ++oy) {
    const double* wy = &ys.weights[static_cast<size_t>(oy) * ys.stride];
    std::fill(acc, acc + ow * 3, 0.0);
    // Row by row, so the inner loop runs along contiguous memory.
    for (int k = 0; k < ys.count[oy]; ++k) {
      const float* row = &rows[static_cast<size_t>(ys.lo[oy] + k) * ow * 3];
      const double wk = wy[k];
      for (size_t i = 0; i < ow * 3; ++i) acc[i] += wk * row[i];
    }
    for (int c = 0; c < 3; ++c) {
      float* dst = out + c * plane + oy * ow;
      const int s = src_of[c];
      for (size_t ox = 0; ox < ow; ++ox) dst[ox] = static_cast<float>(acc[3 * ox + s] * gain[c] - offset[c]);
    }
  }
}

}  // namespace

void Preprocess(const uint8_t* frame, PixelFormat format, uint32_t width, uint32_t height,
                const NormalizeSpec& spec, float* out) {
  switch (format) {
    case PixelFormat::kRGB: return PreprocessAs<PixelFormat::kRGB>(frame, width, height, spec, out);
    case PixelFormat::kBGR: return PreprocessAs<PixelFormat::kBGR>(frame, width, height, spec, out);
    case PixelFormat::kRGBA: return PreprocessAs<PixelFormat::kRGBA>(frame, width, height, spec, out);
    case PixelFormat::kGray: return PreprocessAs<PixelFormat::kGray>(frame, width, height, spec, out);
    case PixelFormat::kYUYV: return PreprocessAs<PixelFormat::kYUYV>(frame, width, height, spec, out);
    case PixelFormat::kNV12: return PreprocessAs<PixelFormat::kNV12>(frame, width, height, spec, out);
  }
}

float PostprocessMap(const float* in, const PostprocessPlan& plan, float* out) {
  float* dst = out != nullptr ? out : ThreadScratch<float, 3>(static_cast<size_t>(plan.out_width) * plan.out_height);
  Upsample(in, plan.in_width, plan.in_height, dst, plan.out_width, plan.out_height, plan.align_corners);
  GaussianBlur(dst, plan.out_width, plan.out_height, plan.sigma, dst);
  return plan.kernel == 0 ? MaxScore(dst, plan.out_width, plan.out_height)
                          : AvgPoolMaxScore(dst, plan.out_width, plan.out_height, plan.kernel);
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

namespace {

// Index of each padded position -r..n+r-1 after reflection, so the inner loops need no modulo.
std::vector<int> ReflectTable(int n, int r) {
  std::vector<int> t(static_cast<size_t>(n) + 2 * r);
  for (int i = 0; i < n + 2 * r; ++i) t[i] = ReflectIndex(i - r, n);
  return t;
}

}  // namespace

void GaussianBlur(const float* in, uint32_t width, uint32_t height, double sigma, float* out) {
  const size_t n = static_cast<size_t>(width) * height;
  if (sigma <= 0) {
    if (out != in) std::memcpy(out, in, n * sizeof(float));
    return;
  }
  const std::vector<double> w = GaussianWeights(sigma);
  const int r = static_cast<int>(w.size() / 2);
  const int W = static_cast<int>(width), H = static_cast<int>(height);
  const std::vector<int> rows_of = ReflectTable(H, r), cols_of = ReflectTable(W, r);
  // scipy filters axis 0 (down the columns) first, then axis 1 (along the rows). The
  // vertical pass adds whole source rows, so its inner loop runs along contiguous memory.
  std::vector<double> tmp(n, 0.0);
  for (int y = 0; y < H; ++y) {
    double* dst = &tmp[static_cast<size_t>(y) * W];
    for (int k = 0; k <= 2 * r; ++k) {
      const float* src = in + static_cast<size_t>(rows_of[y + k]) * W;
      const double wk = w[k];
      for (int x = 0; x < W; ++x) dst[x] += wk * src[x];
    }
  }
  std::vector<double> padded(static_cast<size_t>(W) + 2 * r);
  for (int y = 0; y < H; ++y) {
    const double* row = &tmp[static_cast<size_t>(y) * W];
    for (int i = 0; i < W + 2 * r; ++i) padded[i] = row[cols_of[i]];
    float* dst = out + static_cast<size_t>(y) * W;
    for (int x = 0; x < W; ++x) {
      double acc = 0;
      for (int k = 0; k <= 2 * r; ++k) acc += w[k] * padded[x + k];
      dst[x] = static_cast<float>(acc);
    }
  }
}

float MaxScore(const float* map, uint32_t width, uint32_t height) {
  // A NaN anywhere makes the score NaN (std::max_element's answer would depend on where it sat).
  float best = -INFINITY;
  for (const float* p = map; p != map + static_cast<size_t>(width) * height; ++p) {
    if (std::isnan(*p)) return NAN;
    best = std::max(best, *p);
  }
  return best;
}

float AvgPoolMaxScore(const float* map, uint32_t width, uint32_t height, uint32_t kernel) {
  // Summed-area table in double: every window mean costs four reads.
  const size_t W1 = width + 1;
  // Row 0 and column 0 are the zero borders; every other cell is written below.
  double* const sat = ThreadScratch<double, 0>(W1 * (height + 1));
  std::fill(sat, sat + W1, 0.0);
  for (uint32_t y = 1; y <= height; ++y) sat[y * W1] = 0.0;
  for (uint32_t y = 0; y < height; ++y) {
    double row = 0;
    for (uint32_t x = 0; x < width; ++x) {
      row += map[static_cast<size_t>(y) * width + x];
      sat[(y + 1) * W1 + x + 1] = sat[y * W1 + x + 1] + row;
    }
  }
  // A NaN anywhere (or infinities of both signs) poisons the total: the score is NaN, not the
  // best of the windows that happen to miss it.
  if (std::isnan(sat[W1 * (height + 1) - 1])) return NAN;
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
    ColourRamp<double>(RampPosition<double>(map[i], spec.low, span), colour);
    for (int c = 0; c < 3; ++c) out[3 * i + c] = BlendChannel<double>(rgb[3 * i + c], colour[c], spec.alpha);
  }
}

namespace {

// Source taps of half-pixel bilinear enlargement along one axis: for each output index, the
// two input indices (clamped at the edges) and the weight of the second.
struct LinearTaps {
  std::vector<uint32_t> first;
  std::vector<uint32_t> second;
  std::vector<float> weight;
};

LinearTaps EnlargeTaps(uint32_t in, uint32_t out) {
  LinearTaps taps;
  taps.first.resize(out);
  taps.second.resize(out);
  taps.weight.resize(out);
  const double scale = static_cast<double>(in) / out;
  for (uint32_t o = 0; o < out; ++o) {
    const double x = std::max(0.0, (o + 0.5) * scale - 0.5);
    const uint32_t x0 = std::min(static_cast<uint32_t>(x), in - 1);
    taps.first[o] = x0;
    taps.second[o] = std::min(x0 + 1, in - 1);
    taps.weight[o] = static_cast<float>(x - x0);
  }
  return taps;
}

}  // namespace

void SnapshotOverlay(const uint8_t* rgb, uint32_t width, uint32_t height, const float* map, uint32_t map_width,
                     uint32_t map_height, float low, float high, uint8_t* out) {
  // The overlay at the map's size, premultiplied: r, g, b scaled by opacity, then opacity (0..1).
  const size_t cells = static_cast<size_t>(map_width) * map_height;
  std::vector<float> overlay(cells * 4);
  const double span = static_cast<double>(high) - low;
  for (size_t i = 0; i < cells; ++i) {
    const double t = RampPosition<double>(map[i], low, span);
    double colour[3];
    ColourRamp<double>(t, colour);
    // 8-bit colour and opacity, as the RGBA image sharp resizes holds them.
    const double alpha = std::floor((0.15 + 0.55 * t) * 255 + 0.5) / 255;
    for (int c = 0; c < 3; ++c) overlay[4 * i + c] = static_cast<float>(std::floor(colour[c] * 255 + 0.5) * alpha);
    overlay[4 * i + 3] = static_cast<float>(alpha);
  }
  const LinearTaps xs = EnlargeTaps(map_width, width);
  const LinearTaps ys = EnlargeTaps(map_height, height);
  // Map rows widened to the frame's width, each once: consecutive output rows share their two
  // source rows, so only the vertical blend is left per output pixel (11.6 -> 6.6 ms for a
  // 1280x720 frame, against blending both ways per pixel). Row r lives in slot r % 2; the two
  // rows an output row needs are r and r + 1, or one row twice at the edges, so they never
  // evict each other.
  std::vector<float> wide(static_cast<size_t>(width) * 4 * 2);
  int64_t held[2] = {-1, -1};
  auto row_at = [&](uint32_t r) -> const float* {
    float* dst = wide.data() + static_cast<size_t>(r & 1) * width * 4;
    if (held[r & 1] == r) return dst;
    const float* src = &overlay[static_cast<size_t>(r) * map_width * 4];
    for (uint32_t x = 0; x < width; ++x) {
      const uint32_t a = xs.first[x] * 4, b = xs.second[x] * 4;
      const float wx = xs.weight[x];
      for (int c = 0; c < 4; ++c) dst[4 * x + c] = src[a + c] + wx * (src[b + c] - src[a + c]);
    }
    held[r & 1] = r;
    return dst;
  };
  for (uint32_t y = 0; y < height; ++y) {
    const float* top = row_at(ys.first[y]);
    const float* bottom = row_at(ys.second[y]);
    const float wy = ys.weight[y];
    const uint8_t* src = rgb + static_cast<size_t>(y) * width * 3;
    uint8_t* dst = out + static_cast<size_t>(y) * width * 3;
    for (uint32_t x = 0; x < width; ++x) {
      const float* u = top + 4 * x;
      const float* l = bottom + 4 * x;
      const float alpha = u[3] + wy * (l[3] - u[3]);
      // "over": premultiplied overlay plus the frame seen through it.
      for (int c = 0; c < 3; ++c) {
        const float v = u[c] + wy * (l[c] - u[c]) + src[3 * x + c] * (1.0f - alpha);
        dst[3 * x + c] = static_cast<uint8_t>(Clamp(v, 0.0f, 255.0f) + 0.5f);
      }
    }
  }
}

}  // namespace moead
