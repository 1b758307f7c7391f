import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Backoff } from '../../src/mqtt/backoff.js';
import { createFleetLink } from '../../src/mqtt/index.js';
import { freePort, Mosquitto, MqttCollector, spawnProcess, tempDir, WallClock, type ChildHandle } from '../harness/index.js';
import { testConfig, until } from './helpers.js';

test('backoff: full jitter within a window that doubles up to the cap, reset starts over', () => {
  let r = 0.999999;
  const b = new Backoff(100, 1000, () => r);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [99, 199, 399, 799, 999, 999]);
  r = 0;
  assert.equal(b.next(), 0, 'the window starts at zero (full jitter)');
  b.reset();
  r = 0.5;
  assert.equal(b.next(), 50);
  assert.throws(() => new Backoff(100, 50), /0 < minMs <= maxMs/);
  // A zero window would retry in a tight loop for ever; a fixed window (min = max) is fine.
  assert.throws(() => new Backoff(0, 1000), /0 < minMs <= maxMs/);
  assert.equal(new Backoff(100, 100, () => 0.5).next(), 50);
});

test('backoff counts the attempts since the last reset (the log says how many refusals came before a success)', () => {
  const b = new Backoff(100, 1000, () => 0);
  assert.equal(b.attempts, 0);
  b.next();
  b.next();
  assert.equal(b.attempts, 2);
  b.reset();
  assert.equal(b.attempts, 0);
});

test('backoff spreads a fleet: 1000 devices do not all retry in the same 100 ms', () => {
  const delays = Array.from({ length: 1000 }, () => {
    const b = new Backoff(500, 60_000);
    for (let i = 0; i < 6; i++) b.next();
    return b.next();
  });
  const buckets = new Map<number, number>();
  for (const d of delays) buckets.set(Math.floor(d / 100), (buckets.get(Math.floor(d / 100)) ?? 0) + 1);
  assert.ok(Math.max(...buckets.values()) < 60, `largest 100 ms bucket holds ${Math.max(...buckets.values())} of 1000`);
});

test('after a broker restart (state lost): online, camera status and snapshot are re-published, commands answered again', async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-reconnect-');
  const link = createFleetLink(testConfig(broker.url), { stateDir: state.path });
  link.onCommand('status', async () => 'fine');
  let w: MqttCollector | undefined;
  try {
    await link.start();
    await link.announceOnline();
    await link.publishCameraStatus('cam1', { state: 'running' });
    await link.publishSnapshot('cam1', Buffer.from('jpeg-bytes'));
    // No persistence: the restarted broker has forgotten every retained message.
    await broker.kill();
    await until(() => !link.connected, 5000, 'the link to notice');
    await broker.restart();
    await until(() => link.connected, 10_000, 'the reconnect');
    w = await MqttCollector.connect(broker.url, 'moead/dev1/#');
    // `online` is re-published last; once it is seen, a newcomer must find all three retained.
    await w.waitFor((m) => m.topic === 'moead/dev1/availability' && m.text() === 'online');
    const late = await MqttCollector.connect(broker.url, 'moead/dev1/#');
    const retained = await late.waitForCount((m) => m.retain, 3);
    await late.close();
    const byTopic = new Map(retained.map((m) => [m.topic, m.text()]));
    assert.equal(byTopic.get('moead/dev1/availability'), 'online');
    assert.equal((JSON.parse(byTopic.get('moead/dev1/cam1/status') ?? '{}') as { state?: string }).state, 'running');
    assert.equal(byTopic.get('moead/dev1/cam1/snapshot'), 'jpeg-bytes');
    const from = w.mark;
    await w.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'r1' }));
    assert.deepEqual((await w.waitFor('moead/dev1/cmd/status/reply', { from })).json(), { id: 'r1', ok: true, result: 'fine' });
    assert.equal(link.stats().reconnects, 1);
  } finally {
    await link.stop();
    await w?.close();
    await broker.teardown();
    await state.remove();
  }
});

