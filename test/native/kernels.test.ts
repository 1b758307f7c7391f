// The CPU kernels of the native addon against the TypeScript reference (within 1e-5), over
// randomized formats and sizes, and every kind of bad input. `npm run test:asan` runs this
// same file against an AddressSanitizer build of the addon.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNative, nativeOps, type NormalizeSpec, type PostprocessPlan } from '../../src/native/binding.js';
import { postprocessMap } from '../../src/postprocess/map.js';
import { heatmapRgba } from '../../src/postprocess/snapshot.js';
import {
  frameBytes, maxRelError, randomPostprocessCase, randomPreprocessCase, refHeatmap, refOverlay, refPostprocess, refPreprocess, rng, randInt,
} from './reference.js';
import { filterRows } from '../harness/png.js';

// Lets the keep-alive test force garbage collections (gc() from a fresh context).
setFlagsFromString('--expose-gc');

const TOL = 1e-5;
const CASES = Number(process.env.MOEAD_NATIVE_CASES ?? 150);
const ops = nativeOps('cpu');
const addon = loadNative();
const spec224: NormalizeSpec = { width: 8, height: 8, color: 'RGB', scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const plan: PostprocessPlan = { width: 16, height: 16, alignCorners: false, sigma: 4, kernel: 3 };

describe('native CPU kernels', () => {
  it('reports cpu among its capabilities', () => {
    assert.ok(addon.capabilities().includes('cpu'));
    // Under `npm run test:asan` the sanitized build must be the one loaded.
    assert.equal(addon.build.asan, process.env.MOEAD_EXPECT_ASAN === '1');
  });

  it('preprocess equals the reference on randomized formats and sizes', async () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const c = randomPreprocessCase(seed);
      const got = await ops.preprocess({ data: c.data, format: c.format, width: c.width, height: c.height }, c.spec);
      const err = maxRelError(got, refPreprocess(c.data, c.format, c.width, c.height, c.spec));
      assert.ok(err <= TOL, `seed ${seed} (${c.format} ${c.width}x${c.height} → ${c.spec.width}x${c.spec.height}): error ${err}`);
    }
  });

  it('preprocess writes into a slot of a batch tensor without touching its neighbours', async () => {
    const c = randomPreprocessCase(7);
    const n = 3 * c.spec.width * c.spec.height;
    const batch = new Float32Array(3 * n).fill(-7);
    await ops.preprocess({ data: c.data, format: c.format, width: c.width, height: c.height }, c.spec, batch.subarray(n, 2 * n));
    assert.ok(maxRelError(batch.subarray(n, 2 * n), refPreprocess(c.data, c.format, c.width, c.height, c.spec)) <= TOL);
    assert.ok(batch.subarray(0, n).every((v) => v === -7) && batch.subarray(2 * n).every((v) => v === -7));
  });

  it('preprocess of a same-size RGB frame is a pure normalization', async () => {
    const data = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
    const got = await ops.preprocess({ data, format: 'rgb24', width: 8, height: 8 }, spec224);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 64; p++) {
        const want = ((data[3 * p + c] ?? 0) / 255 - (spec224.mean[c] ?? 0)) / (spec224.std[c] ?? 1);
        assert.ok(Math.abs((got[c * 64 + p] ?? NaN) - want) <= TOL, `channel ${c} pixel ${p}`);
      }
    }
  });

  it('preprocessPng unfilters every filter type and pixel size: the same tensor as the raw pixels give', async () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const c = randomPreprocessCase(seed);
      const r = rng(seed + 100_000);
      const channels = ([1, 3, 4] as const)[randInt(r, 0, 2)]!;
      const format = channels === 1 ? 'gray' : channels === 3 ? 'rgb24' : 'rgba';
      const pixels = Uint8Array.from({ length: c.width * c.height * channels }, () => randInt(r, 0, 255));
      // All five filters, starting at a random one, so each also lands on the first row (whose row above is zeros).
      const start = randInt(r, 0, 4);
      const filters = [0, 1, 2, 3, 4].map((f) => (f + start) % 5);
      const scanlines = filterRows(pixels, c.width, c.height, channels, filters);
      const got = await addon.preprocessPng(scanlines, channels, c.width, c.height, c.spec);
      const want = await ops.preprocess({ data: pixels, format, width: c.width, height: c.height }, c.spec);
      assert.deepEqual(got, want, `seed ${seed} (${channels} channels ${c.width}x${c.height}, filters ${filters.join('')})`);
      // The rows are unfiltered in place: the buffer now starts with the pixels.
      assert.deepEqual(scanlines.subarray(0, pixels.length), Buffer.from(pixels), `seed ${seed}: unfiltered pixels`);
    }
  });

  it('BAD CALL - preprocessPng checks the scanline length and channels, and names a bad filter\'s row', async () => {
    const rows = filterRows(new Uint8Array(4 * 3 * 3), 4, 3, 3, [4]);
    await assert.rejects(async () => addon.preprocessPng(rows.subarray(1), 3, 4, 3, spec224), {
      name: 'RangeError',
      message: 'scanlines (4x3, 3 channels): expected 39 bytes but received 38',
    });
    await assert.rejects(async () => addon.preprocessPng(rows, 2 as never, 4, 3, spec224), /channels must be 1 \(gray\), 3 \(RGB\) or 4 \(RGBA\), not 2/);
    await assert.rejects(async () => addon.preprocessPng(rows, 5 as never, 4, 3, spec224), /Expected an integer 1\.\.4 for channels but received number 5/);
    const bad = Buffer.from(rows);
    bad[2 * 13] = 5;
    await assert.rejects(addon.preprocessPng(bad, 3, 4, 3, spec224), { message: 'PNG row 2 has filter type 5 (types 0..4 exist)' });
  });

  it('postprocess (upsample, blur, score) equals the reference on randomized sizes', async () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const c = randomPostprocessCase(seed);
      const got = await ops.postprocess(c.map, c.width, c.height, c.plan);
      const want = refPostprocess(c.map, c.width, c.height, c.plan);
      const err = maxRelError(got.map, want.map);
      const label = `seed ${seed} (${c.width}x${c.height} → ${c.plan.width}x${c.plan.height}, ${JSON.stringify(c.plan)})`;
      assert.ok(err <= TOL, `${label}: map error ${err}`);
      assert.ok(Math.abs(got.score - want.score) <= TOL * Math.max(1, Math.abs(want.score)), `${label}: score ${got.score} vs ${want.score}`);
    }
  });

  it('a NaN anywhere in the map makes the score NaN, natively and in the JS path alike, wherever it sits', async () => {
    for (const kernel of [0, 3]) {
      const jsSpec = { upsample: { mode: 'bilinear' as const, align_corners: false, width: 16, height: 16 }, blur_sigma: 1, score: kernel === 0 ? { method: 'max' as const } : { method: 'avgpool_max' as const, kernel } };
      for (const at of [0, 5, 15]) {
        const map = Float32Array.from({ length: 16 }, (_, i) => (i === at ? Number.NaN : i / 16));
        const native = await ops.score(map, 4, 4, { width: 16, height: 16, alignCorners: false, sigma: 1, kernel });
        const js = postprocessMap({ data: map, width: 4, height: 4 }, jsSpec).score;
        assert.deepEqual([native, js], [Number.NaN, Number.NaN], `NaN at ${at}, kernel ${kernel}`);
      }
    }
  });

  it('score alone equals the full postprocess\'s score, and hands back no map', async () => {
    // Interleaved sizes, so a pool thread's scratch left larger by one call is reused by the next.
    for (let seed = 1; seed <= CASES; seed++) {
      const c = randomPostprocessCase(seed);
      const [full, score] = await Promise.all([ops.postprocess(c.map, c.width, c.height, c.plan), ops.score(c.map, c.width, c.height, c.plan)]);
      assert.equal(score, full.score, `seed ${seed}`);
    }
    const c = randomPostprocessCase(1);
    assert.equal((await addon.postprocess(c.map, c.width, c.height, c.plan, false)).map, null);
  });

  it('heatmap equals the reference (within one level of rounding)', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const w = randInt(r, 1, 40);
      const h = randInt(r, 1, 40);
      const rgb = Uint8Array.from({ length: w * h * 3 }, () => randInt(r, 0, 255));
      const map = Float32Array.from({ length: w * h }, () => r() * 3 - 0.5);
      const spec = { low: r(), high: 1.5 + r(), alpha: r() };
      const got = await ops.heatmap(rgb, map, w, h, spec);
      const want = refHeatmap(rgb, map, spec);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got[i] ?? -9) - (want[i] ?? 0)) <= 1, `seed ${seed} byte ${i}: ${got[i]} vs ${want[i]}`);
    }
  });

  it('overlay equals the reference (within one level of rounding) on randomized frame and map sizes', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(100 + seed);
      const mw = randInt(r, 1, 24);
      const mh = randInt(r, 1, 24);
      const w = randInt(r, mw, 60);
      const h = randInt(r, mh, 60);
      const rgb = Uint8Array.from({ length: w * h * 3 }, () => randInt(r, 0, 255));
      const map = Float32Array.from({ length: mw * mh }, () => r() * 3 - 0.5);
      const spec = { low: r(), high: 1.5 + r() };
      const got = await addon.overlay(rgb, w, h, map, mw, mh, spec);
      const want = refOverlay(rgb, w, h, map, mw, mh, spec);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs((got[i] ?? -9) - (want[i] ?? 0)) <= 1, `seed ${seed} (${mw}x${mh} → ${w}x${h}) byte ${i}: ${got[i]} vs ${want[i]}`);
    }
  });

  it('heatmap and overlay draw NaN and -Infinity as the low end and +Infinity as the high end, as the JS path does', async () => {
    // Unhandled, a NaN reaches a float-to-uint8_t cast (undefined behaviour) and, in the overlay, spreads to its neighbours.
    const [w, h, mw, mh] = [6, 4, 3, 2];
    const r = rng(9);
    const rgb = Uint8Array.from({ length: w * h * 3 }, () => randInt(r, 0, 255));
    const spec = { low: 0.25, high: 1.75, alpha: 0.6 };
    const odd = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1];
    const map = Float32Array.from({ length: w * h }, (_, i) => odd[i % 4]!);
    const ends = map.map((v) => (Number.isNaN(v) || v === Number.NEGATIVE_INFINITY ? spec.low : v === Number.POSITIVE_INFINITY ? spec.high : v));
    assert.deepEqual(await ops.heatmap(rgb, map, w, h, spec), await ops.heatmap(rgb, ends, w, h, spec));
    const small = map.subarray(0, mw * mh);
    const smallEnds = ends.subarray(0, mw * mh);
    assert.deepEqual(await addon.overlay(rgb, w, h, small, mw, mh, spec), await addon.overlay(rgb, w, h, smallEnds, mw, mh, spec));
    // The sharp path's colours for the same range (normalizedRange: good_median → low, 2·value - good_median → high).
    const threshold = { good_median: spec.low, value: (spec.low + spec.high) / 2 };
    assert.deepEqual(heatmapRgba({ data: small, width: mw, height: mh }, threshold), heatmapRgba({ data: smallEnds, width: mw, height: mh }, threshold));
  });

  it('runs many calls concurrently on the thread pool, each with its own result', async () => {
    const cases = Array.from({ length: 24 }, (_, i) => randomPostprocessCase(1000 + i));
    const results = await Promise.all(cases.map((c) => ops.postprocess(c.map, c.width, c.height, c.plan)));
    results.forEach((got, i) => {
      const c = cases[i];
      assert.ok(c);
      assert.ok(maxRelError(got.map, refPostprocess(c.map, c.width, c.height, c.plan).map) <= TOL, `case ${i}`);
    });
  });

  it('works off the event loop: timers run while a large frame is processed', async () => {
    const side = 2048;
    const data = new Uint8Array(side * side * 3).fill(77);
    let ticks = 0;
    let done = false;
    const tick = (): void => {
      ticks++;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    await ops.preprocess({ data, format: 'rgb24', width: side, height: side }, spec224);
    done = true;
    // Had the work run on the calling thread, the promise would settle before any tick.
    assert.ok(ticks > 0);
  });

  it('keeps its buffers alive while it works, even with no JS reference left', async () => {
    const gc = runInNewContext('gc') as () => void;
    const [width, height] = [1024, 768];
    const r = rng(42);
    const source = Uint8Array.from({ length: width * height * 3 }, () => randInt(r, 0, 255));
    const spec = { ...spec224, width: 64, height: 48 };
    const want = refPreprocess(source, 'rgb24', width, height, spec);
    // Each frame is a fresh copy made inside the call expression, passed to the addon itself
    // (the wrappers' async frames would hold it): once the call returns, the addon's
    // references are all that keep it while the collector runs.
    let settled = 0;
    const pending = Array.from({ length: 8 }, () =>
      addon.preprocess(Uint8Array.from(source), 'rgb24', width, height, spec).finally(() => settled++));
    while (settled < pending.length) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const got of await Promise.all(pending)) assert.ok(maxRelError(got, want) <= TOL);
  });
});

