/**
 * The daemon's stop and health on real parts (onnxruntime worker, MQTT link to Mosquitto, a
 * folder camera), in this process so that a command can be served at a chosen moment of the
 * stop: commands that arrive once the stop began are refused, a camera stopped is never
 * restarted, a model that never answers cannot hold the stop up, a dead inference worker
 * makes the daemon unhealthy until the model runs again in a fresh worker, and a failure on
 * every frame is counted on every frame but logged once in a while.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FrameSource } from '../../src/capture/frame.js';
import { CameraConfigSchema, createFrameSource } from '../../src/capture/index.js';
import { loadConfig } from '../../src/config/load.js';
import { ScoringConfigSchema } from '../../src/config/schema.js';
import { ConfigStore } from '../../src/config/store.js';
import { CameraPipeline, type FrameDetector } from '../../src/daemon/camera-pipeline.js';
import { registerCommands } from '../../src/daemon/commands.js';
import { Daemon, type DaemonParts } from '../../src/daemon/daemon.js';
import { realParts } from '../../src/daemon/wiring.js';
import { int8SaturationNote } from '../../src/inference/cpu-int8.js';
import { openDetector, type Detector } from '../../src/inference/detector.js';
import type { CommandHandler, FleetLink } from '../../src/mqtt/link.js';
import type { ModelUpdater } from '../../src/ota/index.js';
import { MqttConfigSchema } from '../../src/mqtt/config.js';
import { MqttFleetLink } from '../../src/mqtt/fleet-link.js';
import { Outbox } from '../../src/mqtt/outbox.js';
import { CameraSeq } from '../../src/scoring/seq.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { Mosquitto, MqttCollector, tempDir, type TempDir } from '../harness/index.js';
import { CORRUPT_PNG, SHIPPED_BUNDLE, testBundle, testFrames, writeOneCameraConfig } from './fixtures.js';
import { watchInferenceWorkers } from './inference-workers.js';

let dir: TempDir;
let broker: Mosquitto;
let bundle: string;

before(async () => {
  dir = await tempDir();
  broker = await Mosquitto.start();
  bundle = (await testBundle(dir.path)).dir;
  await testFrames(dir.file('frames'), {}, 2);
});
after(async () => {
  await broker?.teardown();
  await dir?.remove();
});

/** Polls `done` until it holds; after 30 s gives up with `what` (a hang, not a slow machine). */
async function waitFor(done: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; !done(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
  }
}

/**
 * A daemon on the real parts, one folder camera at `fps` (on the test frames unless `o.frames`
 * names another folder), logging to `o.log` if given; `handlers` are its command handlers, to
 * call directly.
 */
async function startDaemon(
  device: string,
  fps: number,
  o: { frames?: string; log?: Logger; extra?: string[]; model?: string } = {},
): Promise<{ daemon: Daemon; handlers: Map<string, CommandHandler> }> {
  const file = await writeOneCameraConfig(dir.file(`${device}.yaml`), {
    stateDir: dir.file(`${device}-state`),
    camera: { name: 'cam', path: o.frames ?? dir.file('frames'), fps },
    model: o.model ?? bundle,
    broker: broker.url,
    device,
    ...(o.extra ? { extra: o.extra } : {}),
  });
  const handlers = new Map<string, CommandHandler>();
  const parts: DaemonParts = {
    ...realParts,
    async createLink(config, model, log) {
      const handle = await realParts.createLink(config, model, log);
      const register = handle.link.onCommand.bind(handle.link);
      handle.link.onCommand = (name, handler) => {
        handlers.set(name, handler);
        register(name, handler);
      };
      return handle;
    },
  };
  const daemon = new Daemon(new ConfigStore(await loadConfig(file)), parts, o.log ?? createLogger(device, 'error'));
  await daemon.start(() => undefined);
  return { daemon, handlers };
}

test('commands that arrive once the daemon began to stop are refused, not served on parts being torn down', async () => {
  const { daemon, handlers } = await startDaemon('stopping', 10);
  const stopped = daemon.stop();
  try {
    for (const [name, request] of [
      ['rollback-model', { id: 'late-1' }],
      ['restart-camera', { id: 'late-2', camera: 'cam' }],
    ] as const) {
      const handler = handlers.get(name);
      assert.ok(handler, name);
      await assert.rejects(handler(request), /the daemon is stopping/, name);
    }
  } finally {
    await stopped;
  }
});

