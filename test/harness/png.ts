/**
 * Hand-built PNG files for the decoder tests: the test picks every chunk and every row's
 * filter, so each filter type and each way a file can break is exercised on purpose rather
 * than by whatever an encoder happens to choose. Written from the PNG specification
 * (ISO/IEC 15948: chunk layout §5.3, filters §9), not from the decoder under test.
 */
import zlib from 'node:zlib';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One chunk: length, type, data, CRC of type + data. */
export function pngChunk(type: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(zlib.crc32(body), 8 + data.length);
  return out;
}

export interface PngHeader {
  width: number;
  height: number;
  depth?: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA. */
  colour?: number;
  interlace?: number;
}

export function ihdrChunk({ width, height, depth = 8, colour = 2, interlace = 0 }: PngHeader): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data.set([depth, colour, 0, 0, interlace], 8);
  return pngChunk('IHDR', data);
}

export function pngFile(...chunks: Buffer[]): Buffer {
  return Buffer.concat([PNG_SIGNATURE, ...chunks]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * The encoder's side of PNG filtering: row y is written with filter filters[y % length]
 * (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth), each byte minus its predictor, modulo 256.
 */
export function filterRows(pixels: Uint8Array, width: number, height: number, channels: number, filters: readonly number[]): Buffer {
  const stride = width * channels;
  const out = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const filter = filters[y % filters.length]!;
    out[y * (stride + 1)] = filter;
    for (let x = 0; x < stride; x++) {
      const at = (yy: number, xx: number) => (yy < 0 || xx < 0 ? 0 : pixels[yy * stride + xx]!);
      const [a, b, c] = [at(y, x - channels), at(y - 1, x), at(y - 1, x - channels)];
      const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter] ?? 0;
      out[y * (stride + 1) + 1 + x] = (pixels[y * stride + x]! - predictor) & 255;
    }
  }
  return out;
}

/** An 8-bit, non-interlaced PNG of `pixels` (gray, RGB or RGBA by `channels`), rows filtered as given. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 | 4, filters: readonly number[] = [0, 1, 2, 3, 4]): Buffer {
  const colour = { 1: 0, 3: 2, 4: 6 }[channels];
  return pngFile(
    ihdrChunk({ width, height, colour }),
    pngChunk('IDAT', zlib.deflateSync(filterRows(pixels, width, height, channels, filters))),
    pngChunk('IEND'),
  );
}
