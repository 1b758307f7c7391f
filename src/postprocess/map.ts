/**
 * The manifest's post-processing of the model's low-resolution anomaly map, kept numerically
 * identical to the Python toolchain (training/moead_edge/eval/postprocess.py):
 * bilinear upsample (PyTorch's interpolate semantics, align_corners as given), Gaussian blur
 * (scipy.ndimage.gaussian_filter with truncate=4 and mode='reflect'), then the image score.
 */
import type { PostprocessSpec } from '../bundle/manifest.js';

/** A single-channel float map, row-major. */
export interface FloatMap {
  data: Float32Array;
  width: number;
  height: number;
}

/** Source coordinate of each destination index along one axis, as PyTorch computes it. */
function sourceTaps(inSize: number, outSize: number, alignCorners: boolean): { lo: Int32Array; hi: Int32Array; frac: Float64Array } {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float64Array(outSize);
  for (let i = 0; i < outSize; i++) {
    let src: number;
    if (alignCorners) src = outSize > 1 ? (i * (inSize - 1)) / (outSize - 1) : 0;
    else src = Math.max(((i + 0.5) * inSize) / outSize - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    lo[i] = i0;
    hi[i] = Math.min(i0 + 1, inSize - 1);
    frac[i] = src - i0;
  }
  return { lo, hi, frac };
}

/** Bilinear resize of `map` to width × height. */
export function upsampleBilinear(map: FloatMap, width: number, height: number, alignCorners: boolean): FloatMap {
  const xs = sourceTaps(map.width, width, alignCorners);
  const ys = sourceTaps(map.height, height, alignCorners);
  const out = new Float32Array(width * height);
  const src = map.data;
  for (let y = 0; y < height; y++) {
    const row0 = ys.lo[y]! * map.width;
    const row1 = ys.hi[y]! * map.width;
    const fy = ys.frac[y]!;
    for (let x = 0; x < width; x++) {
      const x0 = xs.lo[x]!;
      const x1 = xs.hi[x]!;
      const fx = xs.frac[x]!;
      const top = src[row0 + x0]! * (1 - fx) + src[row0 + x1]! * fx;
      const bottom = src[row1 + x0]! * (1 - fx) + src[row1 + x1]! * fx;
      out[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return { data: out, width, height };
}

/** scipy's 1-D Gaussian weights: radius int(truncate*sigma + 0.5), normalized to sum 1. */
export function gaussianKernel(sigma: number, truncate = 4): Float64Array {
  const radius = Math.trunc(truncate * sigma + 0.5);
  const weights = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp((-0.5 / (sigma * sigma)) * i * i);
    weights[i + radius] = w;
    sum += w;
  }
  for (let i = 0; i < weights.length; i++) weights[i]! /= sum;
  return weights;
}

/** Index into [0, n) for a position outside it, mirrored about the edges ("d c b a | a b c d"). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n;
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

/** Correlates every row of `src` with `weights` (along x), writing float32 like scipy does. */
function blurRows(src: Float32Array, width: number, height: number, weights: Float64Array): Float32Array {
  const out = new Float32Array(src.length);
  const radius = (weights.length - 1) / 2;
  // Row padded by reflection once, so the inner loop has no branches.
  const padded = new Float64Array(width + 2 * radius);
  for (let y = 0; y < height; y++) {
    const start = y * width;
    for (let j = -radius; j < width + radius; j++) padded[j + radius] = src[start + reflectIndex(j, width)]!;
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = 0; k < weights.length; k++) acc += padded[x + k]! * weights[k]!;
      out[start + x] = acc;
    }
  }
  return out;
}

/**
 * Correlates every column with `weights` (along y). Walks whole rows in the inner loop for
 * memory locality; each output still sums its taps in the same order as blurRows.
 */
function blurColumns(src: Float32Array, width: number, height: number, weights: Float64Array): Float32Array {
  const out = new Float32Array(src.length);
  const radius = (weights.length - 1) / 2;
  const acc = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    acc.fill(0);
    for (let k = 0; k < weights.length; k++) {
      const row = reflectIndex(y + k - radius, height) * width;
      const w = weights[k]!;
      for (let x = 0; x < width; x++) acc[x]! += src[row + x]! * w;
    }
    out.set(acc, y * width);
  }
  return out;
}