test('a dead inference worker makes the daemon unhealthy until it has opened the model again in a fresh worker; then frames score again', async () => {
  const workers = watchInferenceWorkers();
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    // One frame a second: right after a score, nothing runs in the worker for most of a second
    // (terminating it during a run would abort the process, not just the worker).
    started = await startDaemon('worker-dies', 1);
    const { daemon } = started;
    const frames = () => (daemon.status().cameras as Record<string, { frames: number }>).cam?.frames ?? 0;
    await waitFor(() => frames() > 0, 'a first score');
    const scored = frames();
    await waitFor(() => frames() > scored, 'a score to follow');
    assert.equal(daemon.health(), undefined);
    assert.equal(workers.all.length, 1, 'test setup: one inference worker');
    await workers.all[0]!.terminate();
    let health = '';
    await waitFor(() => /opening it again/.test((health = daemon.health() ?? '')), 'the daemon to say it is unhealthy, and reopening');
    assert.match(health, /^the model in force can run no frame any more \(inference worker exited \(code 1\)\); opening it again in a fresh inference worker$/);
    await waitFor(() => daemon.health() === undefined, 'the daemon to be healthy again');
    const reopened = frames();
    await waitFor(() => frames() > reopened, 'a score from the model opened again');
    assert.equal(workers.running().length, 1, 'one fresh worker, the dead one gone');
  } finally {
    workers.restore();
    await started?.daemon.stop();
  }
  assert.deepEqual(workers.running(), [], 'the stop closed the fresh worker');
});

test('a stop while the daemon waits to open a dead model again cancels the reopen and leaves no worker running', async () => {
  const workers = watchInferenceWorkers();
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    started = await startDaemon('worker-dies-at-stop', 1);
    const { daemon } = started;
    const frames = () => (daemon.status().cameras as Record<string, { frames: number }>).cam?.frames ?? 0;
    await waitFor(() => frames() > 0, 'a first score');
    await workers.all[0]!.terminate();
    await waitFor(() => /opening it again/.test(daemon.health() ?? ''), 'the reopen to be scheduled');
    await daemon.stop();
    // Past the first try's delay (1 s, REOPEN_BACKOFF): a try left pending would have started a worker.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(workers.all.length, 1, 'no worker started after the stop');
    assert.deepEqual(workers.running(), []);
  } finally {
    workers.restore();
    await started?.daemon.stop();
  }
});

