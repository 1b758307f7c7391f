// Per-pixel arithmetic shared by the CPU kernels (image_ops.cc, in double) and the CUDA
// kernels (native/cuda/*.cu, in float), so both implement one definition of each step.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MOEAD_HD __host__ __device__ __forceinline__
#else
#define MOEAD_HD inline
#endif

namespace moead {

enum class PixelFormat : int { kRGB = 0, kBGR = 1, kRGBA = 2, kGray = 3, kYUYV = 4, kNV12 = 5 };

template <typename T>
MOEAD_HD T Clamp(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// One bilinear tap pair along an axis: samples i0 and i1 with weight (1 - f) and f.
template <typename T>
struct Tap {
  int i0;
  int i1;
  T f;
};

// Source coordinate of output index `d` when `in` samples are resized to `out`.
// align_corners=false is the half-pixel convention of torch.nn.functional.interpolate,
// cv2.INTER_LINEAR and the training transform (no antialiasing); positions left of the
// first sample centre clamp to it, as torch does.
template <typename T>
MOEAD_HD Tap<T> BilinearTap(int d, int in, int out, bool align_corners) {
  T src;
  if (align_corners) {
    src = out > 1 ? static_cast<T>(d) * static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  } else {
    src = (static_cast<T>(d) + T(0.5)) * static_cast<T>(in) / static_cast<T>(out) - T(0.5);
    if (src < T(0)) src = T(0);
  }
  int i0 = static_cast<int>(src);  // src >= 0, so truncation is floor
  if (i0 >= in - 1) return Tap<T>{in - 1, in - 1, T(0)};
  return Tap<T>{i0, i0 + 1, src - static_cast<T>(i0)};
}

// The antialiased bilinear resize of camera frames (torch's interpolate(mode='bilinear',
// antialias=True), which is Pillow's Image.resize(BILINEAR) without its 8-bit rounding): a
// triangle filter whose support widens by the shrink factor, so every source pixel counts
// when shrinking; when enlarging it is the half-pixel bilinear of BilinearTap. Output index
// d reads source samples lo..hi-1 with weights AaWeight(j) / (their sum).
template <typename T>
struct AaSpan {
  int lo;
  int hi;
  T centre;
  T inv_scale;  // 1 / max(scale, 1): the filter's x in source pixels
};

template <typename T>
MOEAD_HD AaSpan<T> AntialiasSpan(int d, int in, int out) {
  const T scale = static_cast<T>(in) / static_cast<T>(out);
  const T support = scale > T(1) ? scale : T(1);
  const T centre = (static_cast<T>(d) + T(0.5)) * scale;
  int lo = static_cast<int>(centre - support + T(0.5));  // truncation, as both libraries do
  int hi = static_cast<int>(centre + support + T(0.5));
  if (lo < 0) lo = 0;
  if (hi > in) hi = in;
  return AaSpan<T>{lo, hi, centre, T(1) / support};
}

template <typename T>
MOEAD_HD T AaWeight(int j, const AaSpan<T>& s) {
  const T x = (static_cast<T>(j) - s.centre + T(0.5)) * s.inv_scale;
  const T w = T(1) - (x < T(0) ? -x : x);
  return w > T(0) ? w : T(0);
}

// scipy.ndimage mode='reflect' (d c b a | a b c d | d c b a): the pattern repeats with
// period 2n, so any offset, even one larger than the image, maps inside it.
MOEAD_HD int ReflectIndex(int i, int n) {
  const int period = 2 * n;
  int m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

// BT.601 limited-range ("TV") YCbCr to RGB, the matrix V4L2 cameras and ffmpeg's default
// conversion use for YUYV and NV12. Results are clamped to 0..255 and not rounded.
template <typename T>
MOEAD_HD void YuvToRgb(T y, T u, T v, T* rgb) {
  const T c = (y - T(16)) * T(255.0 / 219.0);
  const T d = u - T(128);
  const T e = v - T(128);
  const T kv = T(255.0 / 224.0);
  rgb[0] = Clamp(c + kv * T(1.402) * e, T(0), T(255));
  rgb[1] = Clamp(c - kv * T(1.772 * 0.114 / 0.587) * d - kv * T(1.402 * 0.299 / 0.587) * e, T(0), T(255));
  rgb[2] = Clamp(c + kv * T(1.772) * d, T(0), T(255));
}

// RGB (0..255) of pixel (x, y) of a packed frame. The caller guarantees x < width, y < height
// and that the buffer holds a whole frame of this format (checked once per call, not per pixel).
template <typename T>
MOEAD_HD void LoadRgb(const uint8_t* src, PixelFormat format, int width, int height, int x, int y, T* rgb) {
  const int64_t p = static_cast<int64_t>(y) * width + x;
  switch (format) {
    case PixelFormat::kRGB:
      rgb[0] = src[3 * p]; rgb[1] = src[3 * p + 1]; rgb[2] = src[3 * p + 2];
      return;
    case PixelFormat::kBGR:
      rgb[0] = src[3 * p + 2]; rgb[1] = src[3 * p + 1]; rgb[2] = src[3 * p];
      return;
    case PixelFormat::kRGBA:
      rgb[0] = src[4 * p]; rgb[1] = src[4 * p + 1]; rgb[2] = src[4 * p + 2];
      return;
    case PixelFormat::kGray:
      rgb[0] = rgb[1] = rgb[2] = src[p];
      return;
    case PixelFormat::kYUYV: {
      // Y0 U Y1 V: each 4-byte group carries two pixels that share U and V.
      const int64_t pair = (static_cast<int64_t>(y) * width + (x & ~1)) * 2;
      YuvToRgb<T>(src[2 * p], src[pair + 1], src[pair + 3], rgb);
      return;
    }
    case PixelFormat::kNV12: {
      // Full-size Y plane, then one interleaved U,V pair per 2x2 block.
      const int64_t uv = static_cast<int64_t>(width) * height + static_cast<int64_t>(y / 2) * width + (x & ~1);
      YuvToRgb<T>(src[p], src[uv], src[uv + 1], rgb);
      return;
    }
  }
}

// Where map value v falls on the colour ramp, (v - low) / span clamped to 0..1. A NaN has no
// place on it and is drawn as the low end (as the daemon's JS path draws it), +inf as the top
// and -inf as the bottom: left as NaN it would reach the 8-bit casts below, whose result is
// then undefined behaviour. Comparisons with NaN are false, hence the order of the tests.
template <typename T>
MOEAD_HD T RampPosition(T v, T low, T span) {
  const T t = (v - low) / span;
  return t > T(0) ? (t < T(1) ? t : T(1)) : T(0);
}

// A blue → cyan → yellow → red ramp ("jet"-like), t in 0..1, channel values in 0..1.
template <typename T>
MOEAD_HD void ColourRamp(T t, T* rgb) {
  const T s = T(4) * Clamp(t, T(0), T(1));
  const T r = T(1.5) - (s - T(3) < T(0) ? T(3) - s : s - T(3));
  const T g = T(1.5) - (s - T(2) < T(0) ? T(2) - s : s - T(2));
  const T b = T(1.5) - (s - T(1) < T(0) ? T(1) - s : s - T(1));
  rgb[0] = Clamp(r, T(0), T(1));
  rgb[1] = Clamp(g, T(0), T(1));
  rgb[2] = Clamp(b, T(0), T(1));
}

// One heatmap output channel: the frame blended with the ramp colour, rounded half up.
template <typename T>
MOEAD_HD uint8_t BlendChannel(T frame, T colour01, T alpha) {
  const T v = (T(1) - alpha) * frame + alpha * colour01 * T(255);
  return static_cast<uint8_t>(Clamp(v, T(0), T(255)) + T(0.5));
}

}  // namespace moead
