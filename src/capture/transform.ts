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
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Destination of source pixel (x, y) for each clockwise rotation.
      let dx: number, dy: number;
      if (degrees === 90) [dx, dy] = [h - 1 - y, x];
      else if (degrees === 180) [dx, dy] = [w - 1 - x, h - 1 - y];
      else [dx, dy] = [y, w - 1 - x];
      const s = (y * w + x) * bpp;
      const d = (dy * outW + dx) * bpp;
      for (let c = 0; c < bpp; c++) out[d + c] = data[s + c]!;
    }
  }
  return { data: out, width: outW, height: quarter ? w : h };
}