test('a camera sending only corrupt frames counts every one but logs it once, and says at stop how many it held back', async () => {
  // Frame names differ only in digits, which the log's repeat limiter masks: one failure, one kind.
  const frames = dir.file('corrupt-frames');
  await mkdir(frames);
  for (let i = 0; i < 5; i++) await writeFile(join(frames, `corrupt-${i}.png`), CORRUPT_PNG);
  const lines: string[] = [];
  const log = createLogger('flood', 'warn', (line) => lines.push(line));
  const sub = await MqttCollector.connect(broker.url, 'moead/flood/telemetry');
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    started = await startDaemon('flood', 50, { frames, log, extra: ['telemetry: {intervalS: 1}'] });
    const decodeErrors = (m: { json(): unknown }) => (m.json() as { cameras?: { cam?: { drops?: { decode_error?: number } } } }).cameras?.cam?.drops?.decode_error ?? 0;
    // About 2 s of frames at 50 fps, well inside the limiter's 10 s window.
    const telemetry = await sub.waitFor((m) => decodeErrors(m) >= 60, { timeoutMs: 15_000 });
    const counted = decodeErrors(telemetry);
    const skipped = () => lines.filter((l) => / skipped \(/.test(l));
    // One line for the first frame; a second only if this machine took past the 10 s window.
    const before = skipped().length;
    assert.ok(before >= 1 && before <= 2, `${counted} corrupt frames counted, ${before} "skipped" lines logged; the first two:\n${skipped().slice(0, 2).join('\n')}`);
    assert.match(skipped()[0]!, /WARN +\[flood:cam\] frame \d+ skipped \(decode\): /);
    await started.daemon.stop();
    const atStop = skipped();
    assert.equal(atStop.length, before + 1, `the stop did not say what it held back:\n${atStop.join('\n')}`);
    assert.match(atStop.at(-1)!, / \(and \d+ more like it in the last \d+ s\)$/);
    // Each corrupt frame is logged or counted in a logged line, and frames went on failing after that telemetry.
    const said = atStop.reduce((sum, l) => sum + 1 + Number(/ \(and (\d+) more like it/.exec(l)?.[1] ?? 0), 0);
    assert.ok(said >= counted, `the log accounts for ${said} corrupt frames, telemetry counted ${counted}`);
  } finally {
    await started?.daemon.stop();
    await sub.close();
  }
});

test("at start the model's reference frames are scored on this device: a device that scores them otherwise is warned about, naming the frame, and runs on", async () => {
  // The same model, with a manifest that says its first frame scored otherwise where it was made.
  const moved = dir.file('moved-bundle');
  await cp(bundle, moved, { recursive: true });
  const manifestFile = join(moved, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { threshold: { value: number }; reference_frames: Array<{ file: string; score: number }> };
  const first = manifest.reference_frames[0]!;
  const shift = 0.5 * Math.max(first.score, manifest.threshold.value);
  first.score += shift;
  await writeFile(manifestFile, JSON.stringify(manifest));
  const lines: string[] = [];
  const log = createLogger('refs', 'info', (line) => lines.push(line));
  const sub = await MqttCollector.connect(broker.url, 'moead/refs/#');
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    started = await startDaemon('refs', 20, { log, model: moved, extra: ['telemetry: {intervalS: 1}'] });
    const warned = lines.filter((l) => l.includes('reference frames do not score on this device as the manifest says'));
    assert.equal(warned.length, 1, lines.join('\n'));
    assert.match(warned[0]!, /^\S+ WARN /);
    assert.ok(warned[0]!.includes(`${first.file} scored `), warned[0]);
    // The likely cause is named where this CPU has it (x86 without VNNI), and only there.
    const note = int8SaturationNote();
    assert.equal(warned[0]!.includes('Likely why'), note !== undefined, warned[0]);
    await sub.waitFor('moead/refs/cam/score', { timeoutMs: 15_000 });
    // The fleet sees it too, in telemetry.
    const telemetry = (await sub.waitFor('moead/refs/telemetry', { timeoutMs: 15_000 })).json() as { model: { reference_check?: { frames: number; max_difference: number; ok: boolean } } };
    const check = telemetry.model.reference_check;
    assert.equal(check?.frames, manifest.reference_frames.length);
    assert.equal(check?.ok, false);
    // The shift, give or take what this device's own scores may differ (under the tolerance, a fifth of the shift).
    assert.ok(Math.abs((check?.max_difference ?? 0) - shift) <= shift / 5, `${JSON.stringify(check)}, shift ${shift}`);
  } finally {
    await started?.daemon.stop();
    await sub.close();
  }
});

test("at start the shipped model's reference frames score on this device as its manifest says, and the log says so once", { skip: existsSync(join(SHIPPED_BUNDLE, 'manifest.json')) ? false : 'the shipped bundle is not in this checkout' }, async () => {
  const lines: string[] = [];
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    started = await startDaemon('refs-ok', 2, { log: createLogger('refs-ok', 'info', (line) => lines.push(line)) });
    const said = lines.filter((l) => l.includes('reference frames'));
    assert.equal(said.length, 1, lines.join('\n'));
    assert.match(said[0]!, /INFO .*reference frames: 4 of 4 score on this device as the manifest says \(largest difference \d\.\d{4}, \d+ % of what ota.referenceTolerance allows\)/);
  } finally {
    await started?.daemon.stop();
  }
});

/** A camera on the folder of frames whose source counts its starts, with `detector`, publishing on a real link. */
async function camera(name: string, detector: FrameDetector, link: MqttFleetLink): Promise<{ pipeline: CameraPipeline; starts: () => number }> {
  const config = CameraConfigSchema.parse({ type: 'folder', name, path: dir.file('frames'), fps: 10 });
  const source = createFrameSource(config);
  let starts = 0;
  const counted: FrameSource = {
    camera: source.camera,
    start: (onFrame, onStatus) => {
      starts += 1;
      return source.start(onFrame, onStatus);
    },
    stop: () => source.stop(),
    stats: () => source.stats(),
  };
  const pipeline = new CameraPipeline({
    camera: config,
    source: counted,
    detector,
    link,
    seq: await CameraSeq.open(dir.file(`${name}-state`), name),
    scoring: () => ScoringConfigSchema.parse({}),
    stuckTimeoutS: 0.5,
    framesAhead: 1,
    log: createLogger(name, 'error'),
  });
  return { pipeline, starts: () => starts };
}

