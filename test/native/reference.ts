/**
 * Plain TypeScript reference implementations of the native kernels, written from the
 * definitions (torch's bilinear, scipy's gaussian_filter, BT.601 limited range) rather
 * than from the C++ code, and a seeded generator of random test cases. Shared by the CPU
 * kernel test and the GPU suite.
 */
import type { HeatmapSpec, NormalizeSpec, PostprocessPlan, RawPixelFormat } from '../../src/native/binding.js';
import { rng } from '../harness/random.js';

export { rng };

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function frameBytes(format: RawPixelFormat, width: number, height: number): number {
  const px = width * height;
  return { rgb24: 3 * px, bgr24: 3 * px, rgba: 4 * px, gray: px, yuyv: 2 * px, nv12: (3 * px) / 2 }[format];
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

function yuvToRgb(y: number, u: number, v: number): [number, number, number] {
  // BT.601: Kr = 0.299, Kb = 0.114; limited range luma 16..235, chroma 16..240.
  const yy = ((y - 16) * 255) / 219;
  const cb = ((u - 128) * 255) / 224;
  const cr = ((v - 128) * 255) / 224;
  const r = yy + 1.402 * cr;
  const b = yy + 1.772 * cb;
  const g = (yy - 0.299 * r - 0.114 * b) / 0.587;
  return [clamp(r, 0, 255), clamp(g, 0, 255), clamp(b, 0, 255)];
}

export function pixelRgb(data: Uint8Array, format: RawPixelFormat, width: number, height: number, x: number, y: number): [number, number, number] {
  const p = y * width + x;
  const at = (i: number): number => data[i] ?? Number.NaN;
  switch (format) {
    case 'rgb24': return [at(3 * p), at(3 * p + 1), at(3 * p + 2)];
    case 'bgr24': return [at(3 * p + 2), at(3 * p + 1), at(3 * p)];
    case 'rgba': return [at(4 * p), at(4 * p + 1), at(4 * p + 2)];
    case 'gray': return [at(p), at(p), at(p)];
    case 'yuyv': {
      const pair = 2 * (y * width + x - (x % 2));
      return yuvToRgb(at(2 * p), at(pair + 1), at(pair + 3));
    }
    case 'nv12': {
      const uv = width * height + Math.floor(y / 2) * width + x - (x % 2);
      return yuvToRgb(at(p), at(uv), at(uv + 1));
    }
  }
}

/** torch.nn.functional.interpolate(mode='bilinear') source position and weights along one axis. */
function taps(d: number, inSize: number, outSize: number, alignCorners: boolean): [number, number, number] {
  let src = alignCorners ? (outSize > 1 ? (d * (inSize - 1)) / (outSize - 1) : 0) : ((d + 0.5) * inSize) / outSize - 0.5;
  src = Math.max(0, src);
  const i0 = Math.min(Math.floor(src), inSize - 1);
  const i1 = Math.min(i0 + 1, inSize - 1);
  return [i0, i1, i0 === inSize - 1 ? 0 : src - i0];
}

function bilinear(get: (x: number, y: number) => number, inW: number, inH: number, outW: number, outH: number, alignCorners: boolean, ox: number, oy: number): number {
  const [x0, x1, fx] = taps(ox, inW, outW, alignCorners);
  const [y0, y1, fy] = taps(oy, inH, outH, alignCorners);
  const top = get(x0, y0) * (1 - fx) + get(x1, y0) * fx;
  const bottom = get(x0, y1) * (1 - fx) + get(x1, y1) * fx;
  return top * (1 - fy) + bottom * fy;
}

/**
 * torch.nn.functional.interpolate(mode='bilinear', antialias=True, align_corners=False)
 * weights along one axis: a triangle filter widened by the shrink factor, over the source
 * samples whose centre lies within its support, normalized to sum 1.
 */
function antialiasWeights(d: number, inSize: number, outSize: number): Map<number, number> {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const centre = (d + 0.5) * scale;
  const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
  const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
  const weights = new Map<number, number>();
  let total = 0;
  for (let j = lo; j < hi; j++) {
    const w = Math.max(0, 1 - Math.abs((j - centre + 0.5) / support));
    weights.set(j, w);
    total += w;
  }
  for (const [j, w] of weights) weights.set(j, w / total);
  return weights;
}

export function refPreprocess(data: Uint8Array, format: RawPixelFormat, width: number, height: number, spec: NormalizeSpec): Float64Array {
  const out = new Float64Array(3 * spec.width * spec.height);
  const plane = spec.width * spec.height;
  const f = Math.fround;
  const xw = Array.from({ length: spec.width }, (_, d) => antialiasWeights(d, width, spec.width));
  const yw = Array.from({ length: spec.height }, (_, d) => antialiasWeights(d, height, spec.height));
  for (let oy = 0; oy < spec.height; oy++) {
    for (let ox = 0; ox < spec.width; ox++) {
      const rgb = [0, 0, 0];
      for (const [y, wy] of yw[oy] ?? []) {
        for (const [x, wx] of xw[ox] ?? []) {
          const p = pixelRgb(data, format, width, height, x, y);
          for (let c = 0; c < 3; c++) rgb[c]! += wy * wx * (p[c] ?? Number.NaN);
        }
      }
      for (let c = 0; c < 3; c++) {
        const v = rgb[spec.color === 'RGB' ? c : 2 - c] ?? Number.NaN;
        out[c * plane + oy * spec.width + ox] = (v * f(spec.scale) - f(spec.mean[c] ?? 0)) / f(spec.std[c] ?? 1);
      }
    }
  }
  return out;
}

export function refUpsample(map: ArrayLike<number>, w: number, h: number, outW: number, outH: number, alignCorners: boolean): Float64Array {
  const out = new Float64Array(outW * outH);
  const get = (x: number, y: number): number => map[y * w + x] ?? Number.NaN;
  for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) out[y * outW + x] = bilinear(get, w, h, outW, outH, alignCorners, x, y);
  return out;
}

