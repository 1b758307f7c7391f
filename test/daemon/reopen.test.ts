/**
 * The model in force comes back after its inference worker died: opened again from the same
 * bundle in a fresh worker (real onnxruntime sessions, the worker ended as a crash would end
 * it), retried with a bounded backoff while that fails, never over a model put in force
 * meanwhile nor during a probation, and cancelled by a stop without a worker left behind.
 */
import assert from 'node:assert/strict';
import { cp, rename } from 'node:fs/promises';
import { basename } from 'node:path';
import { after, before, test } from 'node:test';
import { ModelReopener, type ModelReopenerDeps } from '../../src/daemon/reopen.js';
import { frameFromFile, openDetector, type Detector } from '../../src/inference/index.js';
import { LiveDetector } from '../../src/inference/live-detector.js';
import { createLogger } from '../../src/util/log.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { testBundle, testFrames } from './fixtures.js';
import { watchInferenceWorkers, type InferenceWorkers } from './inference-workers.js';

let dir: TempDir;
let bundle: string;
let frame: string;
let workers: InferenceWorkers;

before(async () => {
  dir = await tempDir();
  bundle = (await testBundle(dir.path)).dir;
  frame = dir.file('frames', (await testFrames(dir.file('frames'), {}, 1))[0] ?? '');
  workers = watchInferenceWorkers();
});
after(async () => {
  workers.restore();
  await dir.remove();
});

const open = (bundleDir: string): Promise<Detector> => openDetector({ bundleDir, backend: { threads: 1 } });
const BACKOFF = { initialMs: 20, maxMs: 80, jitter: 0 };

/** Polls `done` until it holds; after 30 s gives up with `what` (a hang, not a slow machine). */
async function waitFor(done: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; !done(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
  }
}

/** A reopener on `live` with a short backoff; `lines` gets what it logs. */
function reopener(live: LiveDetector, deps: Partial<ModelReopenerDeps> = {}): { reopener: ModelReopener; lines: string[] } {
  const lines: string[] = [];
  const r = new ModelReopener({ live, open, probationOrRollback: () => false, log: createLogger('reopen', 'info', (l) => lines.push(l)), backoff: BACKOFF, ...deps });
  r.start();
  return { reopener: r, lines };
}

/** Ends the worker that `detector` opened (the newest one), as a crash would; nothing runs in it. */
async function killWorkerOf(detector: Detector): Promise<void> {
  await workers.all.at(-1)!.terminate();
  await waitFor(() => detector.failure() !== undefined, 'the backend to see its worker die');
}

test('a model whose inference worker died is opened again from its bundle in a fresh worker, and frames score again', async () => {
  const first = await open(bundle);
  const live = new LiveDetector(first);
  const { reopener: r, lines } = reopener(live);
  try {
    assert.equal((await live.infer(await live.prepare(await frameFromFile(frame)))).manifest, first.manifest);
    await killWorkerOf(first);
    await assert.rejects(live.infer(await live.prepare(await frameFromFile(frame))), /inference worker exited/);
    await waitFor(() => live.current !== first, 'the model to be opened again');
    assert.equal(live.failure(), undefined);
    assert.equal(r.progress(), undefined);
    assert.equal(live.current.bundle.dir, first.bundle.dir);
    const detection = await live.infer(await live.prepare(await frameFromFile(frame)));
    assert.ok(Number.isFinite(detection.score));
    assert.equal(workers.running().length, 1, 'the dead worker is gone and one fresh worker runs');
    assert.match(lines.join('\n'), /can run no frame any more \(inference worker exited \(code 1\)\); opening it again in a fresh inference worker in 20 ms/);
    assert.match(lines.join('\n'), /runs again, in a fresh inference worker \(after 0 failed attempt\(s\)\)/);
  } finally {
    await r.stop();
    await live.close();
  }
});

