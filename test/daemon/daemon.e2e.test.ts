/**
 * The daemon end to end, as a child process (`moead-edge run`) against a real Mosquitto:
 * availability, the score contract with gap-free seq, telemetry, commands, a corrupt frame
 * skipped, clean SIGTERM, seq carried across a restart, and an event a SIGKILL left open
 * ended at the next start.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { after, before, test } from 'node:test';
import { ManifestSchema, type Manifest } from '../../src/bundle/manifest.js';
import { openDetector } from '../../src/inference/index.js';
import { Outbox } from '../../src/mqtt/outbox.js';
import { OpenEventFile } from '../../src/scoring/open-event.js';
import { CameraSeq } from '../../src/scoring/seq.js';
import { scoreImages } from '../../src/inference/files.js';
import { describeRegion } from '../../src/scoring/decide.js';
import { CameraTelemetrySchema, CommandReplySchema, EventPayloadSchema, ScorePayloadSchema, TelemetryPayloadSchema } from '../../src/mqtt/topics.js';
import { Mosquitto, MqttCollector, spawnCli, spawnProcess, tempDir, WallClock, type ChildHandle, type ReceivedMessage, type TempDir } from '../harness/index.js';
import { writeSyntheticBundle } from '../inference/synthetic-bundle.js';
import { CORRUPT_PNG, testBundle, testFrames, writeOneCameraConfig, writeStuckCameraConfig } from './fixtures.js';

const ROOT = 'moead/e2e';
let broker: Mosquitto;
let dir: TempDir;
let manifest: Manifest;
let configFile: string;
let frameCount: number;
let threshold: number;

before(async () => {
  broker = await Mosquitto.start();
  dir = await tempDir();
  const bundle = await testBundle(dir.path);
  manifest = ManifestSchema.parse(JSON.parse(await readFile(`${bundle.dir}/manifest.json`, 'utf8')));
  // The corrupt file sorts in the middle of the folder, so frames follow it on every pass.
  const names = await testFrames(dir.file('frames'), { 'frame-2b-corrupt.png': CORRUPT_PNG }, 12);
  frameCount = names.length;
  // A threshold between this model's scores of these frames, so some frames are anomalous and
  // some are not, whatever the model: events must start and end during the test.
  const detector = await openDetector({ bundleDir: bundle.dir, backend: { threads: 1 } });
  try {
    const files = names.filter((n) => !n.includes('corrupt')).map((n) => dir.file('frames', n));
    const values = (await scoreImages(detector, files)).flatMap((r) => (r.ok ? [r.score] : []));
    const max = Math.max(...values);
    const good = manifest.threshold.good_median;
    assert.ok(max > good, `test setup: no frame scores above the model's good median ${good} (max ${max})`);
    threshold = (Math.max(good, Math.min(...values)) + max) / 2;
  } finally {
    await detector.close();
  }
  configFile = await writeOneCameraConfig(dir.file('moead.yaml'), {
    stateDir: dir.file('state'),
    camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
    model: bundle.dir,
    broker: broker.url,
    device: 'e2e',
    extra: ['telemetry: {intervalS: 1, prometheus: {enabled: true, port: 0}}', `scoring: {threshold: ${threshold}, startFrames: 1, endFrames: 1}`],
  });
});

after(async () => {
  await broker?.teardown();
  await dir?.remove();
});

const scores = (sub: MqttCollector) => sub.on(`${ROOT}/cam1/score`).map((m) => ScorePayloadSchema.parse(m.json()));

async function command(sub: MqttCollector, name: string, body: Record<string, unknown>): Promise<ReceivedMessage> {
  const from = sub.mark;
  await sub.publish(`${ROOT}/cmd/${name}`, body);
  return sub.waitFor((m) => m.topic === `${ROOT}/cmd/${name}/reply` && (m.json() as { id?: unknown }).id === body.id, { from, timeoutMs: 10_000 });
}

function startDaemon(): ChildHandle {
  return spawnCli(['run', '--config', configFile], { env: { MOEAD_LOG_LEVEL: 'info' } });
}

test('publishes the contract, survives a corrupt frame, answers commands, stops cleanly, and seq carries over a restart', async () => {
  const sub = await MqttCollector.connect(broker.url, `${ROOT}/#`);
  const daemon = startDaemon();
  try {
    // Where it publishes and how to watch, on stdout.
    await daemon.waitForLine(`mosquitto_sub -h 127.0.0.1 -p ${broker.port} -t 'moead/#' -v`, { stream: 'stdout', timeoutMs: 15_000 });
    await daemon.waitForLine(`npx mqtt sub -h 127.0.0.1 -p ${broker.port} -t 'moead/#'`, { stream: 'stdout' });

    await sub.waitFor((m) => m.topic === `${ROOT}/availability` && m.text() === 'online');
    // Retained: a client arriving later still learns the device is online.
    const late = await MqttCollector.connect(broker.url, `${ROOT}/availability`);
    const retained = await late.waitFor(`${ROOT}/availability`);
    assert.equal(retained.text(), 'online');
    assert.equal(retained.retain, true);
    await late.close();

    // More score messages than files: the corrupt one was skipped and the camera went on.
    const n = frameCount + 3;
    await sub.waitForCount(`${ROOT}/cam1/score`, n, { timeoutMs: 30_000 });
    const first = scores(sub).slice(0, n);
    assert.deepEqual(first.map((s) => s.seq), [...Array(n).keys()], 'seq numbers score messages from 0 without gaps');
    for (const s of first) {
      assert.deepEqual(s.model, { name: manifest.name, version: manifest.version });
      assert.equal(s.threshold, threshold);
      assert.equal(s.anomalous, s.score >= s.threshold);
      const expected = Math.min(1, Math.max(0, 0.5 + (0.5 * (s.score - s.threshold)) / (s.threshold - manifest.threshold.good_median)));
      assert.ok(Math.abs(s.normalized - expected) < 1e-12, `normalized ${s.normalized} != ${expected}`);
      // Where, on anomalous frames only (scoring.maxRegions, 4 by default): the strongest area first, each at or over the threshold.
      if (s.anomalous) {
        assert.ok(s.regions && s.regions.length >= 1 && s.regions.length <= 4, JSON.stringify(s));
        for (const r of s.regions) assert.ok(r.peak >= s.threshold && r.x + r.w <= 1 + 1e-9 && r.y + r.h <= 1 + 1e-9, JSON.stringify(r));
        assert.deepEqual(s.regions.map((r) => r.peak), s.regions.map((r) => r.peak).sort((a, b) => b - a));
      } else {
        assert.equal(s.regions, undefined, JSON.stringify(s));
      }
    }
    assert.ok(first.some((s) => s.anomalous), 'test setup: some frames are anomalous');

    // Telemetry counts the corrupt frame and carries the figures the contract promises.
    const telemetry = await sub.waitFor(
      (m) => m.topic === `${ROOT}/telemetry` && ((m.json() as { cameras?: { cam1?: { drops?: { decode_error?: number } } } }).cameras?.cam1?.drops?.decode_error ?? 0) >= 1,
      { timeoutMs: 10_000 },
    );
    const health = TelemetryPayloadSchema.parse(telemetry.json()) as Record<string, unknown> & { cameras: Record<string, { frames: number; latency_ms: { p50: number | null } }> };
    assert.ok((health.cameras.cam1?.frames ?? 0) > 0);
    // How often it alarms, counted as the score messages decide; a folder camera never restarts.
    const cam1 = CameraTelemetrySchema.parse(health.cameras.cam1);
    assert.ok(cam1.anomalous >= 1 && cam1.anomalous <= cam1.frames, JSON.stringify(cam1));
    assert.deepEqual(cam1.capture, { restarts: 0, stalls: 0, restarts_last_hour: 0, stalls_last_hour: 0 });
    assert.equal(typeof health.cameras.cam1?.latency_ms.p50, 'number');
    assert.deepEqual(Object.keys(health.process as object).sort(), ['allocator', 'cpu_percent', 'heap_mb', 'memory_budget_mb', 'over_budget', 'rss_mb']);
    // spawnCli starts it as `npm start` does: the C library's malloc unless MOEAD_MALLOC asks for jemalloc.
    assert.equal((health.process as { allocator: string }).allocator, process.env.MOEAD_MALLOC === 'jemalloc' ? 'jemalloc' : 'system');
    assert.deepEqual((health.model as { name: string }).name, manifest.name);
    assert.equal((health.model as { sha256: string }).sha256, manifest.model.sha256, 'telemetry names the exact model file in use');

    // The same figures on the Prometheus endpoint.
    const metricsLine = await daemon.waitForLine(/Prometheus metrics on (http:\/\/\S+)/);
    const metricsUrl = /Prometheus metrics on (http:\/\/\S+)/.exec(metricsLine.text)?.[1] ?? '';
    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(metrics, /moead_camera_frames_scored\{camera="cam1"\} [1-9]/);
    assert.match(metrics, /moead_camera_drops\{camera="cam1",reason="decode_error"\} [1-9]/);

    // Events: with N = M = 1 the first anomalous frame opens one (with a snapshot), the next normal one ends it.
    const events = await sub.waitForCount(`${ROOT}/cam1/event`, 2, { timeoutMs: 10_000 });
    const [start, end] = events.map((m) => EventPayloadSchema.parse(m.json()));
    assert.equal(start?.type, 'start');
    assert.equal(end?.type, 'end');
    assert.equal(end?.id, start?.id);
    const firstAnomalous = scores(sub).find((s) => s.anomalous);
    assert.equal(start?.id, `cam1-${firstAnomalous?.seq}`);
    assert.ok((start?.peak_score ?? 0) >= threshold);
    // The log says where the frame that opened it is anomalous: its strongest region.
    const where = firstAnomalous?.regions?.[0];
    assert.ok(where, JSON.stringify(firstAnomalous));
    await daemon.waitForLine(`event ${start?.id} start (peak ${start?.peak_score.toFixed(4)}, 1 frames) at ${describeRegion(where)}`);
    const snapshot = await sub.waitFor(`${ROOT}/cam1/snapshot`);
    assert.deepEqual([...snapshot.payload.subarray(0, 3)], [0xff, 0xd8, 0xff], 'the snapshot is a JPEG');

    // Commands: status, and set-threshold validated before use.
    const status = CommandReplySchema.parse((await command(sub, 'status', { id: 's1' })).json());
    assert.equal(status.ok, true);
    assert.equal(status.ok && (status.result as { cameras: { cam1: { state: string } } }).cameras.cam1.state, 'streaming');

    const tooLow = manifest.threshold.good_median / 2;
    const refused = CommandReplySchema.parse((await command(sub, 'set-threshold', { id: 't1', threshold: tooLow })).json());
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? '' : refused.error, /must be above the model's median good score/);

    const raised = threshold * 4;
    const accepted = CommandReplySchema.parse((await command(sub, 'set-threshold', { id: 't2', camera: 'cam1', threshold: raised })).json());
    assert.equal(accepted.ok, true, JSON.stringify(accepted));
    const mark = sub.mark;
    const after = await sub.waitFor((m) => m.topic === `${ROOT}/cam1/score` && ScorePayloadSchema.parse(m.json()).threshold === raised, { from: mark, timeoutMs: 5000 });
    assert.ok(after);

    // snapshot: a fresh annotated JPEG of the newest scored frame; restart-camera: the source
    // restarts and scoring goes on; an unknown camera is an error naming the field.
    const snapMark = sub.mark;
    const snap = CommandReplySchema.parse((await command(sub, 'snapshot', { id: 'p1', camera: 'cam1' })).json());
    assert.equal(snap.ok, true, JSON.stringify(snap));
    const fresh = await sub.waitFor(`${ROOT}/cam1/snapshot`, { from: snapMark, timeoutMs: 5000 });
    assert.deepEqual([...fresh.payload.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    const unknown = CommandReplySchema.parse((await command(sub, 'snapshot', { id: 'p2', camera: 'nope' })).json());
    assert.equal(unknown.ok, false);
    assert.match(unknown.ok ? '' : unknown.error, /camera: no camera named "nope"/);
    const restarted = CommandReplySchema.parse((await command(sub, 'restart-camera', { id: 'c1', camera: 'cam1' })).json());
    assert.equal(restarted.ok, true, JSON.stringify(restarted));
    await sub.waitFor(`${ROOT}/cam1/score`, { from: sub.mark, timeoutMs: 5000 });

    // reload-config: an invalid file is refused and the daemon keeps going; a valid one applies.
    const good = await readFile(configFile, 'utf8');
    await writeFile(configFile, good.replace('endFrames: 1', 'endFrames: -4'));
    const bad = CommandReplySchema.parse((await command(sub, 'reload-config', { id: 'r1' })).json());
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.error, /scoring\.endFrames: Too small: expected number to be >=1; received -4/);
    const stillScoring = sub.mark;
    await sub.waitFor(`${ROOT}/cam1/score`, { from: stillScoring, timeoutMs: 5000 });
    await writeFile(configFile, good.replace('endFrames: 1', 'endFrames: 2'));
    const reloaded = CommandReplySchema.parse((await command(sub, 'reload-config', { id: 'r2' })).json());
    // The file watcher may have applied it a moment before the command did: either way it is in force.
    assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
    const afterReload = CommandReplySchema.parse((await command(sub, 'status', { id: 's2' })).json());
    assert.equal(afterReload.ok && (afterReload.result as { scoring: { endFrames: number } }).scoring.endFrames, 2);

    // SIGTERM: offline (retained), exit 0, and every committed seq was delivered.
    daemon.signal('SIGTERM');
    const exit = await daemon.waitForExit(15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.output());
    await sub.waitFor((m) => m.topic === `${ROOT}/availability` && m.text() === 'offline');
    const state = await CameraSeq.open(dir.file('state'), 'cam1');
    const delivered = scores(sub).map((s) => s.seq);
    assert.deepEqual(delivered, [...Array(state.next).keys()], 'what was in flight at SIGTERM arrived, nothing more, nothing less');
  } finally {
    await daemon.stop();
  }

  // A restart continues the numbering where it stopped.
  const sent = scores(sub).length;
  const again = startDaemon();
  try {
    const next = await sub.waitFor(`${ROOT}/cam1/score`, { from: sub.mark, timeoutMs: 20_000 });
    assert.equal(ScorePayloadSchema.parse(next.json()).seq, sent);
  } finally {
    again.signal('SIGTERM');
    assert.equal((await again.waitForExit(15_000)).code, 0, again.output());
    await sub.close();
  }
});

/**
 * Runs the CLI with no config file (built-in defaults, embedded broker on a free port) plus
 * `env`, checks `before(daemon)` first, then that a score arrives and SIGTERM exits 0.
 */
