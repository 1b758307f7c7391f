/**
 * Bilinear resampling with the convention training pipelines use (Pillow's
 * Image.resize(BILINEAR), which torch's interpolate(antialias=True) equals): pixel centres at
 * +0.5, and a triangle filter widened by the scale factor when shrinking. libvips (sharp)
 * shrinks the same way but enlarges with corner-aligned sampling, a quarter-pixel shift, so
 * enlarging goes through this function instead.
 */
import type { Pixels } from './image.js';

interface Taps {
  start: Int32Array;
  count: Int32Array;
  /** count[i] weights per output index, at i * stride. */
  weights: Float64Array;
  stride: number;
}

function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j - centre + 0.5) / filterScale));
      weights[i * stride + j - lo] = w;
      total += w;
    }
    for (let j = 0; j < hi - lo; j++) weights[i * stride + j]! /= total || 1;
    start[i] = lo;
    count[i] = hi - lo;
  }
  return { start, count, weights, stride };
}

/** One pass along x (alongX) or y, rounding to 8 bits in between as Pillow does. */
function pass(src: Buffer, width: number, height: number, channels: number, outSize: number, alongX: boolean): Buffer {
  const inSize = alongX ? width : height;
  const t = taps(inSize, outSize);
  const outW = alongX ? outSize : width;
  const outH = alongX ? height : outSize;
  const out = Buffer.alloc(outW * outH * channels);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const i = alongX ? x : y;
      const lo = t.start[i]!;
      const n = t.count[i]!;
      const wBase = i * t.stride;
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let k = 0; k < n; k++) {
          const sx = alongX ? lo + k : x;
          const sy = alongX ? y : lo + k;
          acc += src[(sy * width + sx) * channels + c]! * t.weights[wBase + k]!;
        }
        out[(y * outW + x) * channels + c] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return out;
}

/** Exact-size bilinear resize of interleaved 8-bit pixels (aspect ratio not kept). */
export function resizeBilinear(pixels: Pixels, width: number, height: number): Pixels {
  let data = pixels.data;
  let w = pixels.width;
  let h = pixels.height;
  if (w !== width) {
    data = pass(data, w, h, pixels.channels, width, true);
    w = width;
  }
  if (h !== height) {
    data = pass(data, w, h, pixels.channels, height, false);
    h = height;
  }
  return { ...pixels, data, width: w, height: h };
}
