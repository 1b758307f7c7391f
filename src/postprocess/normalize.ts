/**
 * Raw scores (the model's own units) → [0, 1] with the threshold at 0.5 and the median good
 * image at 0. One function, used for published scores and for heatmap colours alike.
 */
export interface ThresholdPoint {
  /** Decision threshold, raw units. */
  value: number;
  /** Median score of good images, raw units; below `value`. */
  good_median: number;
}

/** The raw scores that normalize to 0 and to 1 (the clamp's ends), for kernels that map linearly themselves. */
export function normalizedRange(threshold: ThresholdPoint): { low: number; high: number } {
  return { low: threshold.good_median, high: 2 * threshold.value - threshold.good_median };
}

export function normalizeScore(score: number, threshold: ThresholdPoint): number {
  const span = threshold.value - threshold.good_median;
  if (!(span > 0)) throw new RangeError(`threshold ${threshold.value} must be above the good median ${threshold.good_median}`);
  const n = 0.5 + (0.5 * (score - threshold.value)) / span;
  return Math.min(1, Math.max(0, n));
}
