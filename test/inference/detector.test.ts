/**
 * The detector end to end on a real (synthetic) bundle: scores equal the toolchain's Python
 * evaluation (Pillow, onnxruntime, moead_edge.eval.postprocess), snapshots, file scoring and
 * calibration.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { loadBundle } from '../../src/bundle/load.js';
import type { Frame } from '../../src/capture/frame.js';
import {
  DEFAULT_THRESHOLD_RULE,
  PreprocessError,
  calibrate,
  frameFromFile,
  openDetector,
  quantile,
  scoreImages,
  thresholdFromGood,
  writeManifestWithThreshold,
  type Detector,
} from '../../src/inference/index.js';
import { nativePostprocessor } from '../../src/native/postprocessor.js';
import { preprocessFrame } from '../../src/preprocess/index.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { REFERENCE_PY, gradientPng, pythonMissing, runPython, writeSyntheticBundle } from './synthetic-bundle.js';

const SIZE = 64;

test('quantile follows numpy\'s default linear interpolation', () => {
  assert.equal(quantile([3, 1, 2], 0.5), 2);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.ok(Math.abs(quantile([10, 0, 5, 7, 1], 0.99) - 9.88) < 1e-12);
  assert.equal(quantile([4], 0.9), 4);
  assert.throws(() => quantile([], 0.5), /no values/);
});

test('thresholdFromGood: quantile plus margin, a minimal spread for identical scores', () => {
  const t = thresholdFromGood([1, 2, 3, 4, 5], { quantile: 1, margin: 0.5 });
  assert.deepEqual(t, { value: 5 + 0.5 * (5 - 3), good_median: 3, method: 'quantile_margin', quantile: 1, margin: 0.5, images: 5 });
  const flat = thresholdFromGood([2, 2, 2]);
  assert.ok(flat.value > flat.good_median && Math.abs(flat.value - (2 + 1.25 * 2e-6)) < 1e-15);
  assert.throws(() => thresholdFromGood([]), /no good scores/);
  assert.throws(() => thresholdFromGood([1, Number.NaN]), /finite and >= 0/);
  assert.throws(() => thresholdFromGood([1, 2], { quantile: 0.4, margin: 0 }), /quantile must be in \[0\.5, 1\]/);
});

test('thresholdFromGood equals the toolchain\'s threshold_from_good', { skip: pythonMissing() }, () => {
  const sets = [[0.5, 0.7, 0.61, 0.9, 0.55, 1.2, 0.8], [3, 3, 3], [0.01], [4, 1, 2, 8, 16, 2.5]];
  const rules = [DEFAULT_THRESHOLD_RULE, { quantile: 0.9, margin: 0 }, { quantile: 0.5, margin: 1 }];
  const code = `import json, sys
sys.path.insert(0, "training")
from moead_edge.bundle.writer import threshold_from_good
cases = json.load(sys.stdin)
print(json.dumps([threshold_from_good(s, r["quantile"], r["margin"]) for s, r in cases]))`;
  const cases = sets.flatMap((s) => rules.map((r) => [s, r] as const));
  const python = JSON.parse(runPython(['-c', code], JSON.stringify(cases))) as unknown[];
  for (const [i, [s, r]] of cases.entries()) {
    const ours = thresholdFromGood(s, r);
    const theirs = python[i] as typeof ours;
    assert.deepEqual({ ...ours, value: 0 }, { ...theirs, value: 0 }, `case ${i}`);
    assert.ok(Math.abs(ours.value - theirs.value) <= 1e-12 * Math.max(1, theirs.value), `case ${i}: ${ours.value} vs ${theirs.value}`);
  }
});

describe('detector', { skip: pythonMissing() }, () => {
  let dir: TempDir;
  let bundleDir: string;
  let detector: Detector;
  const images: string[] = [];
  /** Python reference scores for every image below, computed once (torch takes seconds to import). */
  const python = new Map<string, number>();
  const resized = [
    { name: 'small.png', size: [40, 30], tolerance: 1e-4 },
    { name: 'large.png', size: [150, 110], tolerance: 1e-2 },
  ] as const;

  before(async () => {
    dir = await tempDir('moead-detector-');
    bundleDir = dir.file('bundle');
    await writeSyntheticBundle(bundleDir, { kind: 'pool', size: SIZE, grid: 8 });
    await mkdir(dir.file('good'));
    for (let seed = 1; seed <= 5; seed++) {
      const file = dir.file('good', `img-${seed}.png`);
      await writeFile(file, await gradientPng(SIZE, SIZE, seed));
      images.push(file);
    }
    const base = await gradientPng(SIZE, SIZE, 4);
    for (const c of resized) await sharp(base).resize(c.size[0], c.size[1], { fit: 'fill' }).png().toFile(dir.file(c.name));
    const all = [...images, ...resized.map((c) => dir.file(c.name))];
    const scores = JSON.parse(runPython([REFERENCE_PY, 'score', bundleDir, ...all])) as number[];
    all.forEach((file, i) => python.set(file, scores[i]!));
    detector = await openDetector({ bundleDir, backend: { threads: 1 } });
  });
  after(async () => {
    await detector?.close();
    await dir?.remove();
  });

  test('scores equal the toolchain\'s Python evaluation within 1e-4 relative', async () => {
    for (const file of images) {
      const d = await detector.detect(await frameFromFile(file));
      const want = python.get(file)!;
      const rel = Math.abs(d.score - want) / want;
      assert.ok(rel < 1e-4, `${file}: ${d.score} vs python ${want} (relative ${rel})`);
      assert.equal(d.lowRes.data.length, d.lowRes.width * d.lowRes.height);
      const map = await detector.fullMap(d);
      assert.equal(map.width, SIZE);
      assert.equal(map.data.length, SIZE * SIZE);
      assert.ok(d.latencyMs >= d.timings.inferenceMs && d.timings.runMs > 0);
    }
    assert.deepEqual(detector.capabilities().providers, ['cpu']);
  });

  test('input tensors are reused: after the first frame each is written into one the backend handed back', async () => {
    const outs: Array<number | undefined> = [];
    const reusing = await openDetector({
      bundleDir,
      backend: { threads: 1 },
      preprocessor: (frame, input, out) => {
        outs.push(out?.length);
        return preprocessFrame(frame, input, out);
      },
    });
    try {
      // Each image twice, interleaved, so a stale tensor would give another image's score.
      for (const file of [...images, ...images]) {
        const d = await reusing.detect(await frameFromFile(file));
        const want = python.get(file)!;
        assert.ok(Math.abs(d.score - want) / want < 1e-4, `${file}: ${d.score} vs python ${want}`);
      }
    } finally {
      await reusing.close();
    }
    assert.equal(outs[0], undefined, 'nothing to reuse before the first run');
    assert.deepEqual(outs.slice(1), outs.slice(1).map(() => 3 * SIZE * SIZE), 'every later frame got a spare tensor');
  });

  test('frames of other sizes score like Pillow-resized ones', async (t) => {
    // Enlarging uses our Pillow-convention resampler; shrinking uses libvips, whose
    // antialiasing filter rounds differently (a tenth of a level on average).
    for (const c of resized) {
      const file = dir.file(c.name);
      const score = (await detector.detect(await frameFromFile(file))).score;
      const want = python.get(file)!;
      const rel = Math.abs(score - want) / want;
      t.diagnostic(`${c.size.join('x')} -> ${SIZE}x${SIZE}: ${score} vs python ${want}, relative ${rel.toExponential(2)}`);
      assert.ok(rel < c.tolerance, `${file}: ${score} vs python ${want} (relative ${rel})`);
    }
  });

  test('raw frames score like the same picture encoded', async () => {
    const png = await gradientPng(SIZE, SIZE, 3);
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const raw: Frame = { camera: 'c', index: 1, capturedAt: 0, capturedMono: 0, format: 'rgb24', width: SIZE, height: SIZE, data };
    const encoded: Frame = { ...raw, format: 'encoded', width: 0, height: 0, data: png };
    assert.equal((await detector.detect(raw)).score, (await detector.detect(encoded)).score);
  });

  test('snapshot: a JPEG at the frame\'s own size with the heatmap blended in', async () => {
    const big = await sharp(await gradientPng(SIZE, SIZE, 2)).resize(160, 120).png().toBuffer();
    const frame: Frame = { camera: 'c', index: 0, capturedAt: 0, capturedMono: 0, format: 'encoded', width: 0, height: 0, data: big };
    const detection = await detector.detect(frame);
    const jpeg = await detector.snapshot(frame, detection);
    assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    const meta = await sharp(jpeg).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.equal(meta.width, 160);
    assert.equal(meta.height, 120);
    // The overlay changes the picture: compare with the frame compressed the same way.
    const plain = await sharp(big).jpeg({ quality: 85 }).raw().toBuffer();
    const shown = await sharp(jpeg).raw().toBuffer();
    let diff = 0;
    for (let i = 0; i < plain.length; i++) diff += Math.abs(plain[i]! - shown[i]!);
    assert.ok(diff / plain.length > 5, `mean difference ${diff / plain.length}`);
  });

  test('EXPECTED FAILURE - a corrupt frame is a PreprocessError and the detector goes on', async () => {
    const bad: Frame = { camera: 'c', index: 0, capturedAt: 0, capturedMono: 0, format: 'encoded', width: 0, height: 0, data: Buffer.from('garbage'), origin: 'bad.png' };
    await assert.rejects(detector.detect(bad), (err: unknown) => err instanceof PreprocessError && err.reason === 'decode');
    assert.ok((await detector.detect(await frameFromFile(images[0]!))).score > 0);
  });

  test('scoreImages reports unreadable files and still scores the rest', async () => {
    const corrupt = dir.file('corrupt.jpg');
    await writeFile(corrupt, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    const missing = dir.file('missing.png');
    const seen: string[] = [];
    const results = await scoreImages(detector, [images[0]!, corrupt, missing, images[1]!], { onResult: (r) => void seen.push(r.file) });
    assert.deepEqual(seen, [images[0], corrupt, missing, images[1]]);
    assert.deepEqual(results.map((r) => r.ok), [true, false, false, true]);
    const [, c, m] = results;
    assert.ok(c && !c.ok && c.error.startsWith(`${corrupt}: cannot decode image`), JSON.stringify(c));
    assert.ok(m && !m.ok && m.error.startsWith(`${missing}: ENOENT`), JSON.stringify(m));
    const first = results[0]!;
    assert.ok(first.ok);
    assert.equal(first.anomalous, first.score >= detector.manifest.threshold.value);
    assert.ok(first.normalized >= 0 && first.normalized <= 1);
  });

  test('calibrate: threshold from the good folder, written into a bundle copy that still loads', async () => {
    await writeFile(dir.file('good', 'broken.png'), Buffer.from('not a png'));
    await writeFile(dir.file('good', 'notes.txt'), 'ignored: not an image');
    const rule = { quantile: 0.9, margin: 0.2 };
    const { threshold, scored } = await calibrate(detector, dir.file('good'), { rule });
    assert.equal(scored.length, 6);
    assert.equal(scored.filter((r) => !r.ok).length, 1);
    const scores = scored.flatMap((r) => (r.ok ? [r.score] : []));
    assert.deepEqual(threshold, thresholdFromGood(scores, rule));
    assert.equal(threshold.images, 5);

    const copy = dir.file('calibrated');
    await cp(bundleDir, copy, { recursive: true });
    await writeManifestWithThreshold(detector.manifest, threshold, join(copy, 'manifest.json'));
    const reloaded = await loadBundle(copy);
    assert.deepEqual(reloaded.manifest.threshold, threshold);
    assert.deepEqual({ ...reloaded.manifest, threshold: detector.manifest.threshold }, detector.manifest);
  });

  test('EXPECTED FAILURE - a score kernel larger than the map is refused at open, naming the manifest', async () => {
    const copy = dir.file('bigkernel');
    await cp(bundleDir, copy, { recursive: true });
    const manifest = { ...detector.manifest, postprocess: { ...detector.manifest.postprocess, score: { method: 'avgpool_max' as const, kernel: SIZE + 1 } } };
    await writeFile(join(copy, 'manifest.json'), JSON.stringify(manifest));
    await assert.rejects(openDetector({ bundleDir: copy }), /bigkernel\/manifest\.json: postprocess\.score\.kernel 65 is larger than the 64x64 upsampled map/);
  });

  test('EXPECTED FAILURE - a blur sigma over what the native kernels take is refused at open, naming the manifest', async () => {
    const copy = dir.file('bigsigma');
    await cp(bundleDir, copy, { recursive: true });
    const manifest = { ...detector.manifest, postprocess: { ...detector.manifest.postprocess, blur_sigma: 150 } };
    await writeFile(join(copy, 'manifest.json'), JSON.stringify(manifest));
    await assert.rejects(openDetector({ bundleDir: copy }), /bigsigma\/manifest\.json: postprocess\.blur_sigma 150 is over 100, the most the native kernels take/);
  });

  test('EXPECTED FAILURE - a model whose map holds NaN fails the frame with a clear error, on both post-processing paths', async () => {
    const broken = dir.file('nan-bundle');
    await writeSyntheticBundle(broken, { kind: 'nan', size: SIZE, grid: 8 });
    const frame = await frameFromFile(images[0]!);
    const native = nativePostprocessor().postprocessor;
    assert.ok(native, 'the native addon is built by npm ci');
    for (const postprocessor of [undefined, native]) {
      const nan = await openDetector({ bundleDir: broken, backend: { threads: 1 }, ...(postprocessor ? { postprocessor } : {}) });
      try {
        await assert.rejects(nan.detect(frame), /the model's anomaly map holds non-finite values \(score NaN\); the frame is not scored/);
      } finally {
        await nan.close();
      }
    }
  });

  test('EXPECTED FAILURE - calibrating on a folder without images', async () => {
    await assert.rejects(calibrate(detector, dir.file('does-not-exist')), /ENOENT/);
    await mkdir(dir.file('empty'));
    await assert.rejects(calibrate(detector, dir.file('empty')), /empty: no images/);
  });
});