/** Runs `body` with a real link and the test bundle opened; closes both after. */
async function withModel(device: string, body: (link: MqttFleetLink, model: Detector) => Promise<void>): Promise<void> {
  const link = new MqttFleetLink(MqttConfigSchema.parse({ url: broker.url, device }), { stateDir: dir.file(`${device}-state`) });
  let detector: Detector | undefined;
  try {
    await link.start();
    detector = await openDetector({ bundleDir: bundle, backend: { threads: 1 } });
    await body(link, detector);
  } finally {
    await link.stop().catch(() => undefined);
    await detector?.close();
  }
}

test('a score the previous run queued but was killed before counting in its seq file keeps its number; this run goes on after it', async () => {
  // The state a SIGKILL between the two leaves: the seq file says 3 is next, the queue holds score 3.
  const state = dir.file('killed-state');
  const before = await CameraSeq.open(state, 'killed');
  for (let s = 0; s < 3; s++) await before.commit(s);
  await before.close();
  const mqtt = MqttConfigSchema.parse({ url: broker.url, device: 'killed' });
  const queue = Outbox.open(join(state, 'outbox'), mqtt.outbox);
  const left = { ts: new Date().toISOString(), seq: 3, score: 0.123, threshold: 1, normalized: 0.1, anomalous: false, model: { name: 'left', version: '1.0.0' }, latency_ms: 1 };
  queue.put('score', 'moead/killed/killed/score', JSON.stringify(left));
  queue.close();

  const sub = await MqttCollector.connect(broker.url, 'moead/killed/killed/score');
  try {
    await withModel('killed', async (link, model) => {
      const { pipeline } = await camera('killed', model, link);
      await pipeline.start();
      await sub.waitFor(() => sub.messages.length >= 3, { timeoutMs: 15_000 });
      await pipeline.stop();
    });
    const seqs = sub.messages.map((m) => (m.json() as { seq: number }).seq);
    const three = sub.messages.filter((m) => (m.json() as { seq: number }).seq === 3).map((m) => (m.json() as { model: { name: string } }).model.name);
    assert.deepEqual(three, ['left'], `seq 3 labels only the queued score: ${seqs.join(', ')}`);
    assert.deepEqual(seqs.slice(0, 3), [3, 4, 5]);
  } finally {
    await sub.close();
  }
});

test('a camera that stopped is not restarted by a restart-camera', async () => {
  await withModel('restart', async (link, model) => {
    const { pipeline, starts } = await camera('restart', model, link);
    await pipeline.start();
    await waitFor(() => pipeline.status().frames > 0, 'a score');
    await pipeline.stop();
    await assert.rejects(pipeline.restartSource(), /camera "restart" is stopped/);
    assert.equal(starts(), 1, 'the source was started again after the stop');
  });
});

test('a model that never answers holds a camera\'s stop up for inference.stuckTimeoutS at most; its frames are abandoned', { timeout: 60_000 }, async () => {
  await withModel('hung', async (link, model) => {
    let submitted = 0;
    const hung: FrameDetector = {
      manifest: model.manifest,
      prepare: (frame) => model.prepare(frame),
      infer: () => {
        submitted += 1;
        return new Promise(() => undefined);
      },
      snapshot: (frame, detection, options) => model.snapshot(frame, detection, options),
    };
    const { pipeline } = await camera('hung', hung, link);
    await pipeline.start();
    await waitFor(() => submitted > 0, 'a frame in inference');
    assert.deepEqual(await pipeline.stop(), { abandoned: true });
    assert.equal(pipeline.status().frames, 0);
  });
});

test('a command that never settles holds the stop up for the wait it is given at most, and later ones are refused', { timeout: 10_000 }, async () => {
  const handlers = new Map<string, CommandHandler>();
  // Only what registerCommands touches: the link's onCommand and a rollback that never ends.
  const link = { onCommand: (name: string, handler: CommandHandler) => handlers.set(name, handler) } as unknown as FleetLink;
  const models = { rollBack: () => new Promise<never>(() => undefined) } as unknown as ModelUpdater;
  const commands = registerCommands(link, { store: new ConfigStore(await loadConfig(undefined)), cameras: [], status: () => ({}), models });
  void handlers.get('rollback-model')!({ id: 'hangs' });
  assert.equal(await commands.close(200), 1, 'one command left running');
  await assert.rejects(handlers.get('status')!({ id: 'late' }), /the daemon is stopping/);
});
