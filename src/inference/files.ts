/**
 * Scoring image files and calibrating a threshold from good images: what `moead-edge score`
 * and `moead-edge calibrate` do, without the argument parsing.
 */
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ManifestSchema, type Manifest, type ThresholdSpec } from '../bundle/manifest.js';
import type { Frame } from '../capture/frame.js';
import { normalizeScore } from '../postprocess/normalize.js';
import type { Detection, Detector } from './detector.js';

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff']);

/** An image file as an encoded frame (decoded later by preprocessing). */
export async function frameFromFile(file: string, camera = 'file', index = 0): Promise<Frame> {
  const data = await readFile(file);
  return { camera, index, capturedAt: Date.now(), capturedMono: performance.now(), format: 'encoded', width: 0, height: 0, data, origin: file };
}

/** Image files directly inside `dir`, in name order. */
export async function listImages(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase()))
    .map((e) => join(dir, e.name))
    .sort();
}

export type ScoredImage =
  | { file: string; ok: true; score: number; normalized: number; anomalous: boolean; detection: Detection; frame: Frame }
  | { file: string; ok: false; error: string };

/**
 * Scores each file in turn; an unreadable or undecodable file gives an `ok: false` entry
 * and the rest are still scored. `onResult` sees each result as it comes (for streaming
 * one JSON line per image).
 */
export async function scoreImages(
  detector: Detector,
  files: readonly string[],
  options: { threshold?: { value: number; good_median: number }; onResult?: (result: ScoredImage) => void | Promise<void> } = {},
): Promise<ScoredImage[]> {
  const threshold = options.threshold ?? detector.manifest.threshold;
  const results: ScoredImage[] = [];
  for (const [index, file] of files.entries()) {
    let result: ScoredImage;
    try {
      const frame = await frameFromFile(file, 'cli', index);
      const detection = await detector.detect(frame);
      result = {
        file,
        ok: true,
        score: detection.score,
        normalized: normalizeScore(detection.score, threshold),
        anomalous: detection.score >= threshold.value,
        detection,
        frame,
      };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      result = { file, ok: false, error: message.startsWith(file) ? message : `${file}: ${message}` };
    }
    results.push(result);
    await options.onResult?.(result);
  }
  return results;
}

/** numpy.quantile's default ("linear", type 7) on unsorted values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside [0, 1]`);
  const sorted = [...values].sort((a, b) => a - b);
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface ThresholdRule {
  /** Quantile of the good scores the threshold starts from, in [0.5, 1]. */
  quantile: number;
  /** Added on top, as a fraction of the spread between that quantile and the median. */
  margin: number;
}

/** The toolchain's defaults (training/moead_edge/bundle/writer.py explains the choice). */
export const DEFAULT_THRESHOLD_RULE: ThresholdRule = { quantile: 0.99, margin: 0.25 };

/**
 * The toolchain's threshold_from_good, number for number: value = q + margin·(q − median)
 * with q the good scores' quantile. A set without spread keeps a minimal one, so the
 * threshold always sits above the median (normalized scores need that).
 */
export function thresholdFromGood(scores: readonly number[], rule: ThresholdRule = DEFAULT_THRESHOLD_RULE): ThresholdSpec {
  if (scores.length === 0) throw new RangeError('threshold from good images: no good scores');
  if (!scores.every((s) => Number.isFinite(s) && s >= 0)) throw new RangeError('threshold from good images: scores must be finite and >= 0');
  if (!(rule.quantile >= 0.5 && rule.quantile <= 1)) throw new RangeError(`threshold quantile must be in [0.5, 1], got ${rule.quantile}`);
  if (!(rule.margin >= 0)) throw new RangeError(`threshold margin must be >= 0, got ${rule.margin}`);
  const median = quantile(scores, 0.5);
  const high = quantile(scores, rule.quantile);
  const spread = Math.max(high - median, 1e-6 * Math.max(Math.abs(median), 1));
  const value = high > median ? high + rule.margin * spread : median + (1 + rule.margin) * spread;
  return { value, good_median: median, method: 'quantile_margin', quantile: rule.quantile, margin: rule.margin, images: scores.length };
}

export interface Calibration {
  threshold: ThresholdSpec;
  scored: ScoredImage[];
}

/** Scores every image in `goodDir` and derives a threshold; unreadable files are reported, not used. */
export async function calibrate(
  detector: Detector,
  goodDir: string,
  options: { rule?: ThresholdRule; onResult?: (result: ScoredImage) => void | Promise<void> } = {},
): Promise<Calibration> {
  const files = await listImages(goodDir);
  if (files.length === 0) throw new Error(`${goodDir}: no images (${[...IMAGE_EXTENSIONS].join(', ')})`);
  const scored = await scoreImages(detector, files, options.onResult ? { onResult: options.onResult } : {});
  const scores = scored.flatMap((r) => (r.ok ? [r.score] : []));
  if (scores.length === 0) throw new Error(`${goodDir}: none of the ${files.length} image(s) could be scored`);
  return { threshold: thresholdFromGood(scores, options.rule), scored };
}

/**
 * Writes `manifest` with a new threshold to `file` (validated first, replaced atomically).
 * The model file's sha256 is unchanged, so a bundle copy with this manifest still loads.
 */
export async function writeManifestWithThreshold(manifest: Manifest, threshold: ThresholdSpec, file: string): Promise<Manifest> {
  const updated = ManifestSchema.parse({ ...manifest, threshold });
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(updated, null, 2)}\n`);
  await rename(tmp, file);
  return updated;
}
