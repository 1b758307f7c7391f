#include "png_rows.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace moead {

namespace {

// The Paeth predictor: whichever of left (a), up (b) and up-left (c) is closest to a + b - c,
// ties going to a, then b. Written without branches on the data so it compiles to selects.
inline uint8_t Paeth(int a, int b, int c) {
  const int pa = std::abs(b - c);
  const int pb = std::abs(a - c);
  const int pc = std::abs(a + b - 2 * c);
  const int bc = pb <= pc ? b : c;
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : bc);
}

[[noreturn]] void BadFilter(uint32_t y, uint8_t filter) {
  throw std::runtime_error("PNG row " + std::to_string(y) + " has filter type " + std::to_string(filter) +
                           " (types 0..4 exist)");
}

// B bytes per pixel, a compile-time constant so the loops over a row carry B independent
// chains and need no per-byte bounds test for the first pixel.
template <size_t B>
void UnfilterRows(uint8_t* scanlines, size_t stride, uint32_t height) {
  for (uint32_t y = 0; y < height; ++y) {
    // Row y's filtered bytes start y + 1 bytes after where its pixels go, so writing out[x]
    // never overwrites an in[] byte still to be read, nor the row above (`up`).
    const uint8_t* in = scanlines + y * (stride + 1);
    const uint8_t filter = *in++;
    uint8_t* out = scanlines + y * stride;
    if (y == 0) {
      // The row above the first is zeros: Up is None, Paeth is Sub, Average adds half the left byte.
      switch (filter) {
        case 0:
        case 2:
          std::memmove(out, in, stride);
          break;
        case 1:
        case 4:
          for (size_t x = 0; x < B; ++x) out[x] = in[x];
          for (size_t x = B; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + out[x - B]);
          break;
        case 3:
          for (size_t x = 0; x < B; ++x) out[x] = in[x];
          for (size_t x = B; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + (out[x - B] >> 1));
          break;
        default:
          BadFilter(y, filter);
      }
      continue;
    }
    const uint8_t* up = out - stride;
    switch (filter) {
      case 0:  // None
        std::memmove(out, in, stride);
        break;
      case 1:  // Sub
        for (size_t x = 0; x < B; ++x) out[x] = in[x];
        for (size_t x = B; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + out[x - B]);
        break;
      case 2:  // Up
        for (size_t x = 0; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + up[x]);
        break;
      case 3:  // Average
        for (size_t x = 0; x < B; ++x) out[x] = static_cast<uint8_t>(in[x] + (up[x] >> 1));
        for (size_t x = B; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + ((out[x - B] + up[x]) >> 1));
        break;
      case 4:  // Paeth; for the first pixel left and up-left are 0, so it predicts `up`
        for (size_t x = 0; x < B; ++x) out[x] = static_cast<uint8_t>(in[x] + up[x]);
        for (size_t x = B; x < stride; ++x) out[x] = static_cast<uint8_t>(in[x] + Paeth(out[x - B], up[x], up[x - B]));
        break;
      default:
        BadFilter(y, filter);
    }
  }
}

}  // namespace

uint64_t PngScanlineBytes(uint32_t width, uint32_t height, uint32_t channels) {
  return static_cast<uint64_t>(height) * (1 + static_cast<uint64_t>(width) * channels);
}

void UnfilterPngRows(uint8_t* scanlines, uint32_t width, uint32_t height, uint32_t channels) {
  const size_t stride = static_cast<size_t>(width) * channels;
  switch (channels) {
    case 1: return UnfilterRows<1>(scanlines, stride, height);
    case 2: return UnfilterRows<2>(scanlines, stride, height);
    case 3: return UnfilterRows<3>(scanlines, stride, height);
    case 4: return UnfilterRows<4>(scanlines, stride, height);
    default: throw std::runtime_error("PNG pixels of " + std::to_string(channels) + " bytes are not unfiltered here");
  }
}

}  // namespace moead
