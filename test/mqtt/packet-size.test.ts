/**
 * The MQTT 5 Maximum Packet Size the link declares, against a real Mosquitto: a command far
 * over it is dropped by the broker and never read into the daemon's memory, one merely over
 * mqtt.commands.maxPayloadBytes still gets its "over the limit" answer, and what the daemon
 * publishes is not bounded by it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createFleetLink, CommandReplySchema, type FleetLinkHandle } from '../../src/mqtt/index.js';
import { maxIncomingPacketBytes } from '../../src/mqtt/fleet-link.js';
import { encodePayload } from '../../src/mqtt/sparkplug-payload.js';
import { Mosquitto, MqttCollector, tempDir, type TempDir } from '../harness/index.js';
import { testConfig, until } from './helpers.js';

const LIMIT = 1024;
const BOUND = maxIncomingPacketBytes(LIMIT);
/** Far over the bound, well under Mosquitto's own 256 MB limit. */
const HUGE = 8 << 20;

let broker: Mosquitto;
let state: TempDir;
let link: FleetLinkHandle;
let watch: MqttCollector;
const logs: string[] = [];

before(async () => {
  broker = await Mosquitto.start();
  state = await tempDir('moead-packet-size-');
  // Only what the tests read: the watcher would otherwise get its own 8 MiB publishes back.
  watch = await MqttCollector.connect(broker.url, ['moead/dev1/cmd/+/reply', 'moead/dev1/cam1/snapshot', 'spBv1.0/pk/NBIRTH/dev1'], { protocolVersion: 5 });
  link = createFleetLink(testConfig(broker.url, { commands: { maxPayloadBytes: LIMIT }, sparkplug: { enabled: true, groupId: 'pk' } }), {
    stateDir: state.path, cameras: ['cam1'], log: (_level, line) => logs.push(line),
  });
  link.onCommand('status', async () => ({ cameras: ['cam1'] }));
  await link.start();
  await watch.waitFor('spBv1.0/pk/NBIRTH/dev1');
});

after(async () => {
  await link?.stop();
  await watch?.close();
  await broker?.teardown();
  await state?.remove();
});

test('the bound lets a request up to four times maxPayloadBytes through, with room for topic and properties', () => {
  assert.equal(BOUND, 4 * LIMIT + 65_536);
  assert.ok(HUGE > BOUND);
});

test('EXPECTED FAILURE - under MQTT 5 a command far over the declared Maximum Packet Size never reaches the daemon; the session stays up and answers the next one', async () => {
  const from = watch.mark;
  const errorsBefore = link.stats().command_errors;
  const huge = Buffer.alloc(HUGE, 'x');
  huge.write('{"id":"huge","pad":"');
  await watch.publish('moead/dev1/cmd/status', huge, { qos: 1 });
  // Mosquitto keeps one client's QoS 1 messages in order: had the big one been delivered, it came first.
  await watch.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'after' }), { qos: 1 });
  const reply = await watch.waitFor((m) => m.topic === 'moead/dev1/cmd/status/reply' && (m.json() as { id: unknown }).id === 'after', { from });
  assert.deepEqual(CommandReplySchema.parse(reply.json()), { id: 'after', ok: true, result: { cameras: ['cam1'] } });
  await sleep(300);
  const refusals = watch.on('moead/dev1/cmd/status/reply').filter((m) => m.index >= from && (m.json() as { ok: boolean }).ok === false);
  assert.deepEqual(refusals.map((m) => m.text()), [], 'the daemon never saw the oversized request');
  assert.deepEqual(logs.filter((l) => /over the \d+-byte limit/.test(l)), []);
  assert.equal(link.stats().command_errors, errorsBefore);
  assert.equal(link.connected, true);
  assert.equal(link.stats().reconnects, 0, 'the broker dropped the message, not the session');
});

test('EXPECTED FAILURE - a command just over maxPayloadBytes, under the bound, still gets the "over the limit" reply', async () => {
  for (const size of [LIMIT + 1, 3 * LIMIT]) {
    const from = watch.mark;
    await watch.publish('moead/dev1/cmd/status', Buffer.alloc(size, ' '), { qos: 1 });
    const reply = CommandReplySchema.parse((await watch.waitFor('moead/dev1/cmd/status/reply', { from })).json());
    assert.equal(reply.ok, false);
    assert.equal(reply.error, `request of ${size} bytes is over the ${LIMIT}-byte limit (mqtt.commands.maxPayloadBytes)`);
  }
  assert.equal(link.connected, true);
});

test('EXPECTED FAILURE - the Sparkplug session declares the bound too: a huge NCMD is dropped, a moderately oversized one is refused and logged', async () => {
  const ncmd = 'spBv1.0/pk/NCMD/dev1';
  await watch.publish(ncmd, Buffer.alloc(HUGE, 0xff), { qos: 1 });
  await watch.publish(ncmd, Buffer.alloc(2 * LIMIT, 0xff), { qos: 1 });
  await until(() => logs.some((l) => l.includes(`${ncmd}: command refused, not decoded`)), 10_000, `the refusal logged; log:\n${logs.join('\n')}`);
  // A rebirth after both shows the session still answers.
  const from = watch.mark;
  await watch.publish(ncmd, encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] }), { qos: 1 });
  await watch.waitFor('spBv1.0/pk/NBIRTH/dev1', { from });
  await sleep(300);
  assert.deepEqual(logs.filter((l) => l.includes(`${ncmd}: command refused`)), [
    `sparkplug: ${ncmd}: command refused, not decoded: request of ${2 * LIMIT} bytes is over the ${LIMIT}-byte limit (mqtt.commands.maxPayloadBytes)`,
  ]);
  assert.ok(!logs.some((l) => /^(mqtt|sparkplug): (lost|cannot connect)/.test(l)), logs.join('\n'));
});

test('the bound does not limit what the daemon publishes: a snapshot larger than it arrives whole', async () => {
  const jpeg = Buffer.alloc(4 * BOUND, 0xab);
  const from = watch.mark;
  await link.publishSnapshot('cam1', jpeg);
  const got = await watch.waitFor('moead/dev1/cam1/snapshot', { from });
  assert.equal(got.payload.length, jpeg.length);
  assert.equal(link.connected, true);
});