test('a reopen that keeps failing retries at the backoff\'s longest delay; a stop while it waits cancels it and leaves no worker', async () => {
  // A copy of the bundle, whose model file goes missing once the model is open.
  const copy = dir.file('breakable');
  await cp(bundle, copy, { recursive: true, filter: (src) => !/(checkpoint\.pt|model-fp32\.onnx)$/.test(basename(src)) });
  const first = await open(copy);
  const modelFile = first.bundle.modelPath;
  const live = new LiveDetector(first);
  const { reopener: r, lines } = reopener(live);
  try {
    await rename(modelFile, `${modelFile}.away`);
    await killWorkerOf(first);
    await waitFor(() => lines.filter((l) => /again failed/.test(l)).length >= 4, 'four failed attempts');
    const delays = lines.map((l) => /in (\d+) ms$/.exec(l)?.[1]).filter((d) => d !== undefined).map(Number);
    assert.deepEqual(delays.slice(0, 5), [20, 40, 80, 80, 80], lines.join('\n'));
    assert.match(r.progress() ?? '', /opening it again in a fresh inference worker; \d+ attempt\(s\) failed, the last: .*model\.onnx/);
    assert.equal(live.current, first, 'the dead model stays in force (and says so) while no other opens');
    assert.match(live.failure() ?? '', /inference worker exited/);

    await r.stop();
    const stoppedAt = lines.length;
    // A try still pending would now open the model and start a worker that nothing closes.
    await rename(`${modelFile}.away`, modelFile);
    await new Promise((resolve) => setTimeout(resolve, 5 * BACKOFF.maxMs));
    assert.deepEqual(lines.slice(stoppedAt), [], 'nothing tried after the stop');
    assert.equal(live.current, first);
    assert.deepEqual(workers.running(), [], 'no worker left running');
  } finally {
    await r.stop();
    await live.close();
  }
});

test('a reopen never replaces a model put in force while it opened; what it opened is closed', async () => {
  const first = await open(bundle);
  const live = new LiveDetector(first);
  let switched: Detector | undefined;
  const { reopener: r, lines } = reopener(live, {
    // As an update or a rollback would, while the dead model opens again.
    open: async (bundleDir) => {
      const opening = open(bundleDir);
      switched = await open(bundle);
      live.swap(switched);
      return opening;
    },
  });
  try {
    await killWorkerOf(first);
    await waitFor(() => lines.some((l) => /the one opened again is closed/.test(l)), 'the reopen to end');
    assert.ok(switched);
    assert.equal(live.current, switched);
    await waitFor(() => workers.running().length === 1, 'the reopened and the dead workers to exit');
    assert.ok(Number.isFinite((await live.infer(await live.prepare(await frameFromFile(frame)))).score));
  } finally {
    await r.stop();
    await live.close();
  }
});

test('no reopen while a probation is under way: its rollback answers the death of the model under watch', async () => {
  const first = await open(bundle);
  const live = new LiveDetector(first);
  let probation = true;
  const { reopener: r } = reopener(live, { probationOrRollback: () => probation });
  try {
    await killWorkerOf(first);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(live.current, first);
    assert.equal(r.progress(), undefined);
    // The probation ended and its rollback failed (say): the model under watch stays, and comes back.
    probation = false;
    await waitFor(() => live.current !== first, 'the model to be opened again');
    assert.equal(live.failure(), undefined);
  } finally {
    await r.stop();
    await live.close();
  }
});

test('a model that dies again soon after it was opened again is reopened at a growing delay, not every second', async () => {
  const first = await open(bundle);
  const live = new LiveDetector(first);
  // Deaths within the longest delay of a reopen count as failures in a row.
  const { reopener: r, lines } = reopener(live, { backoff: { initialMs: 20, maxMs: 30_000, jitter: 0 } });
  try {
    let dying = first;
    for (let death = 1; death <= 3; death += 1) {
      await killWorkerOf(dying);
      await waitFor(() => live.current !== dying, `reopen ${death}`);
      dying = live.current;
    }
    const delays = lines.map((l) => /can run no frame any more .* in (\d+) ms$/.exec(l)?.[1]).filter((d) => d !== undefined).map(Number);
    assert.deepEqual(delays, [20, 40, 80], lines.join('\n'));
  } finally {
    await r.stop();
    await live.close();
  }
});
