/**
 * The last check before a downloaded model goes into service: it must score the bundle's
 * own reference frames as the toolchain did, through the daemon's real pre-processing,
 * backend and post-processing on this device.
 */
import { join } from 'node:path';
import type { Detector } from '../inference/detector.js';
import { frameFromFile } from '../inference/files.js';

export interface ReferenceResult {
  file: string;
  expected: number;
  score: number;
  label: 'good' | 'anomalous';
}

export interface ReferenceCheck {
  results: ReferenceResult[];
  /** One line per frame that does not score as the manifest says; empty when all do. */
  problems: string[];
  /** The largest difference from the manifest's score, as a share of what the tolerance allows (1 = at the limit). */
  worst: number;
}

/**
 * Scores every reference frame. A frame fails when its score is further from the
 * manifest's than `tolerance` × max(manifest score, threshold), or lands on the wrong side
 * of the manifest's threshold for its label.
 */
export async function measureReferenceFrames(detector: Detector, tolerance: number): Promise<ReferenceCheck> {
  const { manifest, dir } = detector.bundle;
  const threshold = manifest.threshold.value;
  const results: ReferenceResult[] = [];
  const problems: string[] = [];
  let worst = 0;
  for (const ref of manifest.reference_frames) {
    const detection = await detector.detect(await frameFromFile(join(dir, ref.file), 'reference'));
    results.push({ file: ref.file, expected: ref.score, score: detection.score, label: ref.label });
    const allowed = tolerance * Math.max(ref.score, threshold);
    const off = Math.abs(detection.score - ref.score);
    worst = Math.max(worst, allowed > 0 ? off / allowed : off > 0 ? Infinity : 0);
    if (off > allowed) {
      problems.push(`${ref.file} scored ${detection.score.toFixed(4)}, the manifest says ${ref.score.toFixed(4)} (±${allowed.toFixed(4)} allowed, ota.referenceTolerance)`);
    } else if ((detection.score >= threshold) !== (ref.label === 'anomalous')) {
      problems.push(`${ref.file} is labelled ${ref.label} but scored ${detection.score.toFixed(4)} against the threshold ${threshold.toFixed(4)}`);
    }
  }
  return { results, problems, worst };
}

/** `measureReferenceFrames`, throwing with every failing frame listed. */
export async function checkReferenceFrames(detector: Detector, tolerance: number): Promise<ReferenceResult[]> {
  const { results, problems } = await measureReferenceFrames(detector, tolerance);
  if (problems.length > 0) throw new Error(`reference frames do not score as the manifest says: ${problems.join('; ')}`);
  return results;
}
