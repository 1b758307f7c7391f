/**
 * Over-the-air model updates end to end: `moead-edge run` as a child process, a real
 * Mosquitto, and bundles served by a real HTTP server on loopback. A signed update switches
 * the scores to the new model without a gap in seq; tampered, unsigned, truncated and
 * misbehaving updates are refused and the running model stays; bad health on probation,
 * or a crash during it, returns to the model before.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManifestSchema, type Manifest } from '../../src/bundle/manifest.js';
import { frameFromFile, openDetector } from '../../src/inference/index.js';
import type { Detector, PreparedFrame } from '../../src/inference/detector.js';
import { OtaStatusPayloadSchema, ScorePayloadSchema, type OtaStatusPayload } from '../../src/mqtt/topics.js';
import { OtaConfigSchema } from '../../src/ota/config.js';
import { compareVersions } from '../../src/ota/version.js';
import { LiveDetector } from '../../src/inference/live-detector.js';
import { ModelStore } from '../../src/ota/model-store.js';
import { ModelUpdater, type ModelUpdaterDeps, type OtaStatus, type UpdateRequest } from '../../src/ota/updater.js';
import { generateSigningKey, signManifest } from '../../src/ota/signature.js';
import { createLogger } from '../../src/util/log.js';
import { FileServer, Mosquitto, withSmallDisk, MqttCollector, spawnCli, tempDir, WallClock, type ChildHandle, type ReceivedMessage, type TempDir } from '../harness/index.js';
import { writeSyntheticBundle } from '../inference/synthetic-bundle.js';
import { SHIPPED_BUNDLE, testFrames, writeOneCameraConfig } from '../daemon/fixtures.js';

const fleetKey = generateSigningKey();
const strangerKey = generateSigningKey();
let broker: Mosquitto;
let dir: TempDir;
let server: FileServer;
let shipped: Manifest;
/** One of the camera frames, for scoring on a model in process. */
let aFrame: () => ReturnType<typeof frameFromFile>;
const shippedPresent = existsSync(join(SHIPPED_BUNDLE, 'manifest.json'));

before(async () => {
  dir = await tempDir();
  broker = await Mosquitto.start();
  server = await FileServer.start(dir.file('srv'));
  const frames = await testFrames(dir.file('frames'), {}, 4);
  aFrame = () => frameFromFile(dir.file('frames', frames[0] ?? ''));
  if (shippedPresent) shipped = ManifestSchema.parse(JSON.parse(await readFile(join(SHIPPED_BUNDLE, 'manifest.json'), 'utf8')));
  // The updates below are 9.x bundles, newer than the shipped one until its major reaches 9.
  if (shippedPresent) assert.ok(compareVersions(shipped.version, '9.0.0') < 0, `the shipped bundle is ${shipped.version}; these tests need it below 9.0.0`);
});
after(async () => {
  await server?.close();
  await broker?.teardown();
  await dir?.remove();
});

/**
 * Puts a bundle on the server under `name`: the files of `from`'s manifest, the manifest
 * changed by `edit`, signed by `key` (or not signed). Returns its URL.
 */
async function serveBundle(name: string, o: { from?: string; edit?: (m: Manifest) => void; key?: string | null; afterSigning?: (folder: string) => Promise<void> } = {}): Promise<string> {
  const from = o.from ?? SHIPPED_BUNDLE;
  const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(from, 'manifest.json'), 'utf8')));
  const folder = dir.file('srv', name);
  for (const file of [manifest.model.file, ...manifest.reference_frames.map((r) => r.file)]) {
    await mkdir(dirname(join(folder, file)), { recursive: true });
    await copyFile(join(from, file), join(folder, file));
  }
  o.edit?.(manifest);
  const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(join(folder, 'manifest.json'), bytes);
  if (o.key !== null) await writeFile(join(folder, 'manifest.sig'), JSON.stringify(signManifest(bytes, o.key ?? fleetKey.privatePem)));
  await o.afterSigning?.(folder);
  return server.url(`${name}/`);
}

const bump = (version: string) => (m: Manifest) => {
  m.version = version;
};

interface Running {
  daemon: ChildHandle;
  mqtt: MqttCollector;
  root: string;
  config: string;
}