/** scipy.ndimage.gaussian_filter(map, sigma, truncate=4.0, mode='reflect') on a float32 map. */
export function gaussianBlur(map: FloatMap, sigma: number): FloatMap {
  if (sigma <= 0) return map;
  const weights = gaussianKernel(sigma);
  // scipy filters axis 0 (rows → along y) first, then axis 1, rounding to float32 in between.
  const alongY = blurColumns(map.data, map.width, map.height, weights);
  return { data: blurRows(alongY, map.width, map.height, weights), width: map.width, height: map.height };
}

/** Largest mean over all k×k windows (stride 1, no padding), via a summed-area table. */
export function avgPoolMax(map: FloatMap, kernel: number): number {
  const { width, height, data } = map;
  if (kernel > width || kernel > height) throw new RangeError(`score kernel ${kernel} is larger than the ${width}x${height} map`);
  const stride = width + 1;
  const sat = new Float64Array(stride * (height + 1));
  for (let y = 0; y < height; y++) {
    let rowSum = 0;
    for (let x = 0; x < width; x++) {
      rowSum += data[y * width + x]!;
      sat[(y + 1) * stride + x + 1] = sat[y * stride + x + 1]! + rowSum;
    }
  }
  // A NaN anywhere (or infinities of both signs) poisons the total: NaN, as in the addon.
  if (Number.isNaN(sat[stride * (height + 1) - 1])) return Number.NaN;
  let best = -Infinity;
  for (let y = 0; y + kernel <= height; y++) {
    for (let x = 0; x + kernel <= width; x++) {
      const sum = sat[(y + kernel) * stride + x + kernel]! - sat[y * stride + x + kernel]! - sat[(y + kernel) * stride + x]! + sat[y * stride + x]!;
      if (sum > best) best = sum;
    }
  }
  return best / (kernel * kernel);
}

/** The largest value; NaN when the map holds one (a broken model, reported as such, not hidden). */
export function mapMax(map: FloatMap): number {
  let best = -Infinity;
  for (const v of map.data) {
    if (Number.isNaN(v)) return Number.NaN;
    if (v > best) best = v;
  }
  return best;
}

/** The full post-processing: returns the smoothed full-resolution map and the image score. */
export function postprocessMap(lowRes: FloatMap, spec: PostprocessSpec): { map: FloatMap; score: number } {
  const { upsample } = spec;
  const full = upsampleBilinear(lowRes, upsample.width, upsample.height, upsample.align_corners);
  const map = gaussianBlur(full, spec.blur_sigma);
  const score = spec.score.method === 'avgpool_max' ? avgPoolMax(map, spec.score.kernel) : mapMax(map);
  return { map, score };
}

/** Checks once, at bundle load, that the score kernel fits the upsampled map. */
/** The native kernels' limit (args.cc): a radius of 400 pixels already spans any map a bundle produces. */
export const MAX_BLUR_SIGMA = 100;

export function checkPostprocessSpec(spec: PostprocessSpec): void {
  // Checked when the bundle opens, so the JS and native paths accept the same bundles.
  if (spec.blur_sigma > MAX_BLUR_SIGMA) throw new RangeError(`postprocess.blur_sigma ${spec.blur_sigma} is over ${MAX_BLUR_SIGMA}, the most the native kernels take`);
  if (spec.score.method === 'avgpool_max') {
    const { kernel } = spec.score;
    if (kernel > spec.upsample.width || kernel > spec.upsample.height) {
      throw new RangeError(`postprocess.score.kernel ${kernel} is larger than the ${spec.upsample.width}x${spec.upsample.height} upsampled map`);
    }
  }
}
