import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { createFleetLink, CommandReplySchema, ScorePayloadSchema, type FleetLinkHandle } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, tempDir, type TempDir } from '../harness/index.js';
import { score, testConfig } from './helpers.js';

let broker: Mosquitto;
let state: TempDir;
let link: FleetLinkHandle;
let watch: MqttCollector;
let setThresholdCalls: unknown[] = [];
/** The `slow` handler's run: it keeps the command turn until it ends, past its timeout. */
let slowRun: Promise<void> | undefined;

before(async () => {
  broker = await Mosquitto.start();
  state = await tempDir('moead-link-');
  watch = await MqttCollector.connect(broker.url, ['moead/dev1/#', 'replies/#'], { protocolVersion: 5 });
  link = createFleetLink(testConfig(broker.url, { commands: { allow: ['status', 'set-threshold', 'slow'], maxPayloadBytes: 256, timeoutMs: 300 } }), { stateDir: state.path });
  link.onCommand('status', async () => ({ cameras: ['cam1'] }));
  link.onCommand('set-threshold', async (req) => {
    setThresholdCalls.push(req);
    return { threshold: req.threshold };
  });
  link.onCommand('reload-config', async () => 'reloaded');
  link.onCommand('slow', () => (slowRun = new Promise((resolve) => setTimeout(resolve, 600))));
  await link.start();
  await link.announceOnline();
});

after(async () => {
  await link?.stop();
  await watch?.close();
  await broker?.teardown();
  await state?.remove();
});

test('availability is retained online, scores and events arrive as the contract says', async () => {
  const online = await watch.waitFor((m) => m.topic === 'moead/dev1/availability' && m.text() === 'online');
  assert.equal(link.connected, true);
  const late = await MqttCollector.connect(broker.url, 'moead/dev1/availability');
  const retained = await late.waitFor('moead/dev1/availability');
  assert.equal(retained.retain, true, 'availability is retained for late subscribers');
  assert.equal(retained.text(), 'online');
  await late.close();

  const from = watch.mark;
  await link.publishScore('cam1', score(0, 1.5));
  await link.publishEvent('cam1', { id: 'ev-1', type: 'start', ts: new Date().toISOString(), peak_score: 1.5, frames: 3 });
  const s = await watch.waitFor('moead/dev1/cam1/score', { from });
  assert.equal(s.qos, 1);
  const body = ScorePayloadSchema.parse(s.json());
  assert.equal(body.seq, 0);
  assert.equal(body.anomalous, true);
  const e = await watch.waitFor('moead/dev1/cam1/event', { from });
  assert.deepEqual((e.json() as { type: string }).type, 'start');
  assert.ok(online.index < s.index);
});