async function startDaemon(device: string, o: { probationS: number; inference?: string; mqtt?: string; ota?: string; keep?: Running; env?: Record<string, string> } = { probationS: 1 }): Promise<Running> {
  const config = await writeOneCameraConfig(dir.file(`${device}.yaml`), {
    stateDir: dir.file(`${device}-state`),
    camera: { name: 'cam', path: dir.file('frames'), fps: 10 },
    model: SHIPPED_BUNDLE,
    ...(o.inference ? { inference: o.inference } : {}),
    ...(o.mqtt ? { mqtt: o.mqtt } : {}),
    broker: broker.url,
    device,
    extra: [`ota: {trustedKeys: ["${fleetKey.publicKey}"], probationS: ${o.probationS}${o.ota ? `, ${o.ota}` : ''}}`],
  });
  const root = `moead/${device}`;
  const mqtt = o.keep?.mqtt ?? (await MqttCollector.connect(broker.url, [`${root}/ota`, `${root}/cam/score`, `${root}/cmd/+/reply`, `homeassistant/sensor/${device}/#`]));
  const from = mqtt.mark;
  const daemon = spawnCli(['run', '--config', config], o.env ? { env: o.env } : {});
  await mqtt.waitFor((m) => m.topic === `${root}/ota` && !m.retain, { from, timeoutMs: 30_000 }).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${daemon.output()}`);
  });
  return { daemon, mqtt, root, config };
}

async function stopDaemon(r: Running, closeMqtt = true): Promise<void> {
  r.daemon.signal('SIGTERM');
  assert.equal((await r.daemon.waitForExit(30_000)).code, 0, r.daemon.output());
  if (closeMqtt) await r.mqtt.close();
}

const ota = (m: ReceivedMessage): OtaStatusPayload => OtaStatusPayloadSchema.parse(m.json());

/**
 * A ModelUpdater in this process (no daemon, no broker) on its own state folder under the
 * test folder, the shipped bundle in force (`first`), the rest of the daemon stubbed healthy.
 * Not started: the caller's `report` may use what this returns.
 */
async function inProcessUpdater(
  stateDir: string,
  probationS: number,
  report: (s: OtaStatus) => void,
  extra: Pick<ModelUpdaterDeps, 'log' | 'confirmRetryMs'> = { log: createLogger('ota', 'error') },
): Promise<{ store: ModelStore; live: LiveDetector; first: Detector; updater: ModelUpdater }> {
  const { store } = await ModelStore.open(isAbsolute(stateDir) ? stateDir : dir.file(stateDir), SHIPPED_BUNDLE);
  const open = (bundleDir: string) => openDetector({ bundleDir, backend: { threads: 1 } });
  const first = await open(SHIPPED_BUNDLE);
  const live = new LiveDetector(first);
  const updater = new ModelUpdater({
    store,
    config: () => OtaConfigSchema.parse({ trustedKeys: [fleetKey.publicKey], probationS }),
    live,
    openDetector: open,
    thresholdProblems: () => [],
    health: () => undefined,
    report,
    ...extra,
  });
  return { store, live, first, updater };
}

/** Polls `done` until it holds; after 60 s gives up with `describe()` (a hang, not a slow machine). */
async function waitFor(done: () => boolean, describe: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs one update to its end in an in-process updater; returns its last status. */
async function updateInProcess(updater: ModelUpdater, seen: OtaStatus[], request: UpdateRequest): Promise<OtaStatus> {
  const from = seen.length;
  await updater.update(request);
  const ended = () => seen.slice(from).find((s) => s.request === request.id && ['active', 'failed', 'rolled_back'].includes(s.state));
  await waitFor(() => ended() !== undefined, () => JSON.stringify(seen.slice(from)));
  return ended() as OtaStatus;
}

/** Sends a command; resolves with its reply. */
async function command(r: Running, name: string, body: Record<string, unknown>): Promise<{ ok: boolean; result?: unknown; error?: string }> {
  const from = r.mqtt.mark;
  await r.mqtt.publish(`${r.root}/cmd/${name}`, body);
  const reply = await r.mqtt.waitFor((m) => m.topic === `${r.root}/cmd/${name}/reply` && (m.json() as { id: unknown }).id === body.id, { from, timeoutMs: 30_000 });
  return reply.json() as { ok: boolean; result?: unknown; error?: string };
}

/** The OTA states from `from` on until one of `until` (returned in order). */
async function otaUntil(r: Running, from: number, until: OtaStatusPayload['state'][], timeoutMs = 60_000): Promise<OtaStatusPayload[]> {
  await r.mqtt.waitFor((m) => m.topic === `${r.root}/ota` && until.includes(ota(m).state), { from, timeoutMs }).catch((err: unknown) => {
    throw new Error(`${String(err)}\nota: ${r.mqtt.on(`${r.root}/ota`).map((m) => m.text()).join('\n')}\n${r.daemon.output()}`);
  });
  return r.mqtt.on(`${r.root}/ota`).filter((m) => m.index >= from).map(ota);
}

async function nextScoreVersion(r: Running): Promise<string> {
  const from = r.mqtt.mark;
  const score = await r.mqtt.waitFor(`${r.root}/cam/score`, { from, timeoutMs: 20_000 });
  return ScorePayloadSchema.parse(score.json()).model.version;
}

describe('over-the-air model updates', { skip: shippedPresent ? false : 'the shipped bundle is not in this checkout' }, () => {
  test('a signed update is fetched (resuming a broken transfer), validated and switched with no gap in seq; it stays after a restart and rolls back on command', async () => {
    const url = await serveBundle('v950', { edit: bump('9.5.0') });
    server.faults.set('v950/model.onnx', { kind: 'truncate', afterBytes: 500_000, times: 1 });
    let r = await startDaemon('ota-good', { probationS: 1, mqtt: 'homeassistant: {enabled: true}' });
    /** The models Home Assistant's discovery named since `from`, one entry per discovery message. */
    const discovered = (from: number) =>
      r.mqtt.on('homeassistant/sensor/ota-good/cam_score/config').flatMap((m) => (m.index >= from && !m.retain ? [(m.json() as { device: { model: string } }).device.model] : []));
    try {
      assert.equal(await nextScoreVersion(r), shipped.version);
      const from = r.mqtt.mark;
      const reply = await command(r, 'update-model', { id: 'u1', url, version: '9.5.0' });
      assert.deepEqual(reply, { id: 'u1', ok: true, result: { accepted: true, url } });
      const states = await otaUntil(r, from, ['active', 'failed', 'rolled_back']);
      assert.deepEqual([...new Set(states.map((s) => s.state))], ['downloading', 'verifying', 'validating', 'switching', 'probation', 'active'], JSON.stringify(states));
      assert.ok(states.every((s) => s.request === 'u1'));
      const progress = states.flatMap((s) => (s.progress ? [s.progress] : [])).at(-1);
      assert.ok(progress && progress.bytes === progress.total && progress.total > shipped.model.bytes, JSON.stringify(progress));
      assert.deepEqual(states.at(-1)?.running, { name: shipped.name, version: '9.5.0' });
      assert.deepEqual(server.requests.filter((p) => p.startsWith('v950/model.onnx')), ['v950/model.onnx', 'v950/model.onnx bytes=500000-']);
      await r.daemon.waitForLine(/download retry 1\/5: http:\S+v950\/model\.onnx: transfer broke off after 500000 bytes/);

      while ((await nextScoreVersion(r)) !== '9.5.0');
      const scores = r.mqtt.on(`${r.root}/cam/score`).map((m) => ScorePayloadSchema.parse(m.json()));
      const seqs = scores.map((s) => s.seq);
      assert.deepEqual(seqs, seqs.map((_, i) => (seqs[0] ?? 0) + i), 'seq has no gap across the switch');
      assert.deepEqual([...new Set(scores.map((s) => s.model.version))], [shipped.version, '9.5.0']);
      // Announced again once, at the switch: not at each report of the update.
      await r.mqtt.waitFor((m) => m.topic === 'homeassistant/sensor/ota-good/cam_score/config' && m.index >= from, { timeoutMs: 10_000 });
      assert.deepEqual(discovered(from), [`${shipped.name} 9.5.0`]);

      await stopDaemon(r, false);
      r = await startDaemon('ota-good', { probationS: 1, mqtt: 'homeassistant: {enabled: true}', keep: r });
      await r.daemon.waitForLine(/model moead-mnv2-synth 9\.5\.0 from .*ota-good-state\/models\/moead-mnv2-synth-9\.5\.0-/);
      assert.equal(await nextScoreVersion(r), '9.5.0');

      const beforeRollback = r.mqtt.mark;
      const back = await command(r, 'rollback-model', { id: 'r1' });
      assert.deepEqual(back, { id: 'r1', ok: true, result: { from: { name: shipped.name, version: '9.5.0' }, to: { name: shipped.name, version: shipped.version } } });
      while ((await nextScoreVersion(r)) !== shipped.version);
      await r.mqtt.waitFor((m) => m.topic === 'homeassistant/sensor/ota-good/cam_score/config' && m.index >= beforeRollback, { timeoutMs: 10_000 });
      assert.deepEqual(discovered(beforeRollback), [`${shipped.name} ${shipped.version}`]);
      const again = await command(r, 'rollback-model', { id: 'r2' });
      assert.equal(again.ok, true, 'the rolled-back update stays installed: a second rollback goes forward again');
    } finally {
      await r.daemon.stop();
      await r.mqtt.close();
    }
  });

  describe('refused updates leave the running model in force', () => {
    let r: Running;
    before(async () => {
      r = await startDaemon('ota-bad', { probationS: 1, ota: 'downloadRetries: 1' });
    });
    after(async () => {
      await stopDaemon(r);
    });

    async function refused(id: string, url: string, message: RegExp, extra: Record<string, unknown> = {}): Promise<void> {
      const from = r.mqtt.mark;
      const reply = await command(r, 'update-model', { id, url, ...extra });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      const states = await otaUntil(r, from, ['failed', 'active', 'rolled_back']);
      const last = states.at(-1);
      assert.equal(last?.state, 'failed', JSON.stringify(states));
      assert.match(last?.message ?? '', message);
      assert.deepEqual(last?.running, { name: shipped.name, version: shipped.version });
      assert.equal(await nextScoreVersion(r), shipped.version);
      const models = await readdir(dir.file('ota-bad-state', 'models')).catch(() => []);
      assert.deepEqual(models.filter((n) => n !== 'state.json'), [], 'nothing of the refused update stays on disk');
    }

    test('signed by a key the device does not trust, not signed, or changed after signing', async () => {
      await refused('k1', await serveBundle('stranger', { edit: bump('9.6.0'), key: strangerKey.privatePem }), new RegExp(`manifest\\.sig: signed by key ${strangerKey.publicKey.replace(/[+/]/g, '\\$&')}, which is not in ota\\.trustedKeys`));
      await refused('k2', await serveBundle('unsigned', { edit: bump('9.6.0'), key: null }), /unsigned\/manifest\.sig: HTTP 404/);
      const altered = await serveBundle('altered', {
        edit: bump('9.6.0'),
        afterSigning: async (folder) => {
          const text = await readFile(join(folder, 'manifest.json'), 'utf8');
          await writeFile(join(folder, 'manifest.json'), text.replace('"9.6.0"', '"9.6.1"'));
        },
      });
      await refused('k3', altered, /does not match manifest\.json \(altered after signing/);
    });

    test('a model file that differs from the signed manifest, or arrives cut short', async () => {
      const tampered = await serveBundle('tampered', {
        edit: bump('9.6.0'),
        afterSigning: async (folder) => {
          const model = await readFile(join(folder, 'model.onnx'));
          model[model.length >> 1] = (model[model.length >> 1] ?? 0) ^ 0xff;
          await writeFile(join(folder, 'model.onnx'), model);
        },
      });
      await refused('t1', tampered, /tampered\/model\.onnx: sha256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64} \(corrupted or tampered\)/);
      const cut = await serveBundle('cut', { edit: bump('9.6.0') });
      server.faults.set('cut/model.onnx', { kind: 'truncate', afterBytes: 100_000 });
      await refused('t2', cut, /cut\/model\.onnx: (transfer broke off after \d+ bytes \(.*\)|\d+ bytes received, the manifest says \d+ \(truncated\?\)) \(gave up after 1 retries\)/);
      server.faults.set('cut/model.onnx', { kind: 'status', code: 500 });
      await refused('t3', cut, /cut\/model\.onnx: HTTP 500/);
      server.faults.delete('cut/model.onnx');
    });

    test('EXPECTED FAILURE - a page served with 200 in place of the manifest or the model is named for what it is, not taken for tampering or a cut transfer', async () => {
      const url = await serveBundle('paged', { edit: bump('9.6.0') });
      const page = { kind: 'status', code: 200, body: '<html><body>Please log in</body></html>', headers: { 'content-type': 'text/html' } } as const;
      server.faults.set('paged/manifest.json', page);
      await refused('p1', url, /paged\/manifest\.json: not JSON, so not a bundle's manifest \(39 bytes starting "<html><body>Please log in<\/body><\/html>"\)$/);
      server.faults.delete('paged/manifest.json');
      server.faults.set('paged/model.onnx', page);
      server.requests.length = 0;
      await refused('p2', url, new RegExp(`paged/model\\.onnx: the server's file is 39 bytes by its Content-Length, the manifest says ${shipped.model.bytes}$`));
      assert.equal(server.requests.filter((r) => r.startsWith('paged/model.onnx')).length, 1, 'not retried: the server has another file');
      server.faults.delete('paged/model.onnx');
    });

    test('a model that does not score its reference frames as its manifest says', async () => {
      const url = await serveBundle('misscored', {
        edit: (m) => {
          m.version = '9.6.0';
          const first = m.reference_frames[0];
          if (first) first.score *= 1.5;
        },
      });
      await refused('v1', url, /reference frames do not score as the manifest says: reference\/\S+ scored [\d.]+, the manifest says [\d.]+ \(±[\d.]+ allowed, ota\.referenceTolerance\)/);
    });

    test('another version than asked for, the model already in force, and an older version without "downgrade"', async () => {
      await refused('n1', await serveBundle('v970', { edit: bump('9.7.0') }), /version: the bundle at \S+v970\/ is 9\.7\.0, the request asked for 10\.0\.0/, { version: '10.0.0' });
      await refused('n2', await serveBundle('same', {}), new RegExp(`${shipped.name} ${shipped.version.replace(/\./g, '\\.')} is the model in force already`));
      await refused('n3', await serveBundle('v100', { edit: bump('1.0.0') }), /version: 1\.0\.0 is older than the running \d+\.\d+\.\d+; send "downgrade": true to install it/);
      // An error longer than the topic's message field still arrives, shortened.
      await refused('n4', server.url(`${'x'.repeat(2000)}/`), /^http:\/\/127\.0\.0\.1:\d+\/x{1900,}…$/);
    });

    test('malformed requests get an error reply that names the field, and change nothing', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ id: 'm1' }, /url: /],
        [{ id: 'm2', url: 'file:///etc/passwd' }, /url: expected http: or https:, got file:/],
        [{ id: 'm3', url: 'http://127.0.0.1:9/', extra: 1 }, /extra/],
        [{ id: 'm4', url: 42 }, /url: /],
        // A token in the query would be published in the reply and on …/ota, and never sent for the files.
        [{ id: 'm6', url: `${server.url('v950')}?token=s3cret` }, /^url: a query string \(\?…\) would be published in status messages/],
        [{ id: 'm7', url: `${server.url('v950/')}?token=s3cret` }, /^url: a query string/],
      ];
      const from = r.mqtt.mark;
      for (const [body, message] of cases) {
        const reply = await command(r, 'update-model', body);
        assert.equal(reply.ok, false, JSON.stringify(reply));
        assert.match(reply.error ?? '', message);
        assert.doesNotMatch(reply.error ?? '', /s3cret/);
      }
      assert.deepEqual(r.mqtt.on(`${r.root}/ota`).filter((m) => m.index >= from), [], 'no update started');
      const rollback = await command(r, 'rollback-model', { id: 'm5' });
      assert.deepEqual(rollback, { id: 'm5', ok: false, error: 'no previous model to return to' });
    });
  });

  test('a bundle from a server that compresses every file (gzip, br) installs: sizes and hashes are the decoded files\', even where the encoding is longer (PNG)', async () => {
    const url = await serveBundle('compressed', { edit: bump('9.6.5') });
    const files = [shipped.model.file, ...shipped.reference_frames.map((f) => f.file)];
    files.forEach((file, i) => server.faults.set(`compressed/${file}`, { kind: 'encoded', encoding: i % 2 === 0 ? 'gzip' : 'br' }));
    server.faults.set('compressed/manifest.json', { kind: 'encoded', encoding: 'gzip' });
    const seen: OtaStatus[] = [];
    const { updater, live } = await inProcessUpdater('compressed-state', 0, (s) => seen.push(s));
    try {
      updater.start(undefined);
      const last = await updateInProcess(updater, seen, { id: 'z1', url });
      assert.equal(last.state, 'active', JSON.stringify(seen));
      assert.equal(live.manifest.version, '9.6.5');
    } finally {
      for (const file of [...files, 'manifest.json']) server.faults.delete(`compressed/${file}`);
      await updater.stop();
      await live.close();
    }
  });

  test('a stop (SIGTERM) during a download cancels it: `failed` stays retained, the staging folder is gone, and the next start says which model runs', async () => {
    const url = await serveBundle('dripping', { edit: bump('9.6.6') });
    // Slow enough that the download is under way for the whole test.
    server.faults.set('dripping/model.onnx', { kind: 'drip', everyMs: 50 });
    const models = dir.file('ota-stop-state', 'models');
    let r = await startDaemon('ota-stop', { probationS: 1 });
    try {
      let from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'd1', url })).ok, true);
      // Progress on the model: the manifest is read (target known) and its download under way.
      await r.mqtt.waitFor((m) => m.topic === `${r.root}/ota` && ota(m).progress !== undefined, { from, timeoutMs: 30_000 });
      const busy = await command(r, 'update-model', { id: 'd2', url });
      assert.match(busy.error ?? '', /update d1 is under way \(downloading\); wait for it to end/);
      assert.equal((await readdir(models)).filter((n) => n.startsWith('.staging-')).length, 1);
      await stopDaemon(r, false);
      const last = r.mqtt.on(`${r.root}/ota`).filter((m) => m.index >= from).map(ota).at(-1);
      assert.deepEqual({ state: last?.state, request: last?.request, message: last?.message }, { state: 'failed', request: 'd1', message: 'cancelled: the daemon is stopping' });
      assert.deepEqual(last?.running, { name: shipped.name, version: shipped.version });
      assert.deepEqual(await readdir(models), [], 'no staging folder, no state: nothing was installed');
      // What a subscriber arriving now is told: the update failed, not that it is downloading.
      const late = await MqttCollector.connect(broker.url, `${r.root}/ota`);
      try {
        const retained = await late.waitFor((m) => m.retain, { timeoutMs: 10_000 });
        assert.equal(ota(retained).state, 'failed');
      } finally {
        await late.close();
      }
      from = r.mqtt.mark;
      r = await startDaemon('ota-stop', { probationS: 1, keep: r });
      const started = (await otaUntil(r, from, ['active', 'failed', 'rolled_back'])).at(-1);
      assert.deepEqual({ state: started?.state, request: started?.request, running: started?.running }, { state: 'active', request: null, running: { name: shipped.name, version: shipped.version } });
      assert.equal(await nextScoreVersion(r), shipped.version);
    } finally {
      server.faults.delete('dripping/model.onnx');
      await stopDaemon(r);
    }
  });

  test('EXPECTED FAILURE - a daemon killed during a download reports that update failed at its next start, by its id, and deletes what it had fetched', async () => {
    const url = await serveBundle('killed', { edit: bump('9.6.7') });
    server.faults.set('killed/model.onnx', { kind: 'drip', everyMs: 50 });
    const models = dir.file('ota-killed-state', 'models');
    let r = await startDaemon('ota-killed', { probationS: 1 });
    try {
      let from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'k1', url })).ok, true);
      await r.mqtt.waitFor((m) => m.topic === `${r.root}/ota` && ota(m).progress !== undefined, { from, timeoutMs: 30_000 });
      // The cameras keep scoring on the model in force while the update downloads.
      assert.equal(await nextScoreVersion(r), shipped.version);
      r.daemon.signal('SIGKILL');
      await r.daemon.waitForExit(10_000);
      assert.ok((await readdir(models)).some((n) => n.startsWith('.staging-')));
      from = r.mqtt.mark;
      r = await startDaemon('ota-killed', { probationS: 1, keep: r });
      const started = (await otaUntil(r, from, ['active', 'failed', 'rolled_back'])).at(-1);
      assert.deepEqual({ state: started?.state, request: started?.request, running: started?.running }, { state: 'failed', request: 'k1', running: { name: shipped.name, version: shipped.version } });
      assert.match(started?.message ?? '', /^update k1 was under way, not yet switched, when the daemon last ended without stopping .*what it had downloaded is deleted: send it again$/);
      assert.deepEqual(await readdir(models), []);
      assert.equal(await nextScoreVersion(r), shipped.version);
    } finally {
      server.faults.delete('killed/model.onnx');
      await stopDaemon(r);
    }
  });

  test('EXPECTED FAILURE - an update whose mark (update.json) cannot be saved is refused in its reply, with nothing reported as downloading: accepted means a kill from then on is reported by its id', async () => {
    const url = await serveBundle('unmarked', { edit: bump('9.6.8') });
    const seen: OtaStatus[] = [];
    const { store, updater, live } = await inProcessUpdater('unmarked-state', 60, (s) => seen.push(s));
    try {
      updater.start(undefined);
      // A folder where the mark goes: it cannot be replaced, as a full or read-only disk would refuse it.
      const mark = join(store.dir, 'update.json');
      await mkdir(join(mark, 'blocked'), { recursive: true });
      await assert.rejects(async () => updater.update({ id: 'm1', url }), /^Error: update m1 not begun: .*update\.json: /);
      assert.deepEqual(seen.filter((s) => s.request === 'm1'), [], 'no step of an update that was not accepted');
      // Accepted once the mark is saved, so the next start can name it if the daemon dies now.
      await rm(mark, { recursive: true });
      assert.deepEqual(await updater.update({ id: 'm2', url }), { accepted: true, url });
      assert.deepEqual(JSON.parse(await readFile(mark, 'utf8')), { request: 'm2' });
      await waitFor(() => seen.some((s) => s.request === 'm2' && ['probation', 'failed'].includes(s.state)), () => JSON.stringify(seen));
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('bad health on probation returns to the model before', async () => {
    // A model that passes validation but answers in 0.3 s or more, past inference.stuckTimeoutS.
    const slow = dir.file('slow');
    await writeSyntheticBundle(slow, { kind: 'heavy', size: 64, grid: 4, runMs: 300 });
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(slow, 'manifest.json'), 'utf8')));
    const detector = await openDetector({ bundleDir: slow, backend: { threads: 1 } });
    const score = await detector
      .detect(await frameFromFile(join(slow, manifest.reference_frames[0]?.file ?? '')))
      .then((d) => d.score)
      .finally(() => detector.close());
    const url = await serveBundle('slow', {
      from: slow,
      edit: (m) => {
        m.reference_frames = [{ file: 'reference/frame-0.png', score, label: 'good' }];
        m.threshold = { ...m.threshold, value: score * 4 + 1, good_median: score };
      },
    });
    const r = await startDaemon('ota-sick', { probationS: 30, inference: 'stuckTimeoutS: 0.1' });
    try {
      const from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 's1', url })).ok, true);
      const states = await otaUntil(r, from, ['rolled_back', 'active', 'failed']);
      const last = states.at(-1);
      assert.equal(last?.state, 'rolled_back', JSON.stringify(states));
      assert.match(last?.message ?? '', /bad health on probation: inference stuck for camera cam/);
      assert.deepEqual(last?.target, { name: manifest.name, version: manifest.version });
      while ((await nextScoreVersion(r)) !== shipped.version);
    } finally {
      await stopDaemon(r);
    }
  });

  test("the updater names the threads of the models it holds open (the candidate, then the one before), so that they keep the model's priority", async () => {
    const url = await serveBundle('v990', { edit: bump('9.9.0') });
    const seen: Array<{ state: OtaStatus['state']; spared: number[]; inForce: readonly number[] }> = [];
    const { updater, live, first } = await inProcessUpdater('in-process-state', 60, (s) => seen.push({ state: s.state, spared: updater.inferenceThreadIds(), inForce: live.inferenceThreadIds() ?? [] }));
    try {
      updater.start(undefined);
      await updater.update({ id: 'p1', url });
      await waitFor(() => seen.some((s) => s.state === 'probation' || s.state === 'failed'), () => JSON.stringify(seen));
      const at = (state: OtaStatus['state']) => seen.find((s) => s.state === state);
      const firstThreads = first.inferenceThreadIds() ?? [];
      assert.ok(firstThreads.length > 0, 'test setup: the backend names its threads');
      assert.deepEqual(at('downloading')?.spared, [], 'nothing held open before the candidate opens');
      const switching = at('switching');
      assert.ok(switching && switching.spared.length > 0, JSON.stringify(seen));
      assert.deepEqual(switching.inForce, firstThreads, 'the candidate is not in force yet');
      const probation = at('probation');
      assert.deepEqual(probation?.inForce, switching.spared, 'the candidate validated is the model now in force');
      assert.deepEqual(probation?.spared, firstThreads, 'the model before stays open, and spared, through probation');
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('a refused update leaves the folder a rollback returns to as it was, even for the same name, version and model', async () => {
    const seen: OtaStatus[] = [];
    const { updater, live } = await inProcessUpdater('same-model-state', 0, (s) => seen.push(s));
    try {
      updater.start(undefined);
      assert.equal((await updateInProcess(updater, seen, { id: 'a', url: await serveBundle('v920', { edit: bump('9.2.0') }) })).state, 'active');
      const good = live.manifest;
      assert.equal((await updateInProcess(updater, seen, { id: 'b', url: await serveBundle('v910', { edit: bump('9.1.0') }), downgrade: true })).state, 'active');
      // 9.2.0 again, the same model under a manifest whose first reference score validation refuses.
      const misscored = await serveBundle('v920-misscored', {
        edit: (m) => {
          m.version = '9.2.0';
          const first = m.reference_frames[0];
          if (first) first.score *= 1.5;
        },
      });
      const refused = await updateInProcess(updater, seen, { id: 'c', url: misscored });
      assert.equal(refused.state, 'failed', JSON.stringify(refused));
      assert.match(refused.message ?? '', /reference frames do not score as the manifest says/);
      assert.deepEqual((await updater.rollBack('rb')).to, { name: shipped.name, version: '9.2.0' });
      assert.deepEqual(live.manifest, good, 'the rollback puts the 9.2.0 that passed validation in force, not the refused one');
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('each update deletes the bundles the state no longer refers to: only the model in force and the previous one stay', async () => {
    const seen: OtaStatus[] = [];
    const { store, updater, live } = await inProcessUpdater('prune-state', 0, (s) => seen.push(s));
    try {
      updater.start(undefined);
      for (const version of ['9.1.0', '9.2.0', '9.3.0']) {
        const last = await updateInProcess(updater, seen, { id: version, url: await serveBundle(`prune-${version}`, { edit: bump(version) }) });
        assert.equal(last.state, 'active', JSON.stringify(last));
        // The shipped bundle, previous after the first update, lives outside the store.
        const expected = [store.active, store.previous].filter((p): p is string => p !== null && dirname(p) === store.dir).map((p) => basename(p));
        assert.deepEqual((await readdir(store.dir)).sort(), ['state.json', ...expected].sort(), `after ${version}`);
      }
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('stop() waits for a rollback under way, closes no model it puts in force, and refuses updates and rollbacks after it', async () => {
    const url = await serveBundle('v930', { edit: bump('9.3.0') });
    const seen: OtaStatus[] = [];
    const { updater, live } = await inProcessUpdater('stop-rollback-state', 60, (s) => seen.push(s));
    try {
      updater.start(undefined);
      await updater.update({ id: 'r1', url });
      await waitFor(() => seen.some((s) => s.state === 'probation' || s.state === 'failed'), () => JSON.stringify(seen));
      let rolledBack = false;
      const rollback = updater.rollBack('rb').then(() => {
        rolledBack = true;
      });
      assert.equal(updater.probationOrRollback(), true, 'a rollback under way answers for the model: no reopen beside it');
      // As the daemon's stop does when a SIGTERM follows the rollback-model command.
      await updater.stop();
      assert.ok(rolledBack, 'stop() returned before the rollback ended');
      await rollback;
      assert.equal(live.manifest.version, shipped.version);
      // The model before, kept open through probation, is in force again: stop() must not have closed it.
      assert.equal((await live.infer(await live.prepare(await aFrame()))).manifest.version, shipped.version);
      await assert.rejects(updater.rollBack('late'), /the model updater is stopped/);
      await assert.rejects(updater.update({ id: 'late', url }), /the model updater is stopped/);
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('a rollback asked for while the end of probation is being saved is refused: the model in force stays open and saved', async () => {
    const url = await serveBundle('v940', { edit: bump('9.4.0') });
    const seen: OtaStatus[] = [];
    const { store, updater, live } = await inProcessUpdater('confirm-rollback-state', 1, (s) => seen.push(s));
    let during: Promise<unknown> | undefined;
    const confirm = store.confirm.bind(store);
    store.confirm = () => {
      const saving = confirm();
      during = updater.rollBack('rb');
      // Checked below, once the update has ended.
      during.catch(() => undefined);
      return saving;
    };
    try {
      updater.start(undefined);
      assert.equal((await updateInProcess(updater, seen, { id: 'c1', url })).state, 'active', JSON.stringify(seen));
      assert.ok(during, 'test setup: the rollback came during the save');
      await assert.rejects(during, /update c1 is under way \(ending probation\)/);
      assert.equal((await live.infer(await live.prepare(await aFrame()))).manifest.version, '9.4.0');
      const reopened = await ModelStore.open(store.dir.replace(/\/models$/, ''), SHIPPED_BUNDLE);
      assert.deepEqual([reopened.store.active, reopened.store.probation], [store.active, null]);
      assert.equal(basename(store.active).startsWith(`${shipped.name}-9.4.0-`), true, store.active);
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  /**
   * An in-process update of the shipped bundle to `version` on probation for 1 s, whose end
   * cannot be saved: state.json is a folder (every save fails with EISDIR, as on a disk gone
   * bad) by the time the probation ends. Resolves once the updater has said so.
   */
  async function probationEndUnsaved(version: string, confirmRetryMs: number) {
    const url = await serveBundle(`unsaved-${version}`, { edit: bump(version) });
    const seen: OtaStatus[] = [];
    const lines: string[] = [];
    const stateDir = dir.file(`unsaved-${version}-state`);
    const { store, updater, live } = await inProcessUpdater(basename(stateDir), 1, (s) => seen.push(s), { log: createLogger('ota', 'warn', (l) => lines.push(l)), confirmRetryMs });
    const stateFile = join(store.dir, 'state.json');
    updater.start(undefined);
    await updater.update({ id: version, url });
    await waitFor(() => seen.some((s) => s.state === 'probation' || s.state === 'failed'), () => JSON.stringify(seen));
    const saved = await readFile(stateFile);
    await rm(stateFile);
    await mkdir(join(stateFile, 'blocked'), { recursive: true });
    await waitFor(() => lines.some((l) => l.includes('probation end not saved')), () => lines.join('\n'));
    /** The disk works again: state.json as it was before the probation ended. */
    const repair = async () => {
      await rm(stateFile, { recursive: true, force: true });
      await writeFile(stateFile, saved);
    };
    return { url, seen, stateDir, updater, live, repair };
  }

  test('a probation whose end cannot be saved goes on, still answering for the model, and ends once saving works', async () => {
    const { url, seen, stateDir, updater, live, repair } = await probationEndUnsaved('9.4.5', 500);
    try {
      assert.equal(updater.status().state, 'probation', JSON.stringify(updater.status()));
      assert.match(updater.status().message ?? '', /passed 1 s of probation, but its end was not saved \(\S+\/models\/state\.json: EISDIR.*\); still watching, saving again in 0\.5 s/);
      assert.equal(updater.probationOrRollback(), true, 'the reopener must leave the model to the probation');
      await assert.rejects(updater.update({ id: 'u2', url }), /is on probation/);
      assert.ok(!seen.some((s) => s.state === 'active' && s.request === '9.4.5'), 'not active before its end is saved');
      // The next try saves it, and the model before is closed.
      await repair();
      await waitFor(() => seen.some((s) => s.state === 'active' && s.request === '9.4.5'), () => JSON.stringify(seen.slice(-3)));
      assert.equal(updater.probationOrRollback(), false);
      const reopened = await ModelStore.open(stateDir, SHIPPED_BUNDLE);
      assert.equal(reopened.store.probation, null, 'saved: the next start does not take it for a model that died on probation');
      assert.equal(reopened.recovery, undefined);
      assert.equal(live.manifest.version, '9.4.5');
    } finally {
      await repair();
      await updater.stop();
      await live.close();
    }
  });

  test('a stop while the end of probation cannot be saved leaves it to resume, not to roll back', async () => {
    const { stateDir, updater, live, repair } = await probationEndUnsaved('9.4.6', 60_000);
    try {
      // The disk works again just as the daemon stops (SIGTERM before the next try).
      await repair();
      await updater.stop();
      const { recovery } = await ModelStore.open(stateDir, SHIPPED_BUNDLE);
      assert.equal(recovery?.kind, 'probation_resumed', JSON.stringify(recovery));
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('EXPECTED FAILURE - a rollback-model that cannot be saved either is refused, and the probation goes on rather than being dropped', async () => {
    const { stateDir, updater, live, repair } = await probationEndUnsaved('9.4.7', 60_000);
    try {
      await assert.rejects(updater.rollBack('rb-unsaved'), /EISDIR|state\.json/);
      assert.equal(live.manifest.version, '9.4.7', 'nothing was rolled back');
      assert.equal(updater.status().state, 'probation');
      assert.equal(updater.probationOrRollback(), true, 'still under watch: the reopener must leave the model to the probation');
      await assert.rejects(updater.update({ id: 'u3', url: 'http://127.0.0.1:1/x/' }), /is on probation/);
      // A stop finds the probation and leaves it to resume; dropped, the next start would roll back.
      await repair();
      await updater.stop();
      const { recovery } = await ModelStore.open(stateDir, SHIPPED_BUNDLE);
      assert.equal(recovery?.kind, 'probation_resumed', JSON.stringify(recovery));
    } finally {
      await repair();
      await updater.stop();
      await live.close();
    }
  });

  test('EXPECTED FAILURE - an update onto a full disk fails naming the file and why, leaves no staging behind, and the model in force stays', (t) =>
    withSmallDisk(t, async (disk) => {
      const url = await serveBundle('v947', { edit: bump('9.4.7') });
      const seen: OtaStatus[] = [];
      const { store, updater, live } = await inProcessUpdater(disk.file('state'), 60, (s) => seen.push(s));
      try {
        updater.start(undefined);
        // Room for the manifest and the signature, not for the model.
        disk.fill(64 << 10);
        const last = await updateInProcess(updater, seen, { id: 'full', url });
        t.diagnostic(`…/ota said: ${last.message}`);
        assert.equal(last.state, 'failed', JSON.stringify(last));
        // The local disk, not the network: said as such, and not retried (a retry would refill it).
        assert.match(last.message ?? '', /model\.onnx: could not be written to \S+\/\.staging-[^/]+\/model\.onnx after \d+ bytes \(ENOSPC: no space left on device, write\)$/);
        assert.deepEqual((await readdir(store.dir)).filter((n) => n.startsWith('.staging')), [], 'staging removed');
        assert.equal(live.manifest.version, shipped.version);
        assert.equal((await live.infer(await live.prepare(await aFrame()))).manifest.version, shipped.version);
      } finally {
        await updater.stop();
        await live.close();
      }
    }));

  test('probation counts the failures of frames the new model prepared, not of those the model before still ran', async () => {
    const url = await serveBundle('v950', { edit: bump('9.5.0') });
    const seen: OtaStatus[] = [];
    const { updater, live, first } = await inProcessUpdater('failures-state', 2, (s) => seen.push(s));
    try {
      updater.start(undefined);
      // Prepared by the model before, still in flight at the switch, failing after it (that model's worker is gone).
      const inFlight = await live.prepare(await aFrame());
      const ended = updateInProcess(updater, seen, { id: 'f1', url });
      await waitFor(() => seen.some((s) => s.state === 'probation' || s.state === 'failed'), () => JSON.stringify(seen));
      await first.close();
      await assert.rejects(live.infer(inFlight), /backend disposed/);
      assert.equal(live.failures(first), 1);
      const last = await ended;
      assert.equal(last.state, 'active', JSON.stringify(last));
      assert.equal(live.manifest.version, '9.5.0');
    } finally {
      await updater.stop();
      await live.close();
    }
  });

  test('frames abandoned at a stop make the paused probation roll back only when the new model prepared them', { timeout: 120_000 }, async () => {
    const url = await serveBundle('v960', { edit: bump('9.6.0') });
    for (const [whose, expected] of [
      ['the model before', 'probation_resumed'],
      ['the new model', 'rolled_back'],
    ] as const) {
      const stateDir = dir.file(`abandoned-${expected}-state`);
      const seen: OtaStatus[] = [];
      const { updater, live } = await inProcessUpdater(basename(stateDir), 60, (s) => seen.push(s));
      // Prepared and never run: in flight when the cameras stop, as a frame they abandoned.
      let abandoned: PreparedFrame | undefined;
      try {
        updater.start(undefined);
        if (whose === 'the model before') abandoned = await live.prepare(await aFrame());
        await updater.update({ id: 'h1', url });
        await waitFor(() => seen.some((s) => s.state === 'probation' || s.state === 'failed'), () => JSON.stringify(seen));
        assert.equal(seen.at(-1)?.state, 'probation', JSON.stringify(seen));
        if (whose === 'the new model') abandoned = await live.prepare(await aFrame());
        // The daemon's stop: the updater, then the cameras (which abandoned the frame), then this.
        await updater.stop();
        await updater.stoppedWithModelHung();
        const { recovery } = await ModelStore.open(stateDir, SHIPPED_BUNDLE);
        assert.equal(recovery?.kind, expected, `a frame of ${whose} abandoned: ${JSON.stringify(recovery)}`);
      } finally {
        if (abandoned) await live.infer(abandoned).catch(() => undefined);
        await updater.stop();
        await live.close();
      }
    }
  });

  test('a daemon killed during probation returns to the model before; one stopped cleanly resumes it', async () => {
    const url = await serveBundle('v980', { edit: bump('9.8.0') });
    let r = await startDaemon('ota-crash', { probationS: 120 });
    try {
      let from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'c1', url })).ok, true);
      await otaUntil(r, from, ['probation', 'failed']);
      r.daemon.signal('SIGKILL');
      await r.daemon.waitForExit(10_000);
      from = r.mqtt.mark;
      r = await startDaemon('ota-crash', { probationS: 120, keep: r });
      const restarted = (await otaUntil(r, from, ['rolled_back', 'active', 'probation'])).at(-1);
      assert.equal(restarted?.state, 'rolled_back', JSON.stringify(restarted));
      assert.equal(restarted?.request, 'c1');
      assert.match(restarted?.message ?? '', /the daemon stopped unexpectedly while .*moead-mnv2-synth-9\.8\.0-\w+ was on probation/);
      assert.equal(await nextScoreVersion(r), shipped.version);

      from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'c2', url })).ok, true);
      await otaUntil(r, from, ['probation', 'failed']);
      const busy = await command(r, 'update-model', { id: 'c3', url });
      assert.match(busy.error ?? '', /the model switched by update c2 is on probation for \d+ s more/);
      await stopDaemon(r, false);
      from = r.mqtt.mark;
      r = await startDaemon('ota-crash', { probationS: 120, keep: r });
      const resumed = (await otaUntil(r, from, ['probation', 'rolled_back', 'failed'])).at(-1);
      assert.equal(resumed?.state, 'probation', JSON.stringify(resumed));
      assert.deepEqual(resumed?.running, { name: shipped.name, version: '9.8.0' });
      assert.equal(await nextScoreVersion(r), '9.8.0');
    } finally {
      await r.daemon.stop();
      await r.mqtt.close();
    }
  });

  /**
   * NTP stepping the wall clock years forward (a board that booted at its last saved time) or
   * back (an admin's correction) during probation, for a `moead-edge run` whose clock
   * libfaketime moves (test/harness/wall-clock.ts). The probation's length is monotonic time.
   */
  test('a wall clock stepped ten years forward, then back, during probation leaves it as long as ota.probationS', async () => {
    const clock = await WallClock.create(dir.file('ota-clock-forward.time'));
    const url = await serveBundle('v990', { edit: bump('9.9.0') });
    const r = await startDaemon('ota-clock-forward', { probationS: 120, env: clock.env() });
    try {
      const from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'k1', url })).ok, true);
      assert.equal((await otaUntil(r, from, ['probation', 'failed'])).at(-1)?.state, 'probation');
      for (const [n, offset] of [[2, '+3650d'], [3, '-3650d']] as const) {
        await clock.set(offset);
        // Refused while on probation, naming what is left of it: at most the 120 s it began with.
        const busy = await command(r, 'update-model', { id: `k${n}`, url });
        const left = /the model switched by update k1 is on probation for (-?\d+) s more/.exec(busy.error ?? '');
        assert.ok(left, `after stepping the clock ${offset}: ${JSON.stringify(busy)}`);
        assert.ok(Number(left[1]) >= 1 && Number(left[1]) <= 120, `after stepping the clock ${offset}, ${left[1]} s of a 120 s probation are said to be left`);
      }
    } finally {
      await r.daemon.stop();
      await r.mqtt.close();
    }
  });

  test('a wall clock stepped ten years back during a download, and again during probation, holds back neither the progress reports nor the end of probation', async () => {
    const clock = await WallClock.create(dir.file('ota-clock-back.time'));
    const url = await serveBundle('v991', { edit: bump('9.9.1') });
    // The transfer breaks off and resumes a second later (ota.downloadRetries), so that the
    // step falls between two progress reports.
    server.faults.set('v991/model.onnx', { kind: 'truncate', afterBytes: 500_000, times: 1 });
    const r = await startDaemon('ota-clock-back', { probationS: 3, env: clock.env() });
    try {
      const from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'b1', url })).ok, true);
      await r.mqtt.waitFor((m) => m.topic === `${r.root}/ota` && ota(m).progress !== undefined, { from, timeoutMs: 30_000 });
      await clock.set('-3650d');
      const stepped = r.mqtt.mark;
      assert.equal((await otaUntil(r, from, ['probation', 'failed'])).at(-1)?.state, 'probation');
      const progress = r.mqtt.on(`${r.root}/ota`).filter((m) => m.index >= stepped).flatMap((m) => ota(m).progress ?? []);
      assert.ok(progress.some((p) => p.bytes < p.total), `no progress report between the step and the end of the download: ${JSON.stringify(progress)}`);

      await clock.set('-7300d');
      const end = (await otaUntil(r, from, ['active', 'rolled_back', 'failed'], 30_000)).at(-1);
      assert.equal(end?.state, 'active', JSON.stringify(end));
      assert.equal(end?.message, 'passed 3 s of probation');
      // Messages keep the wall clock's time, so this also shows the steps reached the daemon.
      assert.ok((end?.ts ?? '') < new Date(Date.now() - 7000 * 86_400_000).toISOString(), `ts ${end?.ts} is not twenty years back`);
    } finally {
      await r.daemon.stop();
      await r.mqtt.close();
    }
  });

  test('EXPECTED FAILURE - an https update server whose certificate is not valid yet by a clock ten years behind fails naming the clock and its reading', async () => {
    // A certificate made now, trusted by the daemon (NODE_EXTRA_CA_CERTS), whose clock is ten years back.
    const [key, cert] = [dir.file('ota-https.key'), dir.file('ota-https.crt')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const https = await FileServer.start(dir.file('srv'), { tls: { key: await readFile(key), cert: await readFile(cert) } });
    const clock = await WallClock.create(dir.file('ota-https.time'));
    await clock.set('-3650d');
    await serveBundle('v992', { edit: bump('9.9.2') });
    const r = await startDaemon('ota-https-clock', { probationS: 1, ota: 'downloadRetries: 0', env: { ...clock.env(), NODE_EXTRA_CA_CERTS: cert } });
    try {
      const from = r.mqtt.mark;
      assert.equal((await command(r, 'update-model', { id: 'h1', url: https.url('v992/') })).ok, true);
      const end = (await otaUntil(r, from, ['failed', 'probation'])).at(-1);
      assert.equal(end?.state, 'failed', JSON.stringify(end));
      assert.match(end?.message ?? '', /manifest\.json: the update server's certificate \(or its CA's\) is not valid yet by this device's clock, which reads 20\d\d-[-\d]+T[\d:.]+Z; the clock is likely behind .*set it \(timedatectl, NTP\)/);
      assert.ok(Number(/which reads (\d{4})/.exec(end?.message ?? '')?.[1]) < new Date().getUTCFullYear() - 9, `the reading shown is the device's clock: ${end?.message}`);
    } finally {
      await r.daemon.stop();
      await r.mqtt.close();
      await https.close();
    }
  });
});