async function runDefaultsUntilScore(device: string, env: Record<string, string>, before?: (daemon: ChildHandle) => Promise<unknown>): Promise<void> {
  const state = await tempDir();
  const bundle = await testBundle(dir.path);
  // The real default is the shipped bundle; only a checkout without it points elsewhere.
  const fullEnv: Record<string, string> = { MOEAD_STATE_DIR: state.path, MOEAD_MQTT__EMBEDDED_PORT: '0', MOEAD_MQTT__DEVICE: device, ...env };
  if (!bundle.shipped) fullEnv.MOEAD_INFERENCE__MODEL = bundle.dir;
  const daemon = spawnCli(['run'], { env: fullEnv });
  try {
    await before?.(daemon);
    const line = await daemon.waitForLine(/mosquitto_sub -h 127\.0\.0\.1 -p (\d+) -t 'moead\/#' -v/, { stream: 'stdout', timeoutMs: 15_000 });
    const port = Number(/-p (\d+)/.exec(line.text)?.[1]);
    const sub = await MqttCollector.connect(`mqtt://127.0.0.1:${port}`, `moead/${device}/#`);
    const first = await sub.waitFor(`moead/${device}/samples/score`, { timeoutMs: 20_000 });
    ScorePayloadSchema.parse(first.json());
    await sub.close();
    daemon.signal('SIGTERM');
    assert.equal((await daemon.waitForExit(15_000)).code, 0, daemon.output());
  } finally {
    await daemon.stop();
    await state.remove();
  }
}

