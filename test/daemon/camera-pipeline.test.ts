/**
 * One camera's pipeline at saturation, on the benchmark rig's real parts (onnxruntime
 * worker, MQTT FleetLink to Mosquitto, a subscriber): how many frames it keeps decoded and
 * queued behind the one in inference; and on a live (ffmpeg) camera, which pixel buffers it
 * hands back for reuse and when.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { openRig, sleep } from '../../bench/rig.js';
import type { Frame, FrameSource } from '../../src/capture/frame.js';
import { CameraConfigSchema, createFrameSource } from '../../src/capture/index.js';
import { ScoringConfigSchema } from '../../src/config/schema.js';
import { CameraPipeline, type FrameDetector } from '../../src/daemon/camera-pipeline.js';
import { InferenceConfigSchema } from '../../src/inference/config.js';
import { openDetector, type Detector } from '../../src/inference/detector.js';
import { MqttConfigSchema } from '../../src/mqtt/config.js';
import { MqttFleetLink } from '../../src/mqtt/fleet-link.js';
import { CameraSeq } from '../../src/scoring/seq.js';
import { createLogger } from '../../src/util/log.js';
import { childrenNamed, testClip } from '../capture/helpers.js';
import { Mosquitto } from '../harness/mosquitto.js';
import { MqttCollector } from '../harness/subscriber.js';
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

/** FNV-1a over every byte: a frame's content, to see whether its buffer was refilled. */
function contentHash(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193) >>> 0;
  return h;
}

test('a live camera reuses the pixel buffers of frames it is done with, and never one it still reads', async (t) => {
  const scratch = await tempDir();
  const broker = await Mosquitto.start();
  const link = new MqttFleetLink(MqttConfigSchema.parse({ url: broker.url, device: 'reuse' }), { stateDir: scratch.path });
  let detector: Detector | undefined;
  try {
    await link.start();
    // A model slower than the camera, so frames are replaced in the slot as well as scored.
    const bundle = scratch.file('slow-bundle');
    await writeSyntheticBundle(bundle, { kind: 'heavy', size: 64, grid: 4, runMs: 40 });
    detector = await openDetector({ bundleDir: bundle, backend: { providers: ['cpu'], threads: 1 } });
    const config = CameraConfigSchema.parse({ type: 'file', name: 'reuse', path: testClip(160, 120, 50, 4), width: 160, height: 120, fps: 50, loop: true });
    const source = createFrameSource(config);
    const atDelivery = new WeakMap<Frame, number>();
    const buffers = new Set<ArrayBufferLike>();
    let delivered = 0;
    const refilled: string[] = [];
    // The frame must still hold what the camera delivered wherever the pipeline reads it.
    const check = (frame: Frame, where: string) => {
      if (contentHash(frame.data) !== atDelivery.get(frame)) refilled.push(`frame ${frame.index} ${where}`);
    };
    const watched: FrameSource = {
      camera: source.camera,
      start: (onFrame, onStatus) =>
        source.start((frame) => {
          atDelivery.set(frame, contentHash(frame.data));
          buffers.add(frame.data.buffer);
          delivered += 1;
          onFrame(frame);
        }, onStatus),
      stop: () => source.stop(),
      stats: () => source.stats(),
    };
    const live = detector;
    const spy: FrameDetector = {
      manifest: live.manifest,
      prepare: async (frame) => {
        const prepared = await live.prepare(frame);
        check(frame, 'after its preprocess');
        return prepared;
      },
      infer: (prepared) => live.infer(prepared),
      snapshot: async (frame, detection, options) => {
        check(frame, 'when its snapshot began');
        // As slow as an encoder on a small board: later frames replace this one meanwhile.
        await sleep(50);
        const jpeg = await live.snapshot(frame, detection, options);
        check(frame, 'when its snapshot ended');
        return jpeg;
      },
    };
    const pipeline = new CameraPipeline({
      camera: config,
      source: watched,
      detector: spy,
      link,
      seq: await CameraSeq.open(scratch.path, config.name),
      scoring: () => ScoringConfigSchema.parse({}),
      stuckTimeoutS: 30,
      framesAhead: 2,
      log: createLogger('reuse', 'error'),
    });
    await pipeline.start();
    let snapshots = 0;
    for (const until = performance.now() + 3000; performance.now() < until; ) {
      await sleep(60);
      // Snapshots of the newest scored frame, drawn while later frames replace it.
      if (pipeline.status().frames > 0) {
        await pipeline.publishSnapshotNow();
        snapshots += 1;
      }
    }
    await pipeline.stop();
    const frames = pipeline.status().frames;
    const replaced = pipeline.telemetry().drops.backpressure ?? 0;
    t.diagnostic(`${delivered} frames delivered in ${buffers.size} buffers; ${frames} scored, ${replaced} replaced in the slot; ${snapshots} snapshots`);
    assert.deepEqual(refilled, [], 'a buffer was refilled while the pipeline still read its frame');
    assert.ok(frames >= 10 && replaced >= 10, `scored ${frames}, replaced ${replaced}: the test needs both`);
    assert.ok(snapshots >= 5, `${snapshots} snapshots`);
    assert.ok(buffers.size <= delivered / 4, `${delivered} frames came in ${buffers.size} distinct buffers: released buffers are not reused`);
  } finally {
    await link.stop().catch(() => undefined);
    await detector?.close();
    await broker.teardown();
    await scratch.remove();
  }
});

