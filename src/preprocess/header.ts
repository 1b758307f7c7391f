/**
 * Pixel size and sample layout of a PNG or JPEG from its header bytes. Every encoded frame needs
 * both before decoding: the size to choose between shrinking in libvips and enlarging in JS, the
 * layout because images with alpha, CMYK and 16-bit grey cannot be shrunk in the decode pipeline
 * and still match Pillow (image.ts says why). Asking sharp costs a libvips pipeline and a
 * thread-pool round trip per frame, this costs a few reads. Anything else, or a header that does
 * not parse, gives undefined and sharp decides.
 */
export interface PixelSize {
  width: number;
  height: number;
}

/**
 * How an image's samples are stored, as far as matching the toolchain's Pillow decode goes:
 * `alpha` (an alpha channel, or a PNG tRNS colour key, which libvips turns into one), `cmyk`
 * (four-component JPEG: CMYK or YCCK), `grey16` (16-bit grey, which the toolchain scales by
 * 1/257 with rounding), else `plain`.
 */
export type PixelLayout = 'plain' | 'alpha' | 'cmyk' | 'grey16';

export interface EncodedHeader extends PixelSize {
  layout: PixelLayout;
}

/** The 8 bytes every PNG file starts with. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function encodedHeader(data: Buffer): EncodedHeader | undefined {
  const header = data.subarray(0, 8).equals(PNG_SIGNATURE) ? pngHeader(data) : data[0] === 0xff && data[1] === 0xd8 ? jpegHeader(data) : undefined;
  return header && header.width > 0 && header.height > 0 ? header : undefined;
}

/**
 * IHDR is always the first chunk: length, "IHDR", width and height (big-endian), bit depth,
 * colour type. A tRNS chunk, if any, comes before the first IDAT.
 */
function pngHeader(data: Buffer): EncodedHeader | undefined {
  if (data.length < 26 || data.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const [depth, colour] = [data[24]!, data[25]!];
  const size = { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
  // Pillow reads 16-bit grey as mode I;16 (scaled with rounding by the toolchain), but 16-bit
  // grey+alpha as RGBA (the high byte, as libvips does): only the former needs its own decode.
  if (depth === 16 && colour === 0) return { ...size, layout: 'grey16' };
  if (colour === 4 || colour === 6) return { ...size, layout: 'alpha' };
  return { ...size, layout: pngHasTransparency(data) ? 'alpha' : 'plain' };
}

/** Whether a tRNS chunk comes before the image data (lengths only; CRCs are the decoder's business). */
function pngHasTransparency(data: Buffer): boolean {
  for (let at = PNG_SIGNATURE.length; at + 8 <= data.length; ) {
    const type = data.toString('latin1', at + 4, at + 8);
    if (type === 'tRNS') return true;
    if (type === 'IDAT' || type === 'IEND') return false;
    at += 12 + data.readUInt32BE(at);
  }
  return false;
}

/** Walks the marker segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC). */
function jpegHeader(data: Buffer): EncodedHeader | undefined {
  let i = 2;
  while (i + 4 <= data.length) {
    if (data[i] !== 0xff) return undefined;
    const marker = data[i + 1]!;
    if (marker === 0xff) {
      i += 1; // fill byte before a marker
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan data or end before any frame header
    const length = data.readUInt16BE(i + 2);
    const isFrameHeader = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrameHeader) {
      if (i + 10 > data.length) return undefined;
      // Frame header: length, precision, height, width, number of components (4: CMYK or YCCK).
      return { width: data.readUInt16BE(i + 7), height: data.readUInt16BE(i + 5), layout: data[i + 9] === 4 ? 'cmyk' : 'plain' };
    }
    i += 2 + length;
  }
  return undefined;
}
