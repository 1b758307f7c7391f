/**
 * The replaceable model: frames prepared before a switch finish on the model that prepared
 * them (here with another input size), and the replaced model closes once they are done.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { frameFromFile, openDetector, type Detector } from '../../src/inference/index.js';
import { LiveDetector } from '../../src/inference/live-detector.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { testBundle, testFrames } from '../daemon/fixtures.js';
import { pythonMissing, writeSyntheticBundle } from './synthetic-bundle.js';

let dir: TempDir;
let first: Detector;
let second: Detector;
let frame: string;

before(async () => {
  dir = await tempDir();
  frame = dir.file('frames', (await testFrames(dir.file('frames'), {}, 1))[0] ?? '');
  first = await openDetector({ bundleDir: (await testBundle(dir.path)).dir, backend: { threads: 1 } });
  if (pythonMissing() === undefined) {
    await writeSyntheticBundle(dir.file('small'), { size: 48, grid: 4 });
    second = await openDetector({ bundleDir: dir.file('small'), backend: { threads: 1 } });
  }
});
after(async () => {
  await dir.remove();
});

test('a swap applies to frames prepared after it; frames in flight finish on their own model, which then closes', { skip: pythonMissing() }, async () => {
  assert.notEqual(first.manifest.input.width, second.manifest.input.width, 'test setup: two input sizes');
  const live = new LiveDetector(first);
  const before = await live.prepare(await frameFromFile(frame));
  assert.equal(live.swap(second, { keep: true }), first);
  assert.equal(live.manifest, second.manifest);
  const after = await live.prepare(await frameFromFile(frame));
  assert.equal(after.tensor.length, 3 * 48 * 48);
  const [old, fresh] = await Promise.all([live.infer(before), live.infer(after)]);
  assert.equal(old.manifest, first.manifest, 'scored by the model that prepared it');
  assert.equal(fresh.manifest, second.manifest);
  await assert.rejects(live.infer(after), /this frame was not prepared here/, 'a prepared frame runs once');

  // The kept detector is the way back; without `keep` the replaced one closes after its last frame.
  const inFlight = await live.prepare(await frameFromFile(frame));
  assert.equal(live.swap(first), second);
  assert.throws(() => live.swap(second), /that detector is being retired/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await live.infer(inFlight)).manifest, second.manifest, 'the replaced model stayed open for the frame it had prepared');
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(second.detect(await frameFromFile(frame)), 'closed after its last frame');
  await assert.rejects(live.retire(first), /that detector is in force/);
  await live.close();
  await assert.rejects(first.detect(await frameFromFile(frame)), 'close() closes the detector in force');
});
