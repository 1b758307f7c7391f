/**
 * The shipped INT8 bundle: its reference frames, scored through preprocess → onnxruntime →
 * postprocess in the daemon, give the scores the toolchain wrote into its manifest.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import sharp from 'sharp';
import { InferenceConfigSchema } from '../../src/inference/config.js';
import { BundleError, frameFromFile, openDetector, type Detector, type Postprocessor, type Preprocessor } from '../../src/inference/index.js';
import { nativePostprocessor } from '../../src/native/postprocessor.js';
import { nativePreprocessor } from '../../src/native/preprocessor.js';
import { DEFAULT_MAX_REGIONS, type AnomalyRegion } from '../../src/postprocess/regions.js';
import { decide, regionsOf } from '../../src/scoring/decide.js';
import { withTempDir } from '../harness/index.js';
import { REPO_ROOT } from '../../src/toolchain/python-env.js';
import { REFERENCE_PY, pythonMissing, runPython } from './synthetic-bundle.js';

/** The bundle `npm start` runs (the config's default model), or another one to check by hand. */
const SHIPPED = process.env['MOEAD_PARITY_BUNDLE'] ?? join(REPO_ROOT, InferenceConfigSchema.parse({}).model);
const SAMPLE_FRAMES = join(REPO_ROOT, 'samples', 'frames');
const SAMPLE_MASKS = join(REPO_ROOT, 'samples', 'masks');

