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

/**
 * Scores every reference frame. A frame fails when its score is further from the
 * manifest's than `tolerance` × max(manifest score, threshold), or lands on the wrong side
 * of the manifest's threshold for its label. Throws with every failing frame listed.
 */
export async function checkReferenceFrames(detector: Detector, tolerance: number): Promise<ReferenceResult[]> {
  const { manifest, dir } = detector.bundle;
  const threshold = manifest.threshold.value;
  const results: ReferenceResult[] = [];
  const problems: string[] = [];
  for (const ref of manifest.reference_frames) {
    const detection = await detector.detect(await frameFromFile(join(dir, ref.file), 'reference'));
    results.push({ file: ref.file, expected: ref.score, score: detection.score, label: ref.label });
    const allowed = tolerance * Math.max(ref.score, threshold);
    const off = Math.abs(detection.score - ref.score);
    if (off > allowed) {
      problems.push(`${ref.file} scored ${detection.score.toFixed(4)}, the manifest says ${ref.score.toFixed(4)} (±${allowed.toFixed(4)} allowed, ota.referenceTolerance)`);
    } else if ((detection.score >= threshold) !== (ref.label === 'anomalous')) {
      problems.push(`${ref.file} is labelled ${ref.label} but scored ${detection.score.toFixed(4)} against the threshold ${threshold.toFixed(4)}`);
    }
  }
  if (problems.length > 0) throw new Error(`reference frames do not score as the manifest says: ${problems.join('; ')}`);
  return results;
}
