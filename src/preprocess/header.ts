/**
 * Pixel size of a PNG or JPEG from its header bytes. Every encoded frame needs its size before
 * decoding (to choose between shrinking in libvips and enlarging in JS); asking sharp for it
 * costs a libvips pipeline and a thread-pool round trip per frame, this costs a few reads.
 * Anything else, or a header that does not parse, gives undefined and sharp decides.
 */
export interface PixelSize {
  width: number;
  height: number;
}

/** The 8 bytes every PNG file starts with. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function encodedSize(data: Buffer): PixelSize | undefined {
  const size = data.subarray(0, 8).equals(PNG_SIGNATURE) ? pngSize(data) : data[0] === 0xff && data[1] === 0xd8 ? jpegSize(data) : undefined;
  return size && size.width > 0 && size.height > 0 ? size : undefined;
}

/** IHDR is always the first chunk: length, "IHDR", then width and height (big-endian). */
function pngSize(data: Buffer): PixelSize | undefined {
  if (data.length < 24 || data.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
}

/** Walks the marker segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC). */
function jpegSize(data: Buffer): PixelSize | undefined {
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
      if (i + 9 > data.length) return undefined;
      return { width: data.readUInt16BE(i + 7), height: data.readUInt16BE(i + 5) };
    }
    i += 2 + length;
  }
  return undefined;
}