/** scipy.ndimage.gaussian_filter(map, sigma, truncate=4.0, mode='reflect'). */
export function refGaussian(map: ArrayLike<number>, w: number, h: number, sigma: number): Float64Array {
  if (sigma === 0) return Float64Array.from(map);
  const radius = Math.trunc(4 * sigma + 0.5);
  const weights: number[] = [];
  for (let i = -radius; i <= radius; i++) weights.push(Math.exp((-0.5 * i * i) / (sigma * sigma)));
  const total = weights.reduce((a, b) => a + b, 0);
  const kernel = weights.map((v) => v / total);
  // reflect: d c b a | a b c d | d c b a, repeating for offsets past the image.
  const reflect = (i: number, n: number): number => {
    let m = ((i % (2 * n)) + 2 * n) % (2 * n);
    if (m >= n) m = 2 * n - 1 - m;
    return m;
  };
  const cols = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) acc += (kernel[k + radius] ?? 0) * (map[reflect(y + k, h) * w + x] ?? Number.NaN);
      cols[y * w + x] = acc;
    }
  }
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) acc += (kernel[k + radius] ?? 0) * (cols[y * w + reflect(x + k, w)] ?? Number.NaN);
      out[y * w + x] = acc;
    }
  }
  return out;
}

export function refScore(map: ArrayLike<number>, w: number, h: number, kernel: number): number {
  let best = -Infinity;
  if (kernel === 0) {
    for (let i = 0; i < w * h; i++) best = Math.max(best, map[i] ?? Number.NaN);
    return best;
  }
  for (let y = 0; y + kernel <= h; y++) {
    for (let x = 0; x + kernel <= w; x++) {
      let sum = 0;
      for (let dy = 0; dy < kernel; dy++) for (let dx = 0; dx < kernel; dx++) sum += map[(y + dy) * w + x + dx] ?? Number.NaN;
      best = Math.max(best, sum / (kernel * kernel));
    }
  }
  return best;
}

/** The whole post-processing chain, with the map rounded to float32 between steps as the kernels store it. */
export function refPostprocess(map: Float32Array, w: number, h: number, plan: PostprocessPlan): { map: Float32Array; score: number } {
  const up = Float32Array.from(refUpsample(map, w, h, plan.width, plan.height, plan.alignCorners));
  const blurred = Float32Array.from(refGaussian(up, plan.width, plan.height, plan.sigma));
  return { map: blurred, score: refScore(blurred, plan.width, plan.height, plan.kernel) };
}

/** The heatmaps' colour ramp at t = (v - low) / (high - low), clamped: r, g, b in 0..1. */
function refRamp(v: number, low: number, high: number): { t: number; rgb: number[] } {
  const f = Math.fround;
  const t = clamp((v - f(low)) / (f(high) - f(low)), 0, 1);
  return { t, rgb: [clamp(1.5 - Math.abs(4 * t - 3), 0, 1), clamp(1.5 - Math.abs(4 * t - 2), 0, 1), clamp(1.5 - Math.abs(4 * t - 1), 0, 1)] };
}

