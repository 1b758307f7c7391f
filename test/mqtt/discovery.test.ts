/**
 * Home Assistant discovery and the Sparkplug B profile, against a real Mosquitto. Sparkplug
 * payloads are decoded with the `sparkplug-payload` package (Eclipse Tahu's protobuf
 * definitions), independent of our own encoder.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sparkplug from 'sparkplug-payload';
import { createFleetLink } from '../../src/mqtt/index.js';
import { decodePayload, encodePayload } from '../../src/mqtt/sparkplug-payload.js';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { VENV_PYTHON } from '../../src/toolchain/python-env.js';
import { Mosquitto, MqttCollector, tempDir } from '../harness/index.js';
import { closeLinkTest, score, testConfig } from './helpers.js';

const tahu = sparkplug.get('spBv1.0')!;
type TahuMetric = { name?: string; type: string; value: unknown };
const decode = (b: Buffer): { seq?: unknown; metrics?: TahuMetric[] } => tahu.decodePayload(new Uint8Array(b)) as { seq?: unknown; metrics?: TahuMetric[] };
/** Tahu returns 64-bit integers as Long objects. */
const asNumber = (v: unknown): number => (typeof v === 'object' && v !== null && 'low' in v ? Number((v as { low: number }).low) : Number(v));
const metric = (p: { metrics?: TahuMetric[] }, name: string): TahuMetric | undefined => p.metrics?.find((m) => m.name === name);

test('our Sparkplug encoder and decoder agree with Tahu\'s in both directions', () => {
  const ours = encodePayload({ timestamp: 1700000000000, seq: 7, metrics: [
    { name: 'score', type: 'Double', value: 0.125 },
    { name: 'bdSeq', type: 'UInt64', value: 255 },
    { name: 'anomalous', type: 'Boolean', value: true },
    { name: 'model/name', type: 'String', value: 'moead' },
    { name: 'offset', type: 'Int32', value: -5 },
    { name: 'missing', type: 'Double', value: null },
  ] });
  const theirs = decode(ours);
  assert.equal(asNumber(theirs.seq), 7);
  assert.equal(metric(theirs, 'score')?.value, 0.125);
  assert.equal(asNumber(metric(theirs, 'bdSeq')?.value), 255);
  assert.equal(metric(theirs, 'anomalous')?.value, true);
  assert.equal(metric(theirs, 'model/name')?.value, 'moead');
  assert.equal(metric(theirs, 'offset')?.value, -5);
  assert.equal(metric(theirs, 'missing')?.type, 'Double');

  const fromTahu = Buffer.from(tahu.encodePayload({ timestamp: 1, seq: 3, metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }, { name: 'n', type: 'Int64', value: 12345678901 }] }));
  const back = decodePayload(fromTahu);
  assert.equal(back.seq, 3);
  assert.deepEqual(back.metrics.map((m) => [m.name, m.type, m.value]), [['Node Control/Rebirth', 'Boolean', true], ['n', 'Int64', 12345678901]]);
  assert.throws(() => decodePayload(Buffer.from([0x12, 0x50, 0x01])), /Sparkplug payload: truncated/);
});

