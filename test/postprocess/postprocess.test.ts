/**
 * Post-processing: the pieces against their definitions, and the whole chain against the
 * reference implementations it must equal (PyTorch interpolate / avg_pool2d and
 * scipy.ndimage.gaussian_filter, run by the toolchain's Python).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { PostprocessSpec } from '../../src/bundle/manifest.js';
import {
  avgPoolMax,
  gaussianBlur,
  gaussianKernel,
  mapMax,
  postprocessMap,
  reflectIndex,
  upsampleBilinear,
  type FloatMap,
} from '../../src/postprocess/index.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { REFERENCE_PY, pythonMissing, runPython } from '../inference/synthetic-bundle.js';

/** Deterministic pseudo-random map (xorshift), values in [0, 4). */
export function randomMap(width: number, height: number, seed: number): FloatMap {
  const data = new Float32Array(width * height);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = ((s >>> 0) / 2 ** 32) * 4;
  }
  return { data, width, height };
}

test('reflect border mode mirrors including the edge sample (d c b a | a b c d)', () => {
  const n = 4;
  assert.deepEqual([-4, -3, -2, -1, 0, 3, 4, 5, 6, 7].map((i) => reflectIndex(i, n)), [3, 2, 1, 0, 0, 3, 3, 2, 1, 0]);
  // Beyond one period it keeps mirroring, as scipy does for kernels wider than the line.
  assert.deepEqual([8, 9, -5, -9].map((i) => reflectIndex(i, n)), [0, 1, 3, 0]);
  assert.equal(reflectIndex(-7, 1), 0);
});

test('Gaussian weights: radius int(4σ+0.5), symmetric, sum 1', () => {
  for (const [sigma, radius] of [[4, 16], [1.1, 4], [0.6, 2], [2.4, 10]] as const) {
    const k = gaussianKernel(sigma);
    assert.equal(k.length, 2 * radius + 1, `σ=${sigma}`);
    assert.ok(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.equal(k[0], k[k.length - 1]);
    assert.equal(Math.max(...k), k[radius]);
  }
});

test('blur keeps a constant map constant (borders included) and preserves mass in the interior', () => {
  const flat: FloatMap = { data: new Float32Array(30 * 20).fill(2.5), width: 30, height: 20 };
  for (const v of gaussianBlur(flat, 3).data) assert.ok(Math.abs(v - 2.5) < 1e-5);
  const spike: FloatMap = { data: new Float32Array(41 * 41), width: 41, height: 41 };
  spike.data[20 * 41 + 20] = 1;
  const blurred = gaussianBlur(spike, 2).data;
  assert.ok(Math.abs(blurred.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  assert.equal(blurred[20 * 41 + 20], mapMax({ data: blurred, width: 41, height: 41 }));
});

test('avgpool_max via summed-area table equals the brute-force window mean', () => {
  const map = randomMap(23, 17, 7);
  for (const k of [1, 3, 8, 17]) {
    let best = -Infinity;
    for (let y = 0; y + k <= map.height; y++) {
      for (let x = 0; x + k <= map.width; x++) {
        let sum = 0;
        for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) sum += map.data[(y + dy) * map.width + x + dx]!;
        best = Math.max(best, sum / (k * k));
      }
    }
    assert.ok(Math.abs(avgPoolMax(map, k) - best) < 1e-9, `k=${k}`);
  }
  assert.equal(avgPoolMax(map, 1), mapMax(map));
  assert.throws(() => avgPoolMax(map, 18), /score kernel 18 is larger than the 23x17 map/);
});

test('upsampling with align_corners=true hits the source samples exactly at the corners', () => {
  const map = randomMap(4, 3, 3);
  const up = upsampleBilinear(map, 10, 7, true);
  assert.equal(up.data[0], map.data[0]);
  assert.equal(up.data[9], map.data[3]);
  assert.equal(up.data[6 * 10], map.data[2 * 4]);
  assert.equal(up.data[6 * 10 + 9], map.data[2 * 4 + 3]);
  const same = upsampleBilinear(map, 4, 3, false);
  assert.deepEqual(same.data, map.data);
});

// ---- parity with the Python reference implementations ------------------------------------


const spec = (w: number, h: number, align: boolean, sigma: number, kernel: number | null): PostprocessSpec => ({
  upsample: { mode: 'bilinear', align_corners: align, width: w, height: h },
  blur_sigma: sigma,
  score: kernel === null ? { method: 'max' } : { method: 'avgpool_max', kernel },
});

const CASES: Array<{ map: FloatMap; spec: PostprocessSpec }> = [
  { map: randomMap(14, 14, 1), spec: spec(224, 224, false, 4, 16) },
  { map: randomMap(14, 14, 2), spec: spec(224, 224, true, 4, 16) },
  { map: randomMap(7, 5, 3), spec: spec(61, 37, false, 1.3, 5) },
  // Kernel wider than the map: the reflect border wraps more than once.
  { map: randomMap(3, 2, 4), spec: spec(5, 4, true, 2, null) },
  { map: randomMap(14, 14, 5), spec: spec(224, 224, false, 0, null) },
];

let dir: TempDir;
before(async () => {
  dir = await tempDir('moead-post-');
});
after(() => dir.remove());

async function compareWith(command: 'postprocess' | 'toolchain', prefix: string, tolerance: number): Promise<void> {
  await writeFile(dir.file('cases.json'), JSON.stringify(CASES.map((c) => ({ w: c.map.width, h: c.map.height, spec: c.spec }))));
  for (const [i, c] of CASES.entries()) await writeFile(dir.file(`map${i}.f32`), c.map.data);
  const pyScores = JSON.parse(runPython([REFERENCE_PY, command, dir.path])) as number[];
  for (const [i, c] of CASES.entries()) {
    const ours = postprocessMap(c.map, c.spec);
    const theirs = new Float32Array((await readFile(dir.file(`${prefix}${i}.f32`))).buffer.slice(0));
    assert.equal(theirs.length, ours.map.data.length);
    let worst = 0;
    for (let j = 0; j < theirs.length; j++) worst = Math.max(worst, Math.abs(theirs[j]! - ours.map.data[j]!));
    assert.ok(worst < tolerance, `case ${i}: map differs by ${worst}`);
    const rel = Math.abs(ours.score - pyScores[i]!) / Math.abs(pyScores[i]!);
    assert.ok(rel < tolerance, `case ${i}: score ${ours.score} vs python ${pyScores[i]} (relative ${rel})`);
  }
}

test('the whole chain matches torch interpolate + scipy gaussian_filter + avg_pool2d', { skip: pythonMissing() }, () =>
  compareWith('postprocess', 'out', 1e-5));

test('the whole chain matches the toolchain\'s moead_edge.eval.postprocess', { skip: pythonMissing() }, () =>
  compareWith('toolchain', 'tc', 1e-6));
