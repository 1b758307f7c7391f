/**
 * One camera's pipeline at saturation, on the benchmark rig's real parts (onnxruntime
 * worker, MQTT FleetLink to Mosquitto, a subscriber): how many frames it keeps decoded and
 * queued behind the one in inference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openRig, sleep } from '../../bench/rig.js';
import { InferenceConfigSchema } from '../../src/inference/config.js';
import { tempDir } from '../harness/tmp.js';
import { writeSyntheticBundle } from '../inference/synthetic-bundle.js';
import { testFrames } from './fixtures.js';

/** The most frames a saturated camera had in flight (taken, inference not yet returned), sampled every 5 ms. */
async function maxInFlight(bundle: string, frames: string[], framesAhead: number | undefined): Promise<number> {
  const rig = await openRig({ bundleDir: bundle, threads: 1, imageFiles: frames, ...(framesAhead === undefined ? {} : { framesAhead }) });
  try {
    const camera = await rig.saturating('ahead');
    camera.source.resume();
    const inFlight: number[] = [];
    // The source always keeps one more frame waiting than the pipeline has taken.
    for (let t = 0; t < 1500 && rig.timings.length < 4; t += 5) {
      await sleep(5);
      inFlight.push(camera.source.stats().frames - 1 - rig.timings.length);
    }
    camera.source.pause();
    assert.ok(rig.timings.length >= 2, `only ${rig.timings.length} frames scored in 1.5 s`);
    const runMs = rig.timings[0]!.runMs;
    assert.ok(runMs > 20, `the slow model ran in ${runMs.toFixed(1)} ms; the test needs runs far longer than a decode`);
    return Math.max(...inFlight);
  } finally {
    await rig.close();
  }
}

test('a saturated camera keeps inference.framesAhead frames decoded and queued behind the one in inference, never more', async () => {
  const scratch = await tempDir();
  try {
    // A model far slower than a decode, so the frames taken ahead pile up to the limit.
    const bundle = scratch.file('slow-bundle');
    await writeSyntheticBundle(bundle, { kind: 'heavy', size: 64, grid: 4, runMs: 40 });
    const frames = (await testFrames(scratch.file('frames'), {}, 3)).map((name) => scratch.file('frames', name));
    const { framesAhead } = InferenceConfigSchema.parse({});
    assert.equal(framesAhead, 2, 'the default the measurements in docs/bench.md chose');
    assert.equal(await maxInFlight(bundle, frames, undefined), 1 + framesAhead);
    assert.equal(await maxInFlight(bundle, frames, 1), 2);
  } finally {
    await scratch.remove();
  }
});