export function refHeatmap(rgb: Uint8Array, map: Float32Array, spec: HeatmapSpec): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const f = Math.fround;
  for (let i = 0; i < map.length; i++) {
    const ramp = refRamp(map[i] ?? 0, spec.low, spec.high).rgb;
    for (let c = 0; c < 3; c++) {
      const v = (1 - f(spec.alpha)) * (rgb[3 * i + c] ?? 0) + f(spec.alpha) * (ramp[c] ?? 0) * 255;
      out[3 * i + c] = Math.floor(clamp(v, 0, 255) + 0.5);
    }
  }
  return out;
}

/**
 * An event snapshot's overlay (image_ops.h, SnapshotOverlay): per map cell the ramp colour and
 * the opacity 0.15 + 0.55 t, both rounded to 8 bits and premultiplied; each plane enlarged to
 * the frame with refUpsample (half-pixel); composited "over" the frame.
 */
export function refOverlay(rgb: Uint8Array, width: number, height: number, map: Float32Array, mapWidth: number, mapHeight: number, spec: { low: number; high: number }): Uint8Array {
  const planes = [0, 1, 2, 3].map(() => new Float64Array(map.length));
  for (let i = 0; i < map.length; i++) {
    const { t, rgb: colour } = refRamp(map[i] ?? 0, spec.low, spec.high);
    const alpha = Math.floor((0.15 + 0.55 * t) * 255 + 0.5) / 255;
    for (let c = 0; c < 3; c++) planes[c]![i] = Math.floor((colour[c] ?? 0) * 255 + 0.5) * alpha;
    planes[3]![i] = alpha;
  }
  const [r, g, b, a] = planes.map((p) => refUpsample(p, mapWidth, mapHeight, width, height, false));
  const out = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    [r, g, b].forEach((plane, c) => {
      out[3 * p + c] = Math.floor(clamp((plane?.[p] ?? 0) + (rgb[3 * p + c] ?? 0) * (1 - (a?.[p] ?? 0)), 0, 255) + 0.5);
    });
  }
  return out;
}

/** Largest |a - b| / max(1, |b|) over two arrays of equal length. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? Number.NaN;
    const y = b[i] ?? Number.NaN;
    const e = Math.abs(x - y) / Math.max(1, Math.abs(y));
    if (!(e <= worst)) worst = e; // NaN propagates as a failure
  }
  return worst;
}

export interface PreprocessCase { seed: number; format: RawPixelFormat; width: number; height: number; data: Uint8Array; spec: NormalizeSpec }
export interface PostprocessCase { seed: number; width: number; height: number; map: Float32Array; plan: PostprocessPlan }

const FORMATS: RawPixelFormat[] = ['rgb24', 'bgr24', 'rgba', 'gray', 'yuyv', 'nv12'];

export function randomPreprocessCase(seed: number, maxSide = 48): PreprocessCase {
  const r = rng(seed);
  const format = FORMATS[randInt(r, 0, FORMATS.length - 1)] ?? 'rgb24';
  const even = format === 'yuyv' || format === 'nv12';
  let width = randInt(r, 1, maxSide);
  let height = randInt(r, 1, maxSide);
  if (even) width += width % 2;
  if (format === 'nv12') height += height % 2;
  const data = new Uint8Array(frameBytes(format, width, height));
  for (let i = 0; i < data.length; i++) data[i] = randInt(r, 0, 255);
  const spec: NormalizeSpec = {
    width: randInt(r, 1, maxSide),
    height: randInt(r, 1, maxSide),
    color: r() < 0.5 ? 'RGB' : 'BGR',
    scale: r() < 0.5 ? 1 / 255 : 1,
    mean: [r(), r(), r()],
    std: [0.1 + r(), 0.1 + r(), 0.1 + r()],
  };
  return { seed, format, width, height, data, spec };
}

export function randomPostprocessCase(seed: number, maxSide = 48): PostprocessCase {
  const r = rng(seed);
  const width = randInt(r, 1, 20);
  const height = randInt(r, 1, 20);
  const map = new Float32Array(width * height);
  for (let i = 0; i < map.length; i++) map[i] = r() * 4;
  const outW = randInt(r, 1, maxSide);
  const outH = randInt(r, 1, maxSide);
  const plan: PostprocessPlan = {
    width: outW,
    height: outH,
    alignCorners: r() < 0.5,
    sigma: r() < 0.2 ? 0 : 0.3 + r() * 5,
    kernel: r() < 0.3 ? 0 : randInt(r, 1, Math.min(outW, outH, 9)),
  };
  return { seed, width, height, map, plan };
}