test('a camera whose capture restarts says so in its telemetry, in all and within the last hour; anomalous frames and events are counted as published', async () => {
  const scratch = await tempDir();
  const broker = await Mosquitto.start();
  const sub = await MqttCollector.connect(broker.url, ['moead/restarts/flaky/score', 'moead/restarts/flaky/event']);
  const link = new MqttFleetLink(MqttConfigSchema.parse({ url: broker.url, device: 'restarts' }), { stateDir: scratch.path });
  let detector: Detector | undefined;
  let pipeline: CameraPipeline | undefined;
  try {
    await link.start();
    const bundle = scratch.file('bundle');
    await writeSyntheticBundle(bundle, { size: 64, grid: 4 });
    detector = await openDetector({ bundleDir: bundle, backend: { providers: ['cpu'], threads: 1 } });
    const config = CameraConfigSchema.parse({ type: 'file', name: 'flaky', path: testClip(160, 120, 25, 4), width: 160, height: 120, fps: 25, reconnect: { initialMs: 100, maxMs: 400, jitter: 0.2 } });
    // Just over the model's good median, so that about half the frames are anomalous and events
    // come and go; regions kept out of the messages (the event log still says where).
    const scoring = ScoringConfigSchema.parse({ threshold: detector.manifest.threshold.good_median + 1e-9, startFrames: 1, endFrames: 1, snapshotOnEvent: false, maxRegions: 0 });
    const lines: string[] = [];
    pipeline = new CameraPipeline({
      camera: config,
      source: createFrameSource(config),
      detector,
      link,
      seq: await CameraSeq.open(scratch.path, config.name),
      scoring: () => scoring,
      stuckTimeoutS: 30,
      framesAhead: 2,
      log: createLogger('restarts', 'info', (line) => lines.push(line)),
    });
    await pipeline.start();
    const running = pipeline;
    const until = async (done: () => boolean, what: string) => {
      for (const deadline = performance.now() + 20_000; !done(); await sleep(20)) {
        if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}: ${JSON.stringify(running.telemetry())}`);
      }
    };
    await until(() => running.status().frames >= 3, 'first frames');
    assert.deepEqual(pipeline.telemetry().capture, { restarts: 0, stalls: 0, restarts_last_hour: 0, stalls_last_hour: 0 });
    // The camera drops out: its ffmpeg child dies, and the source starts it again.
    const [ffmpeg] = childrenNamed('ffmpeg');
    assert.ok(ffmpeg !== undefined, 'expected an ffmpeg child');
    process.kill(ffmpeg, 'SIGKILL');
    await until(() => running.telemetry().capture.restarts >= 1, 'the restart');
    const after = pipeline.status().frames;
    await until(() => running.status().frames >= after + 3, 'frames after the restart');
    await pipeline.stop();
    const telemetry = pipeline.telemetry();
    assert.deepEqual(telemetry.capture, { restarts: 1, stalls: 0, restarts_last_hour: 1, stalls_last_hour: 0 });
    // The counters agree with what subscribers were told.
    const scores = await sub.waitForCount('moead/restarts/flaky/score', telemetry.frames);
    assert.equal(telemetry.anomalous, scores.filter((m) => (m.json() as { anomalous: boolean }).anomalous).length);
    // Each event started was ended by the stop at the latest: a start and an end message each.
    const events = await sub.waitForCount('moead/restarts/flaky/event', 2 * telemetry.events);
    const starts = events.filter((m) => (m.json() as { type: string }).type === 'start');
    assert.equal(telemetry.events, starts.length);
    assert.ok(scores.every((m) => !('regions' in (m.json() as object))), 'scoring.maxRegions 0: no regions in the messages');
    const startLines = lines.filter((l) => / event flaky-\d+ start /.test(l));
    assert.equal(startLines.length, starts.length);
    for (const l of startLines) assert.match(l, / at x \d\.\d\d–\d\.\d\d, y \d\.\d\d–\d\.\d\d of the frame$/);
    assert.ok(telemetry.anomalous > 0, `test setup: no frame scored over ${scoring.threshold}`);
  } finally {
    await sub.close();
    await pipeline?.stop();
    await detector?.close();
    await link.stop();
    await broker.teardown();
    await scratch.remove();
  }
});
