/**
 * One camera's pipeline at saturation, on the benchmark rig's real parts (onnxruntime
 * worker, MQTT FleetLink to Mosquitto, a subscriber): how many frames it keeps decoded and
 * queued behind the one in inference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openRig, sleep } from '../../bench/rig.js';
import { FRAMES_AHEAD } from '../../src/daemon/camera-pipeline.js';
import { tempDir } from '../harness/tmp.js';
import { writeSyntheticBundle } from '../inference/synthetic-bundle.js';
import { testFrames } from './fixtures.js';

test('a saturated camera keeps FRAMES_AHEAD frames decoded and queued behind the one in inference, never more', async () => {
  assert.equal(FRAMES_AHEAD, 2, 'docs/bench.md and the comment at FRAMES_AHEAD give the measurements behind 2');
  const scratch = await tempDir();
  try {
    // A model far slower than a decode, so the frames taken ahead pile up to the limit.
    const bundle = scratch.file('slow-bundle');
    await writeSyntheticBundle(bundle, { kind: 'heavy', size: 64, grid: 4, layers: 400 });
    const frames = await testFrames(scratch.file('frames'), {}, 3);
    const rig = await openRig({ bundleDir: bundle, threads: 1, imageFiles: frames.map((name) => scratch.file('frames', name)) });
    try {
      const camera = await rig.saturating('ahead');
      camera.source.resume();
      // In flight = frames the pipeline has taken (the source always keeps one more waiting)
      // whose inference has not returned yet.
      const inFlight: number[] = [];
      for (let t = 0; t < 1500 && rig.timings.length < 4; t += 5) {
        await sleep(5);
        inFlight.push(camera.source.stats().frames - 1 - rig.timings.length);
      }
      camera.source.pause();
      assert.ok(rig.timings.length >= 2, `only ${rig.timings.length} frames scored in 1.5 s`);
      assert.equal(Math.max(...inFlight), 1 + FRAMES_AHEAD, `frames in flight over time: ${inFlight.join(' ')}`);
      // Before the first result came back the queue was already full: decoding ran ahead of inference.
      const runMs = rig.timings[0]!.runMs;
      assert.ok(runMs > 20, `the slow model ran in ${runMs.toFixed(1)} ms; the test needs runs far longer than a decode`);
    } finally {
      await rig.close();
    }
  } finally {
    await scratch.remove();
  }
});