describe('shipped bundle', () => {
  let detector: Detector;
  before(async () => {
    // `npm start` runs this bundle: its absence is a failure, not a reason to skip.
    assert.ok(existsSync(join(SHIPPED, 'manifest.json')), `${SHIPPED}/manifest.json is missing: the shipped bundle must be in the repository (docs/toolchain.md builds it)`);
    detector = await openDetector({ bundleDir: SHIPPED, backend: { threads: 1 } });
  });
  after(() => detector?.close());

  test('reference frames score as the manifest says, within 1e-4 relative', async (t) => {
    const { manifest } = detector;
    for (const ref of manifest.reference_frames) {
      const detection = await detector.detect(await frameFromFile(join(SHIPPED, ref.file)));
      const rel = Math.abs(detection.score - ref.score) / Math.max(Math.abs(ref.score), 1e-12);
      t.diagnostic(`${ref.file} (${ref.label}): ${detection.score.toPrecision(7)} vs manifest ${ref.score.toPrecision(7)}, relative ${rel.toExponential(2)}, ${detection.timings.runMs.toFixed(1)} ms run`);
      assert.ok(rel < 1e-4, `${ref.file}: daemon ${detection.score} vs manifest ${ref.score} (relative ${rel})`);
    }
  });

  /** Runs `body` on a second detector of the shipped bundle with the daemon's native kernels plugged in; skips where the addon does not load. */
  async function withNativeDetector(
    t: TestContext,
    native: { preprocessor?: Preprocessor; postprocessor?: Postprocessor; reason?: string },
    body: (withNative: Detector) => Promise<void>,
  ): Promise<void> {
    if (!native.preprocessor && !native.postprocessor) {
      t.skip(`native addon not loadable here: ${native.reason}`);
      return;
    }
    const withNative = await openDetector({
      bundleDir: SHIPPED,
      backend: { threads: 1 },
      ...(native.preprocessor ? { preprocessor: native.preprocessor } : {}),
      ...(native.postprocessor ? { postprocessor: native.postprocessor } : {}),
    });
    try {
      await body(withNative);
    } finally {
      await withNative.close();
    }
  }

  test('the daemon\'s native post-processing gives the same scores and maps as the TypeScript one', (t) =>
    withNativeDetector(t, nativePostprocessor(), async (withNative) => {
      for (const ref of detector.manifest.reference_frames) {
        const frame = await frameFromFile(join(SHIPPED, ref.file));
        const [js, ours] = [await detector.detect(frame), await withNative.detect(frame)];
        assert.ok(Math.abs(ours.score - js.score) <= 1e-6 * Math.abs(js.score), `${ref.file}: native ${ours.score} vs TypeScript ${js.score}`);
        const [jsMap, ourMap] = [await detector.fullMap(js), await withNative.fullMap(ours)];
        assert.equal(ourMap.data.length, jsMap.data.length);
        let worst = 0;
        for (let i = 0; i < jsMap.data.length; i++) worst = Math.max(worst, Math.abs(ourMap.data[i]! - jsMap.data[i]!));
        assert.ok(worst <= 1e-5 * js.score, `${ref.file}: maps differ by ${worst}`);
      }
    }));

  test('the daemon\'s native preprocessing (PNG decoded by the addon) gives the manifest\'s scores too', (t) =>
    withNativeDetector(t, nativePreprocessor(), async (withNative) => {
      for (const ref of withNative.manifest.reference_frames) {
        const score = (await withNative.detect(await frameFromFile(join(SHIPPED, ref.file)))).score;
        const rel = Math.abs(score - ref.score) / Math.max(Math.abs(ref.score), 1e-12);
        t.diagnostic(`${ref.file}: native preprocessing ${score.toPrecision(7)} vs manifest ${ref.score.toPrecision(7)}, relative ${rel.toExponential(2)}`);
        assert.ok(rel < 1e-4, `${ref.file}: ${score} vs manifest ${ref.score} (relative ${rel})`);
      }
    }));

  test('EXPECTED FAILURE - a copy of it with one flipped byte in the model is refused, naming the file and its sha256', async () => {
    await withTempDir(async (dir) => {
      const copy = dir.file('bundle');
      await cp(SHIPPED, copy, { recursive: true });
      const model = join(copy, detector.manifest.model.file);
      const bytes = await readFile(model);
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x80;
      await writeFile(model, bytes);
      await assert.rejects(openDetector({ bundleDir: copy }), (err: unknown) => err instanceof BundleError && err.file === model && /sha256/.test(err.message));
    });
  });

  test('on the anomalous sample frames, the strongest area it reports lies on the defect (samples/masks)', async (t) => {
    const { threshold } = detector.manifest;
    let flagged = 0;
    for (const maskName of (await readdir(SAMPLE_MASKS)).sort()) {
      const frameName = maskName.replace(/_mask\.png$/, '.png');
      const detection = await detector.detect(await frameFromFile(join(SAMPLE_FRAMES, frameName)));
      const { regions } = regionsOf(detection, decide(detection.score, threshold), DEFAULT_MAX_REGIONS);
      if (!regions) {
        t.diagnostic(`${frameName}: score ${detection.score.toFixed(4)} under the threshold ${threshold.value.toFixed(4)}, no regions`);
        continue;
      }
      flagged += 1;
      const mask = await sharp(join(SAMPLE_MASKS, maskName)).greyscale().raw().toBuffer({ resolveWithObject: true });
      const { width, height } = mask.info;
      const [box] = regions as [AnomalyRegion];
      let onDefect = 0;
      let defect = 0;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          if (mask.data[y * width + x]! < 128) continue;
          defect += 1;
          const [fx, fy] = [(x + 0.5) / width, (y + 0.5) / height];
          if (fx >= box.x && fx <= box.x + box.w && fy >= box.y && fy <= box.y + box.h) onDefect += 1;
        }
      }
      t.diagnostic(`${frameName}: ${regions.length} area(s), the strongest ${JSON.stringify(box)} covers ${onDefect} of the defect's ${defect} pixels`);
      assert.ok(onDefect > 0, `${frameName}: the strongest area ${JSON.stringify(box)} misses the defect`);
    }
    // The shipped bundle flags five of the eight (the faint stains and the hole stay under its threshold).
    assert.ok(flagged >= 4, `only ${flagged} defective sample frames were anomalous`);
  });

  test('and equal the toolchain\'s Python evaluation run now (Pillow, onnxruntime, eval.postprocess)', { skip: pythonMissing() }, async () => {
    const refs = detector.manifest.reference_frames;
    const python = JSON.parse(runPython([REFERENCE_PY, 'score', SHIPPED, ...refs.map((r) => join(SHIPPED, r.file))])) as number[];
    for (const [i, ref] of refs.entries()) {
      const ours = (await detector.detect(await frameFromFile(join(SHIPPED, ref.file)))).score;
      assert.ok(Math.abs(ours - python[i]!) / python[i]! < 1e-4, `${ref.file}: ${ours} vs python ${python[i]}`);
    }
  });
});
