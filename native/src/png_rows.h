// PNG scanline reconstruction (the "unfilter" step of PNG decoding, ISO/IEC 15948 §9) for
// 8-bit, non-interlaced images. Inflating IDAT is left to the caller (Node's zlib), so the
// addon needs no zlib of its own; this is the part of decoding that is slow in JavaScript.
#pragma once

#include <cstdint>

namespace moead {

// Bytes of the inflated IDAT stream of a width × height image with `channels` 8-bit samples
// per pixel: each row is one filter-type byte followed by width × channels bytes.
uint64_t PngScanlineBytes(uint32_t width, uint32_t height, uint32_t channels);

// Reverses each row's filter in place: on return, row y's pixels sit at y × width × channels
// (the filter bytes are squeezed out), ready for Preprocess as gray, rgb24 or rgba. The
// buffer holds PngScanlineBytes(...) bytes. A filter type outside 0..4 throws
// std::runtime_error naming the row; the rows above it are already rewritten by then.
void UnfilterPngRows(uint8_t* scanlines, uint32_t width, uint32_t height, uint32_t channels);

}  // namespace moead