test('Sparkplug edge cases agree with Tahu: Float, metric timestamps, UInt32, negative Int32, no seq (NDEATH), is_null, and an unknown datatype is skipped', () => {
  const ours = encodePayload({ timestamp: 5, metrics: [
    { name: 'f', type: 'Float', value: 0.5, timestamp: 42 },
    { name: 'n', type: 'Double', value: null },
  ] });
  const theirs = decode(ours);
  assert.equal(theirs.seq ?? undefined, undefined, 'a payload without seq (NDEATH) carries none');
  assert.equal(metric(theirs, 'f')?.value, 0.5);
  const f = metric(theirs, 'f');
  assert.equal(asNumber(f && 'timestamp' in f ? f.timestamp : undefined), 42);
  // is_null (field 7, varint 1) is what tells a host "no value yet" rather than a zero.
  const nullMetric = encodePayload({ timestamp: 0, metrics: [{ name: 'n', type: 'Double', value: null }] });
  assert.ok(nullMetric.includes(Buffer.from([0x38, 0x01])), `is_null not set: ${nullMetric.toString('hex')}`);

  // UInt32 rides in long_value, where Tahu looks for it (in int_value it read null).
  const u32 = decode(encodePayload({ timestamp: 0, metrics: [{ name: 'u', type: 'UInt32', value: 123456 }] }));
  assert.equal(metric(u32, 'u')?.value, 123456);
  const u32FromTahu = decodePayload(Buffer.from(tahu.encodePayload({ timestamp: 0, metrics: [{ name: 'u', type: 'UInt32', value: 654321 }] })));
  assert.deepEqual(u32FromTahu.metrics[0], { name: 'u', type: 'UInt32', value: 654321 });

  const back = decodePayload(ours);
  assert.deepEqual(back.metrics[0], { name: 'f', type: 'Float', value: 0.5, timestamp: 42 });
  assert.equal(back.seq, undefined);

  // Int32 travels as a uint32: a negative one from Tahu comes back negative.
  const fromTahu = Buffer.from(tahu.encodePayload({ timestamp: 1, metrics: [
    { name: 'i', type: 'Int32', value: -5 },
    { name: 'ds', type: 'DataSet', value: { numOfColumns: 1, columns: ['a'], types: ['Int32'], rows: [[1]] } },
    { name: 'b', type: 'Boolean', value: false },
  ] }));
  assert.deepEqual(decodePayload(fromTahu).metrics.map((m) => [m.name, m.value]), [['i', -5], ['b', false]], 'the DataSet this node does not use is skipped');
  // Past 2^53 a number would lose its last digits: such values come back as bigint.
  const big = 2n ** 53n + 1n;
  assert.equal(decodePayload(encodePayload({ timestamp: 0, metrics: [{ name: 'u', type: 'UInt64', value: big }] })).metrics[0]?.value, big);
});

test('EXPECTED FAILURE - a malformed Sparkplug payload (from the broker, untrusted) is refused with a reason, not half-read', () => {
  // Field 2 (metric) claiming 3 bytes with 2 present: short by exactly one.
  assert.throws(() => decodePayload(Buffer.from([0x12, 0x03, 0x0a, 0x00])), /Sparkplug payload: truncated field/);
  // Wire types 3, 4 (groups), 6 and 7 do not occur in Sparkplug B.
  assert.throws(() => decodePayload(Buffer.from([0x0b])), /unsupported wire type 3/);
  // Ten continuation bytes: longer than any 64-bit varint.
  assert.throws(() => decodePayload(Buffer.from([0x08, ...Array<number>(10).fill(0xff), 0x01])), /varint too long/);
});