describe('native CPU kernels: bad input', () => {
  const frame = { data: new Uint8Array(8 * 8 * 3), format: 'rgb24' as const, width: 8, height: 8 };

  it('BAD CALL - a frame of the wrong size is a RangeError naming the size', async () => {
    await assert.rejects(ops.preprocess({ ...frame, data: new Uint8Array(100) }, spec224), {
      name: 'RangeError', message: 'frame (rgb24 8x8): expected 192 bytes but received 100',
    });
    await assert.rejects(ops.preprocess({ ...frame, data: new Uint8Array(193) }, spec224), /expected 192 bytes but received 193/);
  });

  it('BAD CALL - every format checks its own size', async () => {
    for (const format of ['rgb24', 'bgr24', 'rgba', 'gray', 'yuyv', 'nv12'] as const) {
      const bytes = frameBytes(format, 8, 8);
      await assert.rejects(ops.preprocess({ data: new Uint8Array(bytes - 1), format, width: 8, height: 8 }, spec224),
        new RegExp(`expected ${bytes} bytes but received ${bytes - 1}`), format);
    }
  });

  it('BAD CALL - odd sizes for subsampled formats, unknown formats, zero and huge sides', async () => {
    await assert.rejects(ops.preprocess({ data: new Uint8Array(6 * 2), format: 'yuyv', width: 3, height: 2 }, spec224), /yuyv needs an even width/);
    await assert.rejects(ops.preprocess({ data: new Uint8Array(12), format: 'nv12', width: 4, height: 2 + 1 }, spec224), /nv12 needs an even width and height/);
    await assert.rejects(ops.preprocess({ ...frame, format: 'mjpeg' as never }, spec224), {
      name: 'TypeError', message: 'Expected one of rgb24, bgr24, rgba, gray, yuyv, nv12 for format but received string "mjpeg"',
    });
    await assert.rejects(ops.preprocess({ ...frame, width: 0 }, spec224), /Expected an integer 1\.\.16384 for width but received number 0/);
    await assert.rejects(ops.preprocess({ ...frame, width: 1e9 }, spec224), /for width/);
    await assert.rejects(ops.preprocess({ ...frame, width: 2.5 }, spec224), /for width/);
  });

  it('BAD CALL - a getter that detaches an input while the arguments are read gets an error, never a read of freed memory', async () => {
    // Reading an object's field runs the caller's JavaScript; here it transfers the input's
    // buffer away, which frees the bytes the addon would otherwise have taken a pointer to.
    // The addon checks synchronously: the error is thrown by the call itself.
    const detaching = <T extends object>(fields: T, key: keyof T, victim: { buffer: ArrayBufferLike }): T => {
      const value = fields[key];
      return Object.defineProperty({ ...fields }, key, {
        enumerable: true,
        get: () => {
          structuredClone(victim.buffer, { transfer: [victim.buffer as ArrayBuffer] });
          return value;
        },
      });
    };
    const image = new Uint8Array(64 * 64 * 3);
    await assert.rejects(async () => addon.preprocess(image, 'rgb24', 64, 64, detaching(spec224, 'width', image)),
      { name: 'RangeError', message: 'frame (rgb24 64x64): expected 12288 bytes but received 0' });
    const rows = new Uint8Array(8 * (1 + 8 * 3));
    await assert.rejects(async () => addon.preprocessPng(rows, 3, 8, 8, detaching(spec224, 'mean', rows)), /scanlines \(8x8, 3 channels\): expected 200 bytes but received 0/);
    const map = new Float32Array(8 * 8);
    await assert.rejects(async () => addon.postprocess(map, 8, 8, detaching(plan, 'sigma', map)), /map: expected 64 float32 elements but received 0/);
    const rgb = new Uint8Array(8 * 8 * 3);
    await assert.rejects(async () => addon.heatmap(rgb, new Float32Array(64), 8, 8, detaching({ low: 0, high: 1, alpha: 0.5 }, 'low', rgb)), /rgb: expected 192 bytes but received 0/);
    const rgb2 = new Uint8Array(8 * 8 * 3);
    await assert.rejects(async () => addon.overlay(rgb2, 8, 8, new Float32Array(16), 4, 4, detaching({ low: 0, high: 1 }, 'high', rgb2)), /rgb: expected 192 bytes but received 0/);
  });

  it('BAD CALL - a frame that is not bytes, and a spec with a bad field', async () => {
    await assert.rejects(ops.preprocess({ ...frame, data: new Float32Array(192) as unknown as Uint8Array }, spec224), /Expected a Buffer or Uint8Array for frame \(rgb24 8x8\) but received Float32Array/);
    await assert.rejects(ops.preprocess(frame, { ...spec224, color: 'YUV' as never }), /spec\.color/);
    await assert.rejects(ops.preprocess(frame, { ...spec224, std: [1, 0, 1] }), /spec\.std\[1\] must be positive/);
    await assert.rejects(ops.preprocess(frame, { ...spec224, mean: [1, 2] as never }), /Expected an array of 3 numbers for spec\.mean/);
    await assert.rejects(ops.preprocess(frame, { ...spec224, scale: Number.NaN }), /Expected a finite number for spec\.scale/);
    await assert.rejects(ops.preprocess(frame, { ...spec224, width: -1 }), /spec\.width/);
    await assert.rejects(ops.preprocess(frame, spec224, new Float32Array(10)), /out: expected 192 float32 elements but received 10/);
  });

  it('BAD CALL - postprocess checks the map size, the plan and the pooling window', async () => {
    await assert.rejects(ops.postprocess(new Float32Array(15), 4, 4, plan), /map: expected 16 float32 elements but received 15/);
    await assert.rejects(ops.postprocess(new Float64Array(16) as unknown as Float32Array, 4, 4, plan), /Expected a Float32Array for map but received Float64Array/);
    await assert.rejects(ops.postprocess(new Float32Array(16), 4, 4, { ...plan, kernel: 17 }), /plan\.kernel 17 is larger than the 16x16 map/);
    await assert.rejects(ops.postprocess(new Float32Array(16), 4, 4, { ...plan, sigma: -1 }), /plan\.sigma must be 0\.\.100/);
    await assert.rejects(ops.postprocess(new Float32Array(16), 4, 4, { ...plan, alignCorners: 1 as never }), /Expected a boolean for plan\.alignCorners/);
    await assert.rejects(ops.postprocess(new Float32Array(16), 4, 4, null as never), /Expected an object for plan but received null/);
    await assert.rejects(async () => addon.postprocess(new Float32Array(16), 4, 4, plan, 'no' as never), /Expected a boolean for withMap/);
    await assert.rejects(ops.score(new Float32Array(15), 4, 4, plan), /map: expected 16 float32 elements but received 15/);
  });

  it('BAD CALL - overlay only enlarges, and checks both buffers and the colour range', () => {
    // Checked before any work is queued, so these throw at the call.
    const map = new Float32Array(16);
    assert.throws(() => addon.overlay(new Uint8Array(47), 4, 4, map, 4, 4, { low: 0, high: 1 }), /rgb: expected 48 bytes but received 47/);
    assert.throws(() => addon.overlay(new Uint8Array(48), 4, 4, new Float32Array(15), 4, 4, { low: 0, high: 1 }), /map: expected 16 float32/);
    assert.throws(() => addon.overlay(new Uint8Array(27), 3, 3, map, 4, 4, { low: 0, high: 1 }), /mapWidth/);
    assert.throws(() => addon.overlay(new Uint8Array(48), 4, 4, map, 4, 4, { low: 1, high: 1 }), /spec\.high must be greater than spec\.low/);
  });

  it('BAD CALL - heatmap checks both buffers and the colour range', async () => {
    const map = new Float32Array(16);
    await assert.rejects(ops.heatmap(new Uint8Array(47), map, 4, 4, { low: 0, high: 1, alpha: 0.5 }), /rgb: expected 48 bytes but received 47/);
    await assert.rejects(ops.heatmap(new Uint8Array(48), new Float32Array(15), 4, 4, { low: 0, high: 1, alpha: 0.5 }), /map: expected 16 float32/);
    await assert.rejects(ops.heatmap(new Uint8Array(48), map, 4, 4, { low: 1, high: 1, alpha: 0.5 }), /spec\.high must be greater than spec\.low/);
    await assert.rejects(ops.heatmap(new Uint8Array(48), map, 4, 4, { low: 0, high: 1, alpha: 2 }), /spec\.alpha must be 0\.\.1/);
  });

  it('BAD CALL - randomized wrong lengths never get past validation', async () => {
    for (let seed = 1; seed <= 60; seed++) {
      const c = randomPreprocessCase(5000 + seed, 24);
      const r = rng(seed);
      const wrong = Math.max(0, c.data.length + (r() < 0.5 ? -randInt(r, 1, c.data.length) : randInt(r, 1, 64)));
      await assert.rejects(ops.preprocess({ data: new Uint8Array(wrong), format: c.format, width: c.width, height: c.height }, c.spec),
        /expected \d+ bytes but received \d+/, `seed ${seed}`);
      const p = randomPostprocessCase(7000 + seed);
      await assert.rejects(ops.postprocess(new Float32Array(p.map.length + 1), p.width, p.height, p.plan), /map: expected/);
    }
  });
});
