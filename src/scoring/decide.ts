/**
 * The per-frame decision: raw score against the threshold in force, plus the normalized
 * score every consumer can read without knowing the model's units.
 */
import type { ThresholdSpec } from '../bundle/manifest.js';
import { mapMax, type FloatMap } from '../postprocess/map.js';
import { normalizeScore, type ThresholdPoint } from '../postprocess/normalize.js';
import { anomalyRegions, type AnomalyRegion } from '../postprocess/regions.js';
import type { ScoringConfig } from '../config/schema.js';

export interface Decision {
  score: number;
  threshold: number;
  /** 0 at the median good image, 0.5 at the threshold, clamped to [0, 1]. */
  normalized: number;
  anomalous: boolean;
}

/** At the threshold counts as anomalous, as the toolchain's evaluation and `moead-edge score` decide. */
export function decide(score: number, threshold: ThresholdPoint): Decision {
  return { score, threshold: threshold.value, normalized: normalizeScore(score, threshold), anomalous: score >= threshold.value };
}

/**
 * The `regions` of a score message: where an anomalous frame is anomalous, measured against
 * the threshold that decided it; nothing for a frame under it, or with `max` 0.
 */
export function regionsOf(detection: { lowRes: FloatMap }, decision: Decision, max: number): { regions?: AnomalyRegion[] } {
  if (!decision.anomalous || max <= 0) return {};
  // The score never exceeds the largest cell but in rounding (a float32 post-processing): the
  // bar comes down to that cell then, so that an anomalous frame always says where.
  const bar = Math.min(decision.threshold, mapMax(detection.lowRes));
  const regions = anomalyRegions(detection.lowRes, bar, max);
  return regions.length > 0 ? { regions } : {};
}

/** A region for people: `x 0.29–0.50, y 0.43–0.71 of the frame`. */
export function describeRegion(region: AnomalyRegion): string {
  const span = (from: number, size: number) => `${from.toFixed(2)}–${Math.min(1, from + size).toFixed(2)}`;
  return `x ${span(region.x, region.w)}, y ${span(region.y, region.h)} of the frame`;
}

export class ThresholdError extends Error {
  override readonly name = 'ThresholdError';
}

/**
 * The threshold a camera uses: its own override, else the config's, else the manifest's.
 * The good median always comes from the manifest (it is a property of the model), so an
 * override must sit above it for the normalized score to mean anything.
 */
export function thresholdFor(camera: string, manifest: ThresholdSpec, scoring: Pick<ScoringConfig, 'threshold' | 'cameraThresholds'>): ThresholdPoint {
  const value = scoring.cameraThresholds[camera] ?? scoring.threshold ?? manifest.value;
  checkThreshold(value, manifest.good_median, camera);
  return { value, good_median: manifest.good_median };
}

export function checkThreshold(value: number, goodMedian: number, camera: string): void {
  if (!(Number.isFinite(value) && value > goodMedian)) {
    throw new ThresholdError(`threshold ${value} for camera ${camera} must be above the model's median good score ${goodMedian} (raw score units)`);
  }
}

/**
 * Every configured threshold that does not sit above the model's median good score, as
 * config problem lines (`scoring.threshold: ...; received 0.1`). Empty when all are fine.
 */
export function thresholdProblems(config: { cameras: readonly { name: string }[]; scoring: Pick<ScoringConfig, 'threshold' | 'cameraThresholds'> }, goodMedian: number): string[] {
  return config.cameras.flatMap((camera) => {
    const override = config.scoring.cameraThresholds[camera.name];
    const value = override ?? config.scoring.threshold;
    if (value === undefined) return [];
    try {
      checkThreshold(value, goodMedian, camera.name);
      return [];
    } catch (err) {
      if (!(err instanceof ThresholdError)) throw err;
      const path = override !== undefined ? `scoring.cameraThresholds.${camera.name}` : 'scoring.threshold';
      return [`${path}: ${err.message}; received ${value}`];
    }
  });
}