test('camera status and snapshots are retained; telemetry carries the link figures', async () => {
  const from = watch.mark;
  await link.publishCameraStatus('cam1', { state: 'no_frames', message: 'no frame for 10 s' });
  await link.publishSnapshot('cam1', Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
  await link.publishTelemetry({ uptime_s: 12 });
  const st = await watch.waitFor('moead/dev1/cam1/status', { from });
  assert.equal((st.json() as { state: string }).state, 'no_frames');
  const snap = await watch.waitFor('moead/dev1/cam1/snapshot', { from });
  assert.deepEqual([...snap.payload], [0xff, 0xd8, 0xff, 0xd9]);
  const tel = (await watch.waitFor('moead/dev1/telemetry', { from })).json() as { uptime_s: number; link: { connected: boolean; queue_depth: number } };
  assert.equal(tel.uptime_s, 12);
  assert.equal(tel.link.connected, true);

  const late = await MqttCollector.connect(broker.url, ['moead/dev1/cam1/status', 'moead/dev1/cam1/snapshot']);
  await late.waitForCount((m) => m.retain, 2);
  await late.close();
});

test('BAD CALL - a payload that breaks the contract is refused with the field named', async () => {
  await assert.rejects(link.publishScore('cam1', { ...score(1), normalized: 2 }), /normalized/);
  await assert.rejects(link.publishScore('cam/1', score(1)), /camera name "cam\/1" cannot be used in a topic/);
});

async function command(name: string, payload: string | Buffer): Promise<{ id: string | null; ok: boolean; result?: unknown; error?: string }> {
  const from = watch.mark;
  await watch.publish(`moead/dev1/cmd/${name}`, payload);
  const reply = await watch.waitFor(`moead/dev1/cmd/${name}/reply`, { from });
  return CommandReplySchema.parse(reply.json());
}

test('commands are answered on …/reply with the request id', async () => {
  assert.deepEqual(await command('status', JSON.stringify({ id: 'a1' })), { id: 'a1', ok: true, result: { cameras: ['cam1'] } });
  assert.deepEqual(await command('set-threshold', JSON.stringify({ id: 'a2', threshold: 0.7, camera: 'cam1' })), { id: 'a2', ok: true, result: { threshold: 0.7 } });
});

test('EXPECTED FAILURE - bad command requests get an error reply and change nothing', async () => {
  setThresholdCalls = [];
  const notJson = await command('set-threshold', '{"id": "b1", threshold: }');
  assert.equal(notJson.ok, false);
  assert.equal(notJson.id, null);
  assert.match(notJson.error!, /not valid JSON/);

  const wrongType = await command('set-threshold', JSON.stringify({ id: 'b2', threshold: 'high' }));
  assert.equal(wrongType.id, 'b2');
  assert.match(wrongType.error!, /invalid set-threshold request: threshold:/);

  const negative = await command('set-threshold', JSON.stringify({ id: 'b3', threshold: -1 }));
  assert.match(negative.error!, /threshold > 0/);

  const extra = await command('set-threshold', JSON.stringify({ id: 'b4', threshold: 1, reboot: true }));
  assert.match(extra.error!, /reboot/);

  const noId = await command('status', JSON.stringify({}));
  assert.match(noId.error!, /id:/);

  const big = await command('set-threshold', JSON.stringify({ id: 'b5', threshold: 1, pad: 'x'.repeat(400) }));
  assert.match(big.error!, /over the 256-byte limit/);

  const unknown = await command('status2', JSON.stringify({ id: 'b6' }));
  assert.match(unknown.error!, /not allowed on this device/);

  const notAllowed = await command('reload-config', JSON.stringify({ id: 'b7' }));
  assert.match(notAllowed.error!, /"reload-config" is not allowed on this device \(mqtt.commands.allow/);

  const slow = await command('slow', JSON.stringify({ id: 'b8' }));
  assert.match(slow.error!, /did not finish within 300 ms/);
  await slowRun;

  assert.deepEqual(setThresholdCalls, [], 'no bad request reached the handler');
  assert.equal(link.connected, true);
});

test('an MQTT 5 request with a response topic is answered there with its correlation data', async () => {
  const from = watch.mark;
  const correlationData = Buffer.from('corr-42');
  await watch.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'c1' }), { qos: 1, properties: { responseTopic: 'replies/me', correlationData } });
  const reply = await watch.waitFor('replies/me', { from });
  assert.deepEqual(reply.json(), { id: 'c1', ok: true, result: { cameras: ['cam1'] } });
  assert.deepEqual(Buffer.from(reply.properties?.correlationData as Buffer), correlationData);
});

test('stop delivers what is queued, then availability goes offline', async () => {
  const s = await tempDir('moead-link-stop-');
  const l = createFleetLink(testConfig(broker.url, { device: 'dev2' }), { stateDir: s.path });
  const w = await MqttCollector.connect(broker.url, 'moead/dev2/#');
  try {
    await l.start();
    await l.announceOnline();
    for (let i = 0; i < 50; i++) await l.publishScore('cam1', score(i));
    await l.stop();
    const scores = await w.waitForCount('moead/dev2/cam1/score', 50);
    assert.equal(scores.length, 50);
    const last = await w.waitFor((m) => m.topic === 'moead/dev2/availability' && m.text() === 'offline');
    assert.ok(last.index > scores[49]!.index, 'offline comes after the last score');
    await assert.rejects(l.publishScore('cam1', score(50)), /stopped/);
  } finally {
    await w.close();
    await s.remove();
  }
});

test('with no broker URL an embedded broker on loopback is started and used', async () => {
  const s = await tempDir('moead-link-embedded-');
  const l = createFleetLink(testConfig(undefined, { embeddedPort: 0, device: 'emb' }), { stateDir: s.path });
  try {
    await l.start();
    assert.match(l.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const w = await MqttCollector.connect(l.url, 'moead/emb/#');
    await l.announceOnline();
    await l.publishScore('cam1', score(0));
    await w.waitFor('moead/emb/cam1/score');
    await w.close();
  } finally {
    await l.stop();
    await s.remove();
  }
  // The port is closed after stop.
  const probe = mqtt.connect(l.url, { reconnectPeriod: 0, connectTimeout: 1000 });
  const outcome = await new Promise<string>((resolve) => {
    probe.once('connect', () => resolve('connected'));
    probe.once('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
    probe.once('close', () => resolve('closed'));
  });
  probe.end(true);
  assert.notEqual(outcome, 'connected');
});