test('out of the box: no config, an embedded broker, the sample frames; prints how to watch within 15 s', async () => {
  await runDefaultsUntilScore('oob', {});
});

test('inference slower than capture: the newest frame wins, drops are counted, seq has no gaps', async () => {
  const scratch = await tempDir();
  try {
    // A model made slow on purpose (MatMul rounds), fed at 120 fps: the slot must drop.
    const slowBundle = scratch.file('slow-bundle');
    await writeSyntheticBundle(slowBundle, { kind: 'heavy', size: 64, grid: 4, runMs: 25 });
    await testFrames(scratch.file('frames'), {}, 3);
    const file = await writeOneCameraConfig(scratch.file('slow.yaml'), {
      stateDir: scratch.file('state'),
      camera: { name: 'fast', path: scratch.file('frames'), fps: 120 },
      model: slowBundle,
      broker: broker.url,
      device: 'slow',
      extra: ['telemetry: {intervalS: 1}'],
    });
    const sub = await MqttCollector.connect(broker.url, 'moead/slow/#');
    const daemon = spawnCli(['run', '--config', file]);
    try {
      const telemetry = await sub.waitFor(
        (m) => {
          if (m.topic !== 'moead/slow/telemetry') return false;
          const cam = (m.json() as { cameras?: { fast?: { frames: number; drops: { backpressure: number } } } }).cameras?.fast;
          return cam !== undefined && cam.frames >= 3 && cam.drops.backpressure > 0;
        },
        { timeoutMs: 30_000 },
      );
      assert.ok(telemetry);
      daemon.signal('SIGTERM');
      assert.equal((await daemon.waitForExit(15_000)).code, 0, daemon.output());
      const seqs = sub.on('moead/slow/fast/score').map((m) => ScorePayloadSchema.parse(m.json()).seq);
      assert.ok(seqs.length >= 3);
      assert.deepEqual(seqs, [...Array(seqs.length).keys()], 'dropped frames never consume a seq');
    } finally {
      await daemon.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test('a Jetson board asks for the native backend; without TensorRT the daemon says why and runs onnxruntime', async () => {
  await runDefaultsUntilScore('jetson', { MOEAD_BOARD: 'jetson-orin-nano' }, (daemon) =>
    daemon.waitForLine(/asks for the native backend, which is unavailable here: .*Running onnxruntime instead\./, { timeoutMs: 15_000 }),
  );
});

test('a frame held in inference past inference.stuckTimeoutS marks the camera inference_stuck until results return', async () => {
  const scratch = await tempDir();
  try {
    // Every run of this model takes far longer than the 50 ms allowed.
    await testFrames(scratch.file('frames'), {}, 2);
    const file = await writeStuckCameraConfig(scratch.path, { runMs: 200, stuckTimeoutS: 0.05, frames: scratch.file('frames'), broker: broker.url, device: 'stuck' });
    const sub = await MqttCollector.connect(broker.url, 'moead/stuck/#');
    const daemon = spawnCli(['run', '--config', file]);
    try {
      const status = (m: ReceivedMessage): { state: string; message?: string } => m.json() as { state: string; message?: string };
      const stuck = await sub.waitFor((m) => m.topic === 'moead/stuck/cam/status' && status(m).state === 'inference_stuck', { timeoutMs: 20_000 });
      assert.match(status(stuck).message ?? '', /in inference for \d+ s \(inference\.stuckTimeoutS 0\.05\)/);
      // A result arrives: the source's state is shown again and scoring goes on.
      await sub.waitFor((m) => m.topic === 'moead/stuck/cam/status' && status(m).state === 'streaming', { from: sub.mark, timeoutMs: 20_000 });
      await sub.waitFor('moead/stuck/cam/score', { timeoutMs: 20_000 });
      daemon.signal('SIGTERM');
      assert.equal((await daemon.waitForExit(15_000)).code, 0, daemon.output());
    } finally {
      await daemon.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test('an event left open by a crash (SIGKILL) is ended at the next start, so no consumer waits for its end forever', async () => {
  const scratch = await tempDir();
  try {
    // endFrames far beyond the run: once the first anomalous frame opens the event, only a
    // stop can end it. SIGKILL gives the daemon no chance to.
    const file = await writeOneCameraConfig(scratch.file('crash.yaml'), {
      stateDir: scratch.file('state'),
      camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'crash',
      extra: [`scoring: {threshold: ${threshold}, startFrames: 1, endFrames: 10000}`],
    });
    const sub = await MqttCollector.connect(broker.url, 'moead/crash/#');
    const events = () => sub.on('moead/crash/cam1/event').map((m) => EventPayloadSchema.parse(m.json()));
    const first = spawnCli(['run', '--config', file]);
    let again: ChildHandle | undefined;
    try {
      const started = EventPayloadSchema.parse((await sub.waitFor('moead/crash/cam1/event', { timeoutMs: 30_000 })).json());
      assert.equal(started.type, 'start');
      // Let a few more frames join the event, so the end has more to say than the start did.
      const mark = sub.mark;
      await sub.waitForCount('moead/crash/cam1/score', 3, { from: mark, timeoutMs: 10_000 });
      first.signal('SIGKILL');
      await first.exited;
      assert.ok(!events().some((e) => e.type === 'end'), 'test setup: the event was still open at the kill');

      again = spawnCli(['run', '--config', file]);
      const end = await sub.waitFor((m) => m.topic === 'moead/crash/cam1/event' && EventPayloadSchema.parse(m.json()).type === 'end', { timeoutMs: 30_000 });
      const ended = EventPayloadSchema.parse(end.json());
      assert.equal(ended.id, started.id, 'the end names the event the crash left open');
      assert.ok(ended.frames >= started.frames && ended.peak_score >= started.peak_score, JSON.stringify({ started, ended }));
      await again.waitForLine(`event ${started.id} was still open when the daemon last ended without ending it`);
      // It is said once: a clean stop after that has no open event from the old run left to end.
      again.signal('SIGTERM');
      assert.equal((await again.waitForExit(15_000)).code, 0, again.output());
      assert.equal(events().filter((e) => e.id === started.id && e.type === 'end').length, 1, JSON.stringify(events()));
    } finally {
      await first.stop();
      await again?.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test('what a kill just after queueing leaves only in the outbox is read at the next start: a queued start gets its end, a queued end is not sent again, a queued seq is not reused', async () => {
  const scratch = await tempDir();
  try {
    const state = scratch.file('state');
    // The previous run queued score 41 and the start of event cam1-40, and was killed before
    // the seq file and the open-event file recorded either.
    const seq = await CameraSeq.open(state, 'cam1');
    for (let s = 0; s <= 40; s++) await seq.commit(s);
    await seq.close();
    const queue = Outbox.open(scratch.file('state', 'outbox'), { maxMessages: 1000, segmentBytes: 1 << 20, fsyncMs: 0 });
    const ts = '2026-01-01T00:00:05.000Z';
    queue.put('event', 'moead/queued/cam1/event', JSON.stringify({ id: 'cam1-30', type: 'start', ts, peak_score: 0.7, frames: 1 }));
    queue.put('event', 'moead/queued/cam1/event', JSON.stringify({ id: 'cam1-30', type: 'end', ts, peak_score: 0.7, frames: 3 }));
    queue.put('event', 'moead/queued/cam1/event', JSON.stringify({ id: 'cam1-40', type: 'start', ts, peak_score: 0.75, frames: 2 }));
    queue.put('score', 'moead/queued/cam1/score', JSON.stringify({ ts, seq: 41, score: 0.75, threshold: 0.5, normalized: 0.9, anomalous: true, model: { name: 'before', version: '1.0.0' }, latency_ms: 1 }));
    queue.close();
    const file = await writeOneCameraConfig(scratch.file('queued.yaml'), {
      stateDir: state,
      camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'queued',
      extra: [`scoring: {threshold: ${threshold}, startFrames: 1, endFrames: 10000}`],
    });
    const sub = await MqttCollector.connect(broker.url, 'moead/queued/#');
    const events = () => sub.on('moead/queued/cam1/event').map((m) => EventPayloadSchema.parse(m.json()));
    const child = spawnCli(['run', '--config', file]);
    try {
      await child.waitForLine('event cam1-40 was started by the previous run, which ended (killed or crashed) before');
      await child.waitForLine('seq 41 was queued by the previous run');
      await sub.waitForCount('moead/queued/cam1/score', 3, { timeoutMs: 30_000 });
      child.signal('SIGTERM');
      assert.equal((await child.waitForExit(15_000)).code, 0, child.output());
      const ends = events().filter((e) => e.type === 'end');
      assert.deepEqual(ends.filter((e) => e.id === 'cam1-40'), [{ id: 'cam1-40', type: 'end', ts, peak_score: 0.75, frames: 2 }]);
      assert.equal(ends.filter((e) => e.id === 'cam1-30').length, 1, 'the queued end, delivered once');
      const seqs = sub.on('moead/queued/cam1/score').map((m) => ScorePayloadSchema.parse(m.json()).seq);
      assert.deepEqual(seqs.slice(0, 3), [41, 42, 43]);
    } finally {
      await child.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test('an open-event file whose end the previous run had already queued is removed without sending that end again', async () => {
  const scratch = await tempDir();
  try {
    const state = scratch.file('state');
    const left = await OpenEventFile.open(state, 'cam1');
    await left.save({ id: 'cam1-8', ts: '2026-01-01T00:00:02.000Z', peak_score: 0.8, frames: 4 });
    await left.close();
    const queue = Outbox.open(scratch.file('state', 'outbox'), { maxMessages: 1000, segmentBytes: 1 << 20, fsyncMs: 0 });
    queue.put('event', 'moead/ended/cam1/event', JSON.stringify({ id: 'cam1-8', type: 'end', ts: '2026-01-01T00:00:02.000Z', peak_score: 0.8, frames: 4 }));
    queue.close();
    const file = await writeOneCameraConfig(scratch.file('ended.yaml'), {
      stateDir: state,
      camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'ended',
    });
    const sub = await MqttCollector.connect(broker.url, 'moead/ended/#');
    const child = spawnCli(['run', '--config', file]);
    try {
      await sub.waitForCount('moead/ended/cam1/score', 2, { timeoutMs: 30_000 });
      child.signal('SIGTERM');
      assert.equal((await child.waitForExit(15_000)).code, 0, child.output());
      const ends = sub.on('moead/ended/cam1/event').map((m) => EventPayloadSchema.parse(m.json())).filter((e) => e.id === 'cam1-8');
      assert.equal(ends.length, 1, 'the queued end only');
      assert.ok(!child.output().includes('cam1-8 was still open'), child.output());
      assert.deepEqual(await readdir(scratch.file('state', 'events')), []);
    } finally {
      await child.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test("EXPECTED FAILURE - at start a torn open-event file is reported once and removed, and a removed camera's open event is named and dropped, never published", async () => {
  const scratch = await tempDir();
  try {
    const state = scratch.file('state');
    await mkdir(scratch.file('state', 'events'), { recursive: true });
    await writeFile(scratch.file('state', 'events', 'cam1.json'), '{"camera":"cam1","id":"cam1-7","ts":"2026');
    const gone = await OpenEventFile.open(state, 'old-cam');
    await gone.save({ id: 'old-cam-3', ts: '2026-01-01T00:00:02.000Z', peak_score: 0.8125, frames: 4 });
    await gone.close();
    const file = await writeOneCameraConfig(scratch.file('orphan.yaml'), {
      stateDir: state,
      camera: { name: 'cam1', path: dir.file('frames'), fps: 4 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'orphan',
    });
    const sub = await MqttCollector.connect(broker.url, 'moead/orphan/#');
    const child = spawnCli(['run', '--config', file]);
    try {
      await child.waitForLine("not a record of camera cam1's open event");
      await child.waitForLine('event old-cam-3 (peak 0.8125, 4 frames, last seen 2026-01-01T00:00:02.000Z) of camera old-cam, which the config no longer has');
      await sub.waitFor('moead/orphan/cam1/score', { timeoutMs: 30_000 });
      child.signal('SIGTERM');
      assert.equal((await child.waitForExit(15_000)).code, 0, child.output());
      assert.deepEqual(await readdir(scratch.file('state', 'events')), [], 'both files are gone');
      assert.equal(sub.on('moead/orphan/old-cam/event').length, 0, 'nothing is published for a camera that is gone');
      assert.equal(child.output().split("not a record of camera cam1's open event").length - 1, 1, 'said once');
    } finally {
      await child.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

test('the temp copies that saves of the seq file, the open-event file and the config file leave when the daemon is killed between writing and renaming them are deleted at the next start', async () => {
  const scratch = await tempDir();
  try {
    const state = scratch.file('state');
    const file = await writeOneCameraConfig(scratch.file('temps.yaml'), {
      stateDir: state,
      camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'temps',
    });
    // What writeFileAtomic leaves when its process dies before the rename: `.<name>.<pid>.<random>.tmp`,
    // named with the id of a process that is gone now.
    const gone = spawnProcess('true', []);
    await gone.exited;
    const deadPid = String(gone.pid);
    const leftovers = [
      scratch.file('state', 'seq', `.cam1.json.${deadPid}.0a1b2c3d.tmp`),
      scratch.file('state', 'events', `.cam1.json.${deadPid}.4e5f6a7b.tmp`),
      scratch.file(`.temps.yaml.${deadPid}.8c9d0e1f.tmp`),
    ];
    // Not leftovers: a save by a process still running (this one), and a temp file of another file.
    const kept = [scratch.file(`.temps.yaml.${process.pid}.2a3b4c5d.tmp`), scratch.file(`.other.yaml.${deadPid}.6e7f8091.tmp`)];
    await mkdir(scratch.file('state', 'seq'), { recursive: true });
    await mkdir(scratch.file('state', 'events'), { recursive: true });
    for (const path of [...leftovers, ...kept]) await writeFile(path, '{"camera":"cam1"');
    const sub = await MqttCollector.connect(broker.url, 'moead/temps/#');
    const child = spawnCli(['run', '--config', file]);
    try {
      await sub.waitForCount('moead/temps/cam1/score', 2, { timeoutMs: 30_000 });
      child.signal('SIGTERM');
      assert.equal((await child.waitForExit(15_000)).code, 0, child.output());
      const temps = async (folder: string) => (await readdir(folder)).filter((n) => n.endsWith('.tmp')).sort();
      assert.deepEqual(await temps(scratch.file('state', 'seq')), []);
      assert.deepEqual(await temps(scratch.file('state', 'events')), []);
      assert.deepEqual(await temps(scratch.path), kept.map((p) => basename(p)).sort());
      for (const path of leftovers) assert.ok(child.output().includes(`${path}: deleted, the temp copy of a save that the last run did not finish`), child.output());
    } finally {
      await child.stop();
      await sub.close();
    }
  } finally {
    await scratch.remove();
  }
});

/**
 * A board without a battery-backed RTC: NTP steps the wall clock years back and forward while
 * the daemon scores (libfaketime, test/harness/wall-clock.ts). Messages keep the wall clock's
 * `ts`; seq, event ids and what the daemon measures (uptime) do not depend on it.
 */
test('a wall clock stepped ten years back, then twenty forward, while scoring: seq stays gap-free and in order, events pair up, ts follows the clock', async () => {
  const device = 'e2e-clock';
  const root = `moead/${device}`;
  const clock = await WallClock.create(dir.file('clock.time'));
  const config = await writeOneCameraConfig(dir.file('clock.yaml'), {
    stateDir: dir.file('clock-state'),
    camera: { name: 'cam1', path: dir.file('frames'), fps: 8 },
    model: (await testBundle(dir.path)).dir,
    broker: broker.url,
    device,
    extra: ['telemetry: {intervalS: 1}', `scoring: {threshold: ${threshold}, startFrames: 1, endFrames: 1}`],
  });
  const sub = await MqttCollector.connect(broker.url, `${root}/#`);
  const daemon = spawnCli(['run', '--config', config], { env: clock.env() });
  const days = 86_400_000;
  const scored = () => sub.on(`${root}/cam1/score`).map((m) => ScorePayloadSchema.parse(m.json()));
  try {
    /** Waits for a score and a telemetry message stamped `when`, then a few more scores. */
    const scoredWhen = async (what: string, when: (ts: number) => boolean) => {
      for (const topic of [`${root}/cam1/score`, `${root}/telemetry`]) {
        await sub.waitFor((m) => m.topic === topic && when(Date.parse((m.json() as { ts: string }).ts)), { timeoutMs: 30_000 }).catch((err: unknown) => {
          throw new Error(`nothing on ${topic} ${what}: ${String(err)}\n${daemon.output()}`);
        });
      }
      await sub.waitForCount(`${root}/cam1/score`, scored().length + 3, { timeoutMs: 30_000 });
    };
    await scoredWhen('on the real clock', (ts) => Math.abs(ts - Date.now()) < 1000 * days);
    await clock.set('-3650d');
    await scoredWhen('ten years back', (ts) => ts < Date.now() - 3000 * days);
    await clock.set('+3650d');
    await scoredWhen('ten years ahead', (ts) => ts > Date.now() + 3000 * days);
    daemon.signal('SIGTERM');
    assert.equal((await daemon.waitForExit(30_000)).code, 0, daemon.output());

    const all = scored();
    assert.deepEqual(all.map((s) => s.seq), [...Array(all.length).keys()], 'seq from 0 without gaps, in the order published, across both steps');
    assert.ok(all.every((s) => s.latency_ms < 60_000), `latency is monotonic time: ${Math.max(...all.map((s) => s.latency_ms))} ms`);
    const events = sub.on(`${root}/cam1/event`).map((m) => EventPayloadSchema.parse(m.json()));
    const starts = events.filter((e) => e.type === 'start').map((e) => e.id);
    assert.ok(starts.length >= 1, 'test setup: events started');
    assert.equal(new Set(starts).size, starts.length, 'event ids are not reused');
    assert.deepEqual(events.filter((e) => e.type === 'end').map((e) => e.id), starts, 'every start has its end, in order');
    const uptimes = sub.on(`${root}/telemetry`).map((m) => TelemetryPayloadSchema.parse(m.json()).uptime_s);
    assert.deepEqual(uptimes, [...uptimes].sort((a, b) => a - b), 'uptime never goes back with the wall clock');
  } finally {
    await daemon.stop();
    await sub.close();
  }
});
