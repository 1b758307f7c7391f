/**
 * `moead-edge score` and `moead-edge calibrate`: score image files with a bundle, derive a
 * threshold from good images. The work is the inference concern's; this is parsing,
 * output and exit codes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { openDetector, type Detector } from '../inference/index.js';
import { calibrate, DEFAULT_THRESHOLD_RULE, scoreImages, writeManifestWithThreshold, type ScoredImage } from '../inference/files.js';
import { ConfigStore } from '../config/store.js';
import { loadConfig } from '../config/load.js';
import { DEFAULT_MAX_REGIONS } from '../postprocess/regions.js';
import { decide, regionsOf } from '../scoring/decide.js';
import { EXIT, numberOption, parse, UsageError } from './args.js';

export const SCORE_USAGE = `usage: moead-edge score --model BUNDLE [--json] [--heatmaps DIR] [--threshold T] [--threads N] IMAGE...
  Scores each image with the bundle (a folder with manifest.json + model.onnx).
  --json           one JSON line per image: {file, score, normalized, threshold, anomalous}
                   ({file, error} for an image that cannot be read)
  --heatmaps DIR   also write DIR/<image>.jpg: the heatmap blended over the image
  --threshold T    decide with T (raw score units) instead of the manifest's threshold
  --threads N      intra-op threads (default: one per core)
  Exit code 0 when every image was scored, 1 when any could not be read (the rest are still scored).`;

export const CALIBRATE_USAGE = `usage: moead-edge calibrate --model BUNDLE --good DIR [--out FILE] [--config FILE] [--quantile Q] [--margin M] [--threads N]
  Scores every image in DIR (all good) and derives a threshold: the Q quantile of their
  scores plus M times its distance from the median (defaults Q=${DEFAULT_THRESHOLD_RULE.quantile}, M=${DEFAULT_THRESHOLD_RULE.margin}).
  --out FILE      write a copy of the bundle's manifest with the new threshold to FILE
                  (put it next to model.onnx in a bundle copy to ship it)
  --config FILE   set scoring.threshold in that config file (validated first, comments kept)
  --threads N     intra-op threads (default: one per core)
  Prints the threshold as JSON on stdout; progress goes to stderr.`;

async function open(model: string, threads: number | undefined): Promise<Detector> {
  return openDetector({ bundleDir: resolve(model), ...(threads !== undefined ? { backend: { threads } } : {}) });
}

export async function scoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      model: { type: 'string', short: 'm' },
      json: { type: 'boolean' },
      heatmaps: { type: 'string' },
      threshold: { type: 'string' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    SCORE_USAGE,
    { positionals: true },
  );
  if (values.help) {
    console.log(SCORE_USAGE);
    return EXIT.ok;
  }
  if (!values.model) throw new UsageError('score: --model BUNDLE is required', SCORE_USAGE);
  if (positionals.length === 0) throw new UsageError('score: give at least one IMAGE', SCORE_USAGE);
  const thresholdValue = numberOption(values.threshold, 'threshold', SCORE_USAGE, (n) => n > 0, 'a number > 0');
  const threads = numberOption(values.threads, 'threads', SCORE_USAGE, (n) => Number.isInteger(n) && n >= 0 && n <= 64, 'an integer 0..64');

  const detector = await open(values.model, threads);
  try {
    const manifestThreshold = detector.manifest.threshold;
    if (thresholdValue !== undefined && !(thresholdValue > manifestThreshold.good_median)) {
      throw new UsageError(`--threshold: expected a value above the model's median good score ${manifestThreshold.good_median}, received ${thresholdValue}`, SCORE_USAGE);
    }
    const threshold = { value: thresholdValue ?? manifestThreshold.value, good_median: manifestThreshold.good_median };
    if (values.heatmaps) await mkdir(values.heatmaps, { recursive: true });
    let failed = 0;
    const onResult = async (r: ScoredImage) => {
      if (!r.ok) {
        failed += 1;
        console.error(`moead-edge score: ${r.error}`);
        if (values.json) console.log(JSON.stringify({ file: r.file, error: r.error }));
        return;
      }
      if (values.heatmaps) {
        const out = join(values.heatmaps, `${basename(r.file, extname(r.file))}.jpg`);
        await writeFile(out, await detector.snapshot(r.frame, r.detection, { threshold }));
      }
      if (values.json) {
        const where = regionsOf(r.detection, decide(r.score, threshold), DEFAULT_MAX_REGIONS);
        console.log(JSON.stringify({ file: r.file, score: r.score, normalized: r.normalized, threshold: threshold.value, anomalous: r.anomalous, ...where }));
      } else {
        console.log(`${r.anomalous ? 'ANOMALOUS' : 'ok       '}  score ${r.score.toFixed(5)}  normalized ${r.normalized.toFixed(3)}  ${r.file}`);
      }
    };
    await scoreImages(detector, positionals, { threshold, onResult });
    if (failed > 0) console.error(`moead-edge score: ${failed} of ${positionals.length} image(s) could not be scored`);
    return failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await detector.close();
  }
}

export async function calibrateCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string', short: 'm' },
      good: { type: 'string' },
      out: { type: 'string', short: 'o' },
      config: { type: 'string' },
      quantile: { type: 'string' },
      margin: { type: 'string' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    CALIBRATE_USAGE,
  );
  if (values.help) {
    console.log(CALIBRATE_USAGE);
    return EXIT.ok;
  }
  if (!values.model) throw new UsageError('calibrate: --model BUNDLE is required', CALIBRATE_USAGE);
  if (!values.good) throw new UsageError('calibrate: --good DIR is required', CALIBRATE_USAGE);
  const quantile = numberOption(values.quantile, 'quantile', CALIBRATE_USAGE, (n) => n >= 0.5 && n <= 1, 'a number in [0.5, 1]') ?? DEFAULT_THRESHOLD_RULE.quantile;
  const margin = numberOption(values.margin, 'margin', CALIBRATE_USAGE, (n) => n >= 0, 'a number >= 0') ?? DEFAULT_THRESHOLD_RULE.margin;
  const threads = numberOption(values.threads, 'threads', CALIBRATE_USAGE, (n) => Number.isInteger(n) && n >= 0 && n <= 64, 'an integer 0..64');
  // A config that cannot take the result is refused before minutes of scoring.
  const store = values.config ? new ConfigStore(await loadConfig(values.config)) : undefined;

  const detector = await open(values.model, threads);
  try {
    let unreadable = 0;
    const { threshold, scored } = await calibrate(detector, resolve(values.good), {
      rule: { quantile, margin },
      onResult: (r) => {
        if (r.ok) console.error(`  ${r.score.toFixed(5)}  ${r.file}`);
        else {
          unreadable += 1;
          console.error(`moead-edge calibrate: skipped ${r.error}`);
        }
      },
    });
    if (values.out) {
      await writeManifestWithThreshold(detector.manifest, threshold, resolve(values.out));
      console.error(`wrote ${values.out} (manifest with the new threshold)`);
    }
    if (store) {
      const change = await store.set(['scoring', 'threshold'], threshold.value, { persist: true });
      if (!change.ok) {
        console.error(`moead-edge calibrate: ${values.config} not changed: ${change.error}`);
        return EXIT.failed;
      }
      console.error(`set scoring.threshold: ${threshold.value} in ${values.config}`);
    }
    console.log(JSON.stringify({ ...threshold, previous: detector.manifest.threshold.value, scored: scored.length - unreadable, unreadable }));
    return EXIT.ok;
  } finally {
    await detector.close();
  }
}
