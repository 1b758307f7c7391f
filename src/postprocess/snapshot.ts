/**
 * Event snapshots: the frame at its own size with the anomaly map, coloured, blended over
 * it, as a JPEG. Colours use the same normalization as published scores, so the threshold
 * is always the middle of the colour scale (green-yellow) whatever the model's units.
 */
import sharp, { type Sharp } from 'sharp';
import type { Frame } from '../capture/frame.js';
import { decodeFrame, type Pixels } from '../preprocess/image.js';
import type { FloatMap } from './map.js';
import { normalizeScore, type ThresholdPoint } from './normalize.js';

/** Jet colour scale: 0 blue, 0.5 green-yellow, 1 red; components in 0..1. */
export function jet(t: number): [number, number, number] {
  const clamp = (v: number): number => Math.min(1, Math.max(0, v));
  return [clamp(1.5 - Math.abs(4 * t - 3)), clamp(1.5 - Math.abs(4 * t - 2)), clamp(1.5 - Math.abs(4 * t - 1))];
}

/**
 * RGBA heatmap at the map's size; low values are nearly transparent so the part stays visible.
 * A NaN value is drawn as the low end and ±Infinity as the ends, as the native kernels draw them.
 */
export function heatmapRgba(map: FloatMap, threshold: ThresholdPoint): Buffer {
  const out = Buffer.alloc(map.width * map.height * 4);
  for (let i = 0; i < map.data.length; i++) {
    // normalizeScore keeps a NaN (a published score must not hide one); here it would become a
    // transparent black pixel, unlike the addon's overlay (pixel_math.h, RampPosition).
    const n = normalizeScore(map.data[i]!, threshold);
    const t = Number.isNaN(n) ? 0 : n;
    const [r, g, b] = jet(t);
    out[4 * i] = Math.round(r * 255);
    out[4 * i + 1] = Math.round(g * 255);
    out[4 * i + 2] = Math.round(b * 255);
    out[4 * i + 3] = Math.round((0.15 + 0.55 * t) * 255);
  }
  return out;
}

/** Interleaved RGB bytes from any decoded pixel layout. */
function toRgb(pixels: Pixels): Buffer {
  if (pixels.channels === 3 && pixels.order === 'RGB') return pixels.data;
  const n = pixels.width * pixels.height;
  const out = Buffer.alloc(n * 3);
  const { data, channels } = pixels;
  const [ri, gi, bi] = channels === 1 ? [0, 0, 0] : pixels.order === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  for (let i = 0, s = 0; i < n; i++, s += channels) {
    out[3 * i] = data[s + ri]!;
    out[3 * i + 1] = data[s + gi]!;
    out[3 * i + 2] = data[s + bi]!;
  }
  return out;
}

export interface SnapshotOptions {
  /** JPEG quality, 1..100. */
  quality?: number;
}

/**
 * The overlay drawn by other means (the native addon): the frame's RGB with the heatmap
 * composited as below, or undefined for a frame it does not handle (then sharp draws it).
 */
export type SnapshotOverlay = (rgb: Buffer, width: number, height: number, map: FloatMap, threshold: ThresholdPoint) => Promise<Buffer | undefined>;

/** JPEG of `frame` with `map` (stretched to the frame, as the frame was to the model) blended over. */
export async function renderSnapshot(frame: Frame, map: FloatMap, threshold: ThresholdPoint, options: SnapshotOptions = {}, overlay?: SnapshotOverlay): Promise<Buffer> {
  const pixels = await decodeFrame(frame);
  const { width, height } = pixels;
  const rgb = toRgb(pixels);
  const jpeg = (image: Sharp) => image.jpeg({ quality: options.quality ?? 85 }).toBuffer();
  const blended = await overlay?.(rgb, width, height, map, threshold);
  if (blended) return jpeg(sharp(blended, { raw: { width, height, channels: 3 } }));
  const heat = await sharp(heatmapRgba(map, threshold), { raw: { width: map.width, height: map.height, channels: 4 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return jpeg(sharp(rgb, { raw: { width, height, channels: 3 } }).composite([{ input: heat, raw: { width, height, channels: 4 }, blend: 'over' }]));
}
