/**
 * What the broker or a remote client can send that the link must survive without losing
 * anything else: a publish the broker refuses (MQTT 5 PUBACK reason code), a retained command
 * request, and a command topic whose name is too long to answer on.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { createFleetLink } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, tempDir } from '../harness/index.js';
import { closeLinkTest, readableByBroker, score, testConfig } from './helpers.js';

/** Polls `read` until it returns `want` (the acks race the subscriber's copy); fails after 10 s showing the last value. */
async function settlesTo<T>(read: () => T, want: T): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (JSON.stringify(read()) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(read(), want);
}

test('EXPECTED FAILURE - scores the broker refuses (not authorized) are dropped and counted, and the others still flow', async () => {
  const dir = await tempDir('moead-refuse-acl-');
  // Anonymous clients may publish only the `good` camera's topics, its availability and replies.
  writeFileSync(dir.file('acl'), ['topic readwrite moead/dev1/good/#', 'topic readwrite moead/dev1/availability', 'topic readwrite moead/dev1/cmd/#', ''].join('\n'));
  readableByBroker(dir.path);
  const broker = await Mosquitto.start({ extraConfig: [`acl_file ${dir.file('acl')}`] });
  const state = await tempDir('moead-refuse-');
  const logs: string[] = [];
  // Two in flight at most: three refused messages would have blocked the queue for good.
  const link = createFleetLink(testConfig(broker.url, { outbox: { inflight: 2 } }), { stateDir: state.path, log: (_level, line) => logs.push(line) });
  const watcher = await MqttCollector.connect(broker.url, 'moead/dev1/good/score');
  try {
    await link.start();
    for (let i = 0; i < 3; i++) await link.publishScore('bad', score(i));
    for (let i = 0; i < 5; i++) await link.publishScore('good', score(i));
    const got = await watcher.waitForCount('moead/dev1/good/score', 5);
    assert.deepEqual(got.map((m) => (m.json() as { seq: number }).seq), [0, 1, 2, 3, 4]);
    await settlesTo(() => ({ depth: link.stats().queue_depth, refused: link.stats().queue_refused }), { depth: 0, refused: 3 });
    assert.equal(logs.filter((l) => l.includes('the broker refused the score on moead/dev1/bad/score (reason code 0x87')).length, 3, logs.join('\n'));
  } finally {
    await closeLinkTest({ link, watcher, broker, state });
    await dir.remove();
  }
});

test('EXPECTED FAILURE - a retained command request is refused, not run on every connect; an unanswerable command name is ignored', async () => {
  // Persistent: the retained request and the watcher's session (its queued replies) outlive the restart.
  const broker = await Mosquitto.start({ extraConfig: ['persistence true'] });
  const state = await tempDir('moead-retained-cmd-');
  const logs: string[] = [];
  const watcher = await MqttCollector.connect(broker.url, 'moead/dev1/cmd/+/reply', { clean: false, clientId: 'retained-cmd-watcher' });
  let restarts = 0;
  const config = testConfig(broker.url);
  const deps = { stateDir: state.path, log: (_level: string, line: string) => logs.push(line) };
  const link = createFleetLink(config, deps);
  link.onCommand('restart-camera', async () => ++restarts);
  link.onCommand('status', async () => 'ok');
  try {
    await watcher.publish('moead/dev1/cmd/restart-camera', JSON.stringify({ id: 'r1', camera: 'cam1' }), { qos: 1, retain: true });
    await link.start();
    const refused = await watcher.waitFor('moead/dev1/cmd/restart-camera/reply');
    assert.match(JSON.stringify(refused.json()), /retained requests are refused: a retained restart-camera would run again on every reconnect/);

    // A name over the 128 characters of a topic level has no reply topic: logged, and the link lives on.
    await watcher.publish(`moead/dev1/cmd/${'x'.repeat(129)}`, JSON.stringify({ id: 'long' }), { qos: 1 });
    const from = watcher.mark;
    await watcher.publish('moead/dev1/cmd/status', JSON.stringify({ id: 's1' }), { qos: 1 });
    assert.deepEqual((await watcher.waitFor('moead/dev1/cmd/status/reply', { from })).json(), { id: 's1', ok: true, result: 'ok' });
    assert.ok(logs.some((l) => l.startsWith(`mqtt: ignored a message on moead/dev1/cmd/${'x'.repeat(129)}`)), logs.join('\n'));

    // A live (not retained) request still runs; a reconnect does not replay the retained one.
    await watcher.publish('moead/dev1/cmd/restart-camera', JSON.stringify({ id: 'r2', camera: 'cam1' }), { qos: 1 });
    await watcher.waitFor((m) => m.topic === 'moead/dev1/cmd/restart-camera/reply' && (m.json() as { id: unknown }).id === 'r2');
    await broker.restart();
    await watcher.waitForCount('moead/dev1/cmd/restart-camera/reply', 3, { timeoutMs: 15_000 });
    assert.equal(restarts, 1, 'only the live request ran');
    assert.equal(link.stats().command_errors, 2, 'the retained request was refused at the first connect and again after the restart');
  } finally {
    await watcher.publish('moead/dev1/cmd/restart-camera', '', { qos: 1, retain: true }).catch(() => undefined);
    await closeLinkTest({ link, watcher, broker, state });
  }
});