test('a command that finishes while the broker is away is answered after the reconnect', async () => {
  // Persistent: the watcher's session, and the reply queued for it, outlive the restart.
  const broker = await Mosquitto.start({ extraConfig: ['persistence true'] });
  const state = await tempDir('moead-held-reply-');
  const logs: string[] = [];
  const link = createFleetLink(testConfig(broker.url), { stateDir: state.path, log: (_level, line) => logs.push(line) });
  let started = false;
  let finish: () => void = () => undefined;
  link.onCommand('slow', async () => {
    started = true;
    await new Promise<void>((resolve) => {
      finish = resolve;
    });
    return 'done';
  });
  const w = await MqttCollector.connect(broker.url, 'moead/dev1/cmd/+/reply', { clean: false, clientId: 'held-reply-watcher' });
  try {
    await link.start();
    await w.publish('moead/dev1/cmd/slow', JSON.stringify({ id: 'h1' }));
    await until(() => started, 5000, 'the handler to start');
    await broker.stop();
    await until(() => !link.connected, 5000, 'the link to notice');
    finish();
    await until(() => logs.some((l) => l.includes('command slow finished while the link was down; its reply to moead/dev1/cmd/slow/reply is sent after the next connect')), 5000, `the held reply logged; log:\n${logs.join('\n')}`);
    await broker.restart();
    assert.deepEqual((await w.waitFor('moead/dev1/cmd/slow/reply', { timeoutMs: 10_000 })).json(), { id: 'h1', ok: true, result: 'done' });
  } finally {
    await link.stop();
    await w.close();
    await broker.teardown();
    await state.remove();
  }
});

test('credentials in mqtt.url never reach the log: connected, lost and cannot-connect lines show ***@', async () => {
  const broker = await Mosquitto.start();
  const state = await tempDir('moead-url-secret-');
  const logs: string[] = [];
  const url = broker.url.replace('mqtt://', 'mqtt://fleet:pw-in-url@');
  const link = createFleetLink(testConfig(url), { stateDir: state.path, log: (_level, line) => logs.push(line) });
  try {
    await link.start();
    await broker.kill();
    await until(() => logs.some((l) => l.startsWith('mqtt: cannot connect to')), 10_000, `a failed reconnect logged; log:\n${logs.join('\n')}`);
    const shown = broker.url.replace('mqtt://', 'mqtt://***@');
    for (const start of ['mqtt: connected to', 'mqtt: lost', 'mqtt: cannot connect to']) {
      assert.ok(logs.some((l) => l.startsWith(`${start} ${shown}`)), `"${start} ${shown}" in:\n${logs.join('\n')}`);
    }
    assert.deepEqual(logs.filter((l) => l.includes('pw-in-url')), []);
  } finally {
    await link.stop();
    await broker.teardown();
    await state.remove();
  }
});

const CONNECTION_DRIVER = fileURLToPath(new URL('./fixtures/connection-driver.js', import.meta.url));

/** The delay of a "retrying in N ms" line of the driver. */
const retryDelay = (line: { text: string }): number => Number(/retrying in (\d+) ms$/.exec(line.text)?.[1]);

test('a session cut short after NTP stepped the wall clock ten years forward does not count as one that held: the backoff goes on widening', async () => {
  const state = await tempDir('moead-clock-step-');
  const clock = await WallClock.create(state.file('clock'));
  const port = await freePort();
  // Windows of 100, 200, 400 … ms with the jitter at half: a backoff started over waits 50 ms.
  const driver: ChildHandle = spawnProcess(process.execPath, [CONNECTION_DRIVER, `mqtt://127.0.0.1:${port}`, '100', '60000'], { env: clock.env() });
  let broker: Mosquitto | undefined;
  try {
    const failed = await driver.waitForLine(/cannot connect to .*; retrying in 100 ms$/);
    assert.equal(retryDelay(failed), 100, 'the second refused attempt waits in the second window');
    broker = await Mosquitto.start({ port });
    await driver.waitForLine(/mqtt: connected to mqtt:\/\/127\.0\.0\.1/);
    await clock.set('+3650d');
    await broker.stop();
    const lost = await driver.waitForLine(/mqtt: lost mqtt:\/\/127\.0\.0\.1:\d+: .*; retrying in \d+ ms$/);
    assert.ok(retryDelay(lost) >= 200, `a session of moments, ten years long by the wall clock, started the backoff over: ${lost.text}`);
  } finally {
    await driver.stop();
    await broker?.teardown();
    await state.remove();
  }
});