test('Sparkplug B: NBIRTH with bdSeq, DBIRTH per camera, DDATA per score, rebirth and commands on NCMD/DCMD, NDEATH', async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-spb-');
  const w = await MqttCollector.connect(broker.url, 'spBv1.0/plant1/#');
  const config = testConfig(broker.url, { sparkplug: { enabled: true, groupId: 'plant1' } });
  let model = { name: 'moead-mnv2-synth', version: '1.0.0' };
  const deps = { stateDir: state.path, cameras: ['cam1'], model: () => model };
  const link = createFleetLink(config, deps);
  const handled: Array<[string, Record<string, unknown>]> = [];
  for (const name of ['set-threshold', 'snapshot', 'reload-config']) {
    link.onCommand(name, async (request) => {
      handled.push([name, request]);
      return {};
    });
  }
  try {
    await link.start();
    const nbirth = decode((await w.waitFor('spBv1.0/plant1/NBIRTH/dev1')).payload);
    assert.equal(asNumber(nbirth.seq), 0, 'NBIRTH carries seq 0');
    const bdSeq = asNumber(metric(nbirth, 'bdSeq')?.value);
    assert.equal(bdSeq, 0, 'the first session is bdSeq 0');
    assert.equal(metric(nbirth, 'bdSeq')?.type, 'UInt64');
    assert.equal(metric(nbirth, 'Node Control/Rebirth')?.value, false);

    const dbirth = decode((await w.waitFor('spBv1.0/plant1/DBIRTH/dev1/cam1')).payload);
    assert.equal(asNumber(dbirth.seq), 1);
    assert.equal(metric(dbirth, 'model/version')?.value, '1.0.0');
    assert.equal(metric(dbirth, 'score')?.type, 'Double');

    assert.equal(metric(dbirth, 'regions')?.type, 'UInt32');
    assert.equal(metric(dbirth, 'regions')?.value, null, 'no score yet: no count either');

    const region = { x: 0.25, y: 0.5, w: 0.125, h: 0.0625, peak: 1.5, cells: 3 };
    await link.publishScore('cam1', { ...score(0, 1.25), regions: [region, { ...region, x: 0.75, peak: 1.3 }] });
    const ddata = decode((await w.waitFor('spBv1.0/plant1/DDATA/dev1/cam1')).payload);
    assert.equal(asNumber(ddata.seq), 2);
    assert.equal(metric(ddata, 'score')?.value, 1.25);
    assert.equal(metric(ddata, 'anomalous')?.value, true);
    // Scalars only: the region count and the strongest region, which comes first.
    assert.equal(metric(ddata, 'regions')?.value, 2);
    assert.deepEqual(['x', 'y', 'w', 'h', 'peak'].map((k) => metric(ddata, `region/${k}`)?.value), [0.25, 0.5, 0.125, 0.0625, 1.5]);
    const fromGood = w.mark;
    await link.publishScore('cam1', score(1, 0.5));
    const good = decode((await w.waitFor('spBv1.0/plant1/DDATA/dev1/cam1', { from: fromGood })).payload);
    assert.equal(metric(good, 'regions')?.value, 0, 'a frame under the threshold has none');
    assert.ok(['x', 'y', 'w', 'h', 'peak'].every((k) => metric(good, `region/${k}`)?.value === null), 'and no strongest region');
    assert.equal(metric(good, 'region/x')?.type, 'Double', 'null metrics keep their type');

    // A host asks for a rebirth: NBIRTH again (same bdSeq, seq 0) and the DBIRTH with the last score.
    const from = w.mark;
    await w.publish('spBv1.0/plant1/NCMD/dev1', Buffer.from(tahu.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })), { qos: 0 });
    const reborn = decode((await w.waitFor('spBv1.0/plant1/NBIRTH/dev1', { from })).payload);
    assert.equal(asNumber(metric(reborn, 'bdSeq')?.value), bdSeq);
    assert.equal(asNumber(reborn.seq), 0);
    const redbirth = decode((await w.waitFor('spBv1.0/plant1/DBIRTH/dev1/cam1', { from })).payload);
    assert.equal(metric(redbirth, 'score')?.value, 0.5);
    assert.equal(metric(redbirth, 'regions')?.value, 0);

    // Commands: DCMD threshold and snapshot for the camera, NCMD reload; each reaches the
    // daemon's handler through the same schemas as the JSON topics. A wrong type is refused.
    const cmd = (topic: string, metrics: Array<{ name: string; type: 'String' | 'Double' | 'Boolean'; value: string | number | boolean }>) =>
      w.publish(topic, Buffer.from(tahu.encodePayload({ timestamp: Date.now(), metrics })), { qos: 0 });
    await cmd('spBv1.0/plant1/DCMD/dev1/cam1', [{ name: 'threshold', type: 'String', value: 'high' }]);
    await cmd('spBv1.0/plant1/DCMD/dev1/cam1', [{ name: 'threshold', type: 'Double', value: 0.7 }]);
    await cmd('spBv1.0/plant1/DCMD/dev1/cam1', [{ name: 'Device Control/Snapshot', type: 'Boolean', value: true }]);
    await cmd('spBv1.0/plant1/NCMD/dev1', [{ name: 'Node Control/Reload Config', type: 'Boolean', value: true }]);
    const deadline = Date.now() + 5000;
    while (handled.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(handled.map(([name, request]) => [name, { ...request, id: typeof request.id }]), [
      ['set-threshold', { id: 'string', camera: 'cam1', threshold: 0.7 }],
      ['snapshot', { id: 'string', camera: 'cam1' }],
      ['reload-config', { id: 'string' }],
    ]);
    assert.equal(metric(redbirth, 'Device Control/Snapshot')?.value, false, 'DBIRTH declares the device commands');
    assert.equal(metric(reborn, 'Node Control/Reload Config')?.value, false, 'NBIRTH declares the node commands');

    // An update switched the model: the births say so at once.
    model = { name: 'moead-mnv2-synth', version: '2.0.0' };
    const fromUpdate = w.mark;
    await link.modelChanged();
    const afterUpdate = decode((await w.waitFor('spBv1.0/plant1/NBIRTH/dev1', { from: fromUpdate })).payload);
    assert.equal(metric(afterUpdate, 'Properties/model version')?.value, '2.0.0');
    assert.equal(asNumber(metric(afterUpdate, 'bdSeq')?.value), bdSeq);

    // A malformed NCMD changes nothing and the node goes on.
    await w.publish('spBv1.0/plant1/NCMD/dev1', Buffer.from([0xff, 0xff, 0xff]), { qos: 0 });

    await link.stop();
    const ndeath = decode((await w.waitFor('spBv1.0/plant1/NDEATH/dev1')).payload);
    assert.equal(asNumber(metric(ndeath, 'bdSeq')?.value), bdSeq, 'NDEATH matches its NBIRTH');

    // The next session (a restart) gets the next bdSeq, persisted in the state folder.
    const again = createFleetLink(config, deps);
    const from2 = w.mark;
    await again.start();
    const nbirth2 = decode((await w.waitFor('spBv1.0/plant1/NBIRTH/dev1', { from: from2 })).payload);
    assert.equal(asNumber(metric(nbirth2, 'bdSeq')?.value), bdSeq + 1);
    await again.stop();
  } finally {
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});

