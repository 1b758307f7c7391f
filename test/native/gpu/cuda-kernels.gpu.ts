// GPU suite (`npm run test:gpu`, not part of `npm test`): the CUDA kernels against the CPU
// kernels, which are themselves checked against the TypeScript reference in
// test/native/kernels.test.ts. The kernels compute in float where the CPU uses double.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadNative, nativeOps } from '../../../src/native/binding.js';
import { frameBytes, maxRelError, randInt, randomPostprocessCase, randomPreprocessCase, rng } from '../reference.js';

const TOL = 1e-4;
const addon = loadNative();

describe('CUDA kernels vs CPU kernels', () => {
  it('this build has CUDA and sees a device', () => {
    assert.equal(addon.build.cuda, true, 'build the addon with `node scripts/build-native.mjs --cuda` and set MOEAD_NATIVE_PATH');
    assert.ok(addon.capabilities().includes('cuda'), `no CUDA device: capabilities ${addon.capabilities().join(',')}`);
  });

  const cpu = nativeOps('cpu');
  const gpu = () => nativeOps('cuda');

  it('preprocess: randomized formats and sizes', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const c = randomPreprocessCase(seed, 96);
      const frame = { data: c.data, format: c.format, width: c.width, height: c.height };
      const err = maxRelError(await gpu().preprocess(frame, c.spec), await cpu.preprocess(frame, c.spec));
      assert.ok(err <= TOL, `seed ${seed} (${c.format} ${c.width}x${c.height} → ${c.spec.width}x${c.spec.height}): ${err}`);
    }
  });

  it('preprocess: camera-sized frames of every format to 224x224', async () => {
    const spec = { width: 224, height: 224, color: 'RGB' as const, scale: 1 / 255, mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number] };
    const r = rng(99);
    for (const format of ['rgb24', 'bgr24', 'rgba', 'gray', 'yuyv', 'nv12'] as const) {
      for (const [width, height] of [[1920, 1080], [640, 480], [160, 120]] as const) {
        const data = Uint8Array.from({ length: frameBytes(format, width, height) }, () => randInt(r, 0, 255));
        const frame = { data, format, width, height };
        const err = maxRelError(await gpu().preprocess(frame, spec), await cpu.preprocess(frame, spec));
        assert.ok(err <= TOL, `${format} ${width}x${height}: ${err}`);
      }
    }
  });

  it('postprocess: randomized sizes, blur and score', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const c = randomPostprocessCase(seed, 160);
      const [g, want] = await Promise.all([gpu().postprocess(c.map, c.width, c.height, c.plan), cpu.postprocess(c.map, c.width, c.height, c.plan)]);
      const err = maxRelError(g.map, want.map);
      assert.ok(err <= TOL, `seed ${seed} ${JSON.stringify(c.plan)}: map ${err}`);
      assert.ok(Math.abs(g.score - want.score) <= TOL * Math.max(1, Math.abs(want.score)), `seed ${seed}: score ${g.score} vs ${want.score}`);
      // The score alone (no map downloaded) is the same number.
      assert.equal(await gpu().score(c.map, c.width, c.height, c.plan), g.score, `seed ${seed}: score alone`);
    }
  });

  it('heatmap: within one level of rounding', async () => {
    const r = rng(5);
    const w = 640, h = 480;
    const rgb = Uint8Array.from({ length: w * h * 3 }, () => randInt(r, 0, 255));
    const map = Float32Array.from({ length: w * h }, () => r() * 3);
    const spec = { low: 0.5, high: 2.5, alpha: 0.6 };
    const [g, c] = await Promise.all([gpu().heatmap(rgb, map, w, h, spec), cpu.heatmap(rgb, map, w, h, spec)]);
    let worst = 0;
    for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs((g[i] ?? 0) - (c[i] ?? 0)));
    assert.ok(worst <= 1, `largest difference ${worst}`);
  });

  it('BAD CALL - the CUDA entry points check sizes like the CPU ones', async () => {
    const spec = { width: 8, height: 8, color: 'RGB' as const, scale: 1, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
    await assert.rejects(gpu().preprocess({ data: new Uint8Array(10), format: 'rgb24', width: 8, height: 8 }, spec), /expected 192 bytes but received 10/);
    await assert.rejects(gpu().postprocess(new Float32Array(3), 2, 2, { width: 4, height: 4, alignCorners: false, sigma: 1, kernel: 0 }), /map: expected 4 float32/);
  });
});
