/** Region-of-interest crop and rotation on packed 8-bit pixels (rgb24: 3 bytes a pixel). */
import type { Roi, Rotation } from './config.js';

export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
}

export function crop(img: RawImage, roi: Roi, bpp: number): RawImage {
  if (roi.x + roi.width > img.width || roi.y + roi.height > img.height) {
    throw new Error(`roi ${roi.width}x${roi.height}+${roi.x}+${roi.y} does not fit in a ${img.width}x${img.height} frame`);
  }
  const rowBytes = roi.width * bpp;
  const out = Buffer.allocUnsafe(rowBytes * roi.height);
  for (let y = 0; y < roi.height; y++) {
    const from = ((roi.y + y) * img.width + roi.x) * bpp;
    img.data.copy(out, y * rowBytes, from, from + rowBytes);
  }
  return { data: out, width: roi.width, height: roi.height };
}

/** Rotates clockwise by `degrees`. */
export function rotate(img: RawImage, degrees: Rotation, bpp: number): RawImage {
  if (degrees === 0) return img;
  const { width: w, height: h, data } = img;
  const out = Buffer.allocUnsafe(data.length);
  const quarter = degrees !== 180;
  const outW = quarter ? h : w;
  // Where source pixel (0, y) lands and how far the destination moves per source step in x,
  // for each rotation; written out per case because this loop runs for every pixel.
  for (let y = 0; y < h; y++) {
    let d: number;
    let step: number;
    if (degrees === 90) [d, step] = [(h - 1 - y) * bpp, outW * bpp];
    else if (degrees === 180) [d, step] = [((h - 1 - y) * w + (w - 1)) * bpp, -bpp];
    else [d, step] = [((w - 1) * outW + y) * bpp, -outW * bpp];
    let s = y * w * bpp;
    if (bpp === 3) {
      for (let x = 0; x < w; x++, s += 3, d += step) {
        out[d] = data[s]!;
        out[d + 1] = data[s + 1]!;
        out[d + 2] = data[s + 2]!;
      }
    } else {
      for (let x = 0; x < w; x++, s += bpp, d += step) data.copy(out, d, s, s + bpp);
    }
  }
  return { data: out, width: outW, height: quarter ? w : h };
}