test('EXPECTED FAILURE - a Sparkplug command over mqtt.commands.maxPayloadBytes is refused on its raw size, before it is decoded', async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-spb-size-');
  const w = await MqttCollector.connect(broker.url, 'spBv1.0/plant3/#');
  const logs: string[] = [];
  const link = createFleetLink(testConfig(broker.url, { sparkplug: { enabled: true, groupId: 'plant3' }, commands: { maxPayloadBytes: 64 } }), { stateDir: state.path, cameras: ['cam1'], log: (_level, line) => logs.push(line) });
  const thresholds: unknown[] = [];
  link.onCommand('set-threshold', async (request) => {
    thresholds.push(request.threshold);
    return {};
  });
  const dcmd = (metrics: Array<{ name: string; type: 'Double' | 'Boolean'; value: number | boolean }>): Buffer =>
    Buffer.from(tahu.encodePayload({ timestamp: Date.now(), metrics }));
  try {
    await link.start();
    await w.waitFor('spBv1.0/plant3/DBIRTH/dev1/cam1');
    // Padded by an ignored metric: over the limit as received, yet its set-threshold request
    // as JSON would fit, so only a check on the raw bytes refuses it.
    const big = dcmd([{ name: 'threshold', type: 'Double', value: 0.7 }, { name: 'x'.repeat(100), type: 'Boolean', value: false }]);
    assert.ok(big.length > 64);
    await w.publish('spBv1.0/plant3/DCMD/dev1/cam1', big, { qos: 0 });
    const small = dcmd([{ name: 'threshold', type: 'Double', value: 0.5 }]);
    assert.ok(small.length <= 64);
    await w.publish('spBv1.0/plant3/DCMD/dev1/cam1', small, { qos: 0 });
    const deadline = Date.now() + 5000;
    while (thresholds.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(thresholds, [0.5], 'only the payload within the limit runs');
    assert.equal(logs.filter((l) => l.includes(`sparkplug: spBv1.0/plant3/DCMD/dev1/cam1: command refused, not decoded: request of ${big.length} bytes is over the 64-byte limit (mqtt.commands.maxPayloadBytes)`)).length, 1, logs.join('\n'));
    assert.ok(!logs.some((l) => l.includes('is not a command here')), 'the padding metric was never decoded');
    assert.equal(link.stats().command_errors, 1);
  } finally {
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});

test('Home Assistant discovery is retained, and re-sent when Home Assistant announces itself', async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-ha-');
  const w = await MqttCollector.connect(broker.url, 'homeassistant/#');
  let model = { name: 'line3', version: '1.0.0' };
  const link = createFleetLink(testConfig(broker.url, { homeassistant: { enabled: true } }), { stateDir: state.path, cameras: ['cam1'], softwareVersion: '0.1.0', model: () => model });
  try {
    await link.start();
    await link.announceOnline();
    const configs = await w.waitForCount('homeassistant/+/dev1/+/config', 4);
    const byTopic = new Map(configs.map((m) => [m.topic, m.json() as Record<string, unknown>]));
    const scoreSensor = byTopic.get('homeassistant/sensor/dev1/cam1_score/config');
    assert.ok(scoreSensor, `topics: ${[...byTopic.keys()].join(', ')}`);
    assert.equal(scoreSensor.state_topic, 'moead/dev1/cam1/score');
    assert.equal(scoreSensor.availability_topic, 'moead/dev1/availability');
    assert.equal(scoreSensor.unique_id, 'moead_dev1_cam1_score');
    assert.equal(byTopic.get('homeassistant/binary_sensor/dev1/cam1_anomalous/config')?.device_class, 'problem');
    assert.equal(byTopic.get('homeassistant/image/dev1/cam1_snapshot/config')?.image_topic, 'moead/dev1/cam1/snapshot');
    assert.ok(configs.every((m) => m.qos === 1));

    const late = await MqttCollector.connect(broker.url, 'homeassistant/+/dev1/+/config');
    assert.ok((await late.waitForCount((m) => m.retain, 4)).length === 4, 'discovery is retained');
    await late.close();

    const from = w.mark;
    await w.publish('homeassistant/status', 'online');
    await w.waitForCount((m) => m.topic.endsWith('/config'), 4, { from });

    // An update switched the model: the device's description follows.
    model = { name: 'line3', version: '2.0.0' };
    const fromUpdate = w.mark;
    await link.modelChanged();
    const redone = await w.waitFor('homeassistant/sensor/dev1/cam1_score/config', { from: fromUpdate });
    assert.equal((redone.json() as { device: { model: string } }).device.model, 'line3 2.0.0');

    // A camera first seen later gets its entities too.
    const from2 = w.mark;
    await link.publishScore('cam2', score(0));
    await w.waitFor('homeassistant/sensor/dev1/cam2_score/config', { from: from2 });
  } finally {
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});

test('Sparkplug B: while scores flow, no DDATA goes out before the session\'s NBIRTH and DBIRTH, across a rebirth and a broker restart', async () => {
  // Births and DDATA are QoS 0: the broker keeps them for the watcher's persistent session
  // only with queue_qos0_messages, so nothing sent while the watcher reconnects is missed.
  const broker = await Mosquitto.start({ extraConfig: ['persistence true', 'queue_qos0_messages true'] });
  const state = await tempDir('moead-spb-order-');
  const w = await MqttCollector.connect(broker.url, 'spBv1.0/plant2/#', { clean: false, clientId: 'spb-order-watcher' });
  const link = createFleetLink(testConfig(broker.url, { sparkplug: { enabled: true, groupId: 'plant2' } }), { stateDir: state.path, cameras: ['cam1'] });
  let flowing = true;
  let seq = 0;
  // Scores every 2 ms from before the first connect to the end: each birth happens mid-flow.
  const flow = (async () => {
    while (flowing) {
      await link.publishScore('cam1', score(seq++)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  try {
    await link.start();
    await w.waitFor('spBv1.0/plant2/DDATA/dev1/cam1');
    await w.publish('spBv1.0/plant2/NCMD/dev1', Buffer.from(tahu.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })), { qos: 0 });
    await w.waitForCount('spBv1.0/plant2/NBIRTH/dev1', 2);
    await broker.restart();
    await w.waitForCount('spBv1.0/plant2/NBIRTH/dev1', 3);
    const afterThird = w.on('spBv1.0/plant2/NBIRTH/dev1')[2]!.index;
    await w.waitFor('spBv1.0/plant2/DDATA/dev1/cam1', { from: afterThird });
  } finally {
    flowing = false;
    await flow;
    await closeLinkTest({ link, watcher: w, broker, state });
  }
  // Walk the node's messages in order: each NBIRTH starts at seq 0, the camera's DBIRTH comes
  // before its first DDATA, and seq counts on by one (mod 256) within a session.
  const problems: string[] = [];
  let expected: number | undefined;
  let deviceBorn = false;
  for (const m of w.messages.filter((x) => !x.topic.includes('/NDEATH/') && !x.topic.includes('/NCMD/'))) {
    const s = asNumber(decode(m.payload).seq);
    const kind = m.topic.split('/')[2];
    if (kind === 'NBIRTH') {
      if (s !== 0) problems.push(`NBIRTH #${m.index} has seq ${s}`);
      expected = 1;
      deviceBorn = false;
      continue;
    }
    if (expected === undefined) problems.push(`${kind} #${m.index} before any NBIRTH`);
    else if (s !== expected) problems.push(`${kind} #${m.index} has seq ${s}, expected ${expected}`);
    expected = (s + 1) % 256;
    if (kind === 'DBIRTH') deviceBorn = true;
    else if (kind === 'DDATA' && !deviceBorn) problems.push(`DDATA #${m.index} before the session's DBIRTH`);
  }
  assert.deepEqual(problems, []);
  assert.equal(w.on('spBv1.0/plant2/NBIRTH/dev1').length, 3);
});

/** What Home Assistant makes of `template` for one received message: Jinja2 (HA's engine) in the toolchain's Python. */
function renderAsHomeAssistant(template: string, payload: string): unknown {
  const script = 'import json, sys, jinja2\n' +
    'template, payload = json.load(sys.stdin)\n' +
    'print(jinja2.Environment().from_string(template).render(value=payload, value_json=json.loads(payload)))';
  const r = spawnSync(VENV_PYTHON, ['-c', script], { input: JSON.stringify([template, payload]), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('Home Assistant\'s anomaly sensor takes each score message\'s regions as its attributes', { skip: existsSync(VENV_PYTHON) ? false : `${VENV_PYTHON} does not exist (npm test creates it)` }, async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-ha-');
  const w = await MqttCollector.connect(broker.url, '#');
  const link = createFleetLink(testConfig(broker.url, { homeassistant: { enabled: true } }), { stateDir: state.path, cameras: ['cam1'], softwareVersion: '0.1.0' });
  try {
    await link.start();
    await link.announceOnline();
    const sensor = (await w.waitFor('homeassistant/binary_sensor/dev1/cam1_anomalous/config')).json() as Record<string, unknown>;
    assert.equal(sensor.json_attributes_topic, 'moead/dev1/cam1/score');
    const template = sensor.json_attributes_template;
    assert.equal(typeof template, 'string');

    const regions = [{ x: 0.25, y: 0.5, w: 0.125, h: 0.0625, peak: 1.5, cells: 3 }];
    await link.publishScore('cam1', { ...score(7, 1.25), regions });
    await link.publishScore('cam1', score(8, 0.5));
    const [anomalous, good] = await w.waitForCount('moead/dev1/cam1/score', 2);
    // The messages as the broker delivered them, rendered the way HA renders the template.
    assert.deepEqual(renderAsHomeAssistant(template as string, anomalous!.payload.toString()), { regions, seq: 7 });
    assert.deepEqual(renderAsHomeAssistant(template as string, good!.payload.toString()), { regions: [], seq: 8 });
  } finally {
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});
