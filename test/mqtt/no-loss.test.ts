/**
 * No message lost: a real Mosquitto goes away mid-stream and comes back, and the publishing
 * process is SIGKILLed while messages wait in its outbox; the subscriber must see every seq,
 * with no gap and in order, after de-duplication by seq (QoS 1 is at-least-once).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { createFleetLink } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, spawnProcess, tempDir, type ChildHandle } from '../harness/index.js';
import { closeLinkTest, expectEverySeq, maxSeq, score, seqsOf, testConfig, until } from './helpers.js';

const DRIVER = fileURLToPath(new URL('./fixtures/score-driver.js', import.meta.url));

/** A subscriber whose session (and queued QoS 1 messages) the broker keeps across its restarts. */
function watcher(broker: Mosquitto, topic: string, clientId: string): Promise<MqttCollector> {
  return MqttCollector.connect(broker.url, topic, { clean: false, clientId });
}

/** The broker keeps the subscriber's session (and the messages queued for it) on disk across its restart. */
const PERSISTENT = ['persistence true'];


test('broker stopped mid-stream and restarted: every seq arrives, in order, none missing', async () => {
  const broker = await Mosquitto.start({ extraConfig: PERSISTENT });
  const state = await tempDir('moead-noloss-');
  const topic = 'moead/dev1/cam1/score';
  const w = await watcher(broker, topic, 'noloss-watch-1');
  const link = createFleetLink(testConfig(broker.url), { stateDir: state.path });
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await link.start();
    await link.announceOnline();
    timer = setInterval(() => void link.publishScore('cam1', score(seq++)), 5);
    await until(() => maxSeq(w, topic) >= 30, 10_000, 'scores before the outage');
    await broker.stop();
    const queuedFrom = seq;
    await until(() => seq >= queuedFrom + 80, 10_000, 'scores queued while the broker is down');
    assert.equal(link.connected, false);
    assert.ok(link.stats().queue_depth >= 50, `scores wait in the outbox (depth ${link.stats().queue_depth})`);
    await broker.restart();
    await until(() => seq >= queuedFrom + 160, 10_000, 'scores after the restart');
    clearInterval(timer);
    const last = seq - 1;
    await expectEverySeq(w, topic, last, 15_000);
    assert.ok(link.stats().reconnects >= 1);
  } finally {
    clearInterval(timer);
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});

function lastQueued(driver: ChildHandle): number {
  let last = -1;
  for (const l of driver.lines) {
    const m = /^queued (\d+)$/.exec(l.text);
    if (m) last = Math.max(last, Number(m[1]));
  }
  return last;
}

test('publisher SIGKILLed while the broker is down, then restarted: nothing lost; its will says offline', async () => {
  const broker = await Mosquitto.start({ extraConfig: PERSISTENT });
  const state = await tempDir('moead-noloss-kill-');
  const topic = 'moead/killme/cam1/score';
  const w = await watcher(broker, 'moead/killme/#', 'noloss-watch-2');
  const drivers: ChildHandle[] = [];
  const drive = (from: number): ChildHandle => {
    const d = spawnProcess(process.execPath, [DRIVER, broker.url, state.path, String(from), '5']);
    drivers.push(d);
    return d;
  };
  try {
    const a = drive(0);
    await until(() => maxSeq(w, topic) >= 30, 15_000, 'scores from the first run');
    await broker.stop();
    const downAt = lastQueued(a);
    await until(() => lastQueued(a) >= downAt + 80, 10_000, 'scores queued while the broker is down');
    a.signal('SIGKILL');
    await a.exited;
    const killedAt = lastQueued(a);
    assert.ok(maxSeq(w, topic) < killedAt, 'some scores existed only in the dead process\'s outbox');

    await broker.restart();
    const b = drive(killedAt + 1);
    await until(() => lastQueued(b) >= killedAt + 60, 10_000, 'scores from the second run');
    await b.stop();
    const last = lastQueued(b);
    await expectEverySeq(w, topic, last, 15_000);

    // The last will: a process that dies without a word is reported offline by the broker.
    const fromC = w.mark;
    const c = drive(last + 1);
    await w.waitFor((m) => m.topic === 'moead/killme/availability' && m.text() === 'online', { from: fromC });
    const from = w.mark;
    c.signal('SIGKILL');
    const will = await w.waitFor('moead/killme/availability', { from });
    assert.equal(will.text(), 'offline');
  } finally {
    for (const d of drivers) d.signal('SIGKILL');
    await Promise.all(drivers.map((d) => d.exited));
    await w.close();
    await broker.teardown();
    await state.remove();
  }
});

test('a full outbox drops the oldest scores, counts them, and keeps every event', async () => {
  const broker = await Mosquitto.start({ extraConfig: PERSISTENT });
  const state = await tempDir('moead-noloss-full-');
  const w = await watcher(broker, 'moead/dev1/cam1/+', 'noloss-watch-3');
  const link = createFleetLink(testConfig(broker.url, { outbox: { maxMessages: 10 } }), { stateDir: state.path });
  try {
    await link.start();
    await broker.stop();
    await until(() => !link.connected, 5000, 'the link to notice');
    const event = (id: string) => ({ id, type: 'start' as const, ts: new Date().toISOString(), peak_score: 2, frames: 2 });
    await link.publishEvent('cam1', event('e1'));
    for (let s = 0; s < 30; s++) await link.publishScore('cam1', score(s));
    await link.publishEvent('cam1', event('e2'));
    // 1 event + 9 scores fill it; each of the 21 later scores and the second event drop the oldest score.
    assert.deepEqual({ depth: link.stats().queue_depth, dropped: link.stats().queue_dropped_scores }, { depth: 10, dropped: 22 });
    await broker.restart();
    await until(() => w.on('moead/dev1/cam1/event').length === 2, 10_000, 'both events');
    await until(() => w.on('moead/dev1/cam1/score').length >= 8, 10_000, 'the kept scores');
    assert.deepEqual(seqsOf(w.on('moead/dev1/cam1/score')), [22, 23, 24, 25, 26, 27, 28, 29]);
    assert.deepEqual(w.on('moead/dev1/cam1/event').map((m) => (m.json() as { id: string }).id), ['e1', 'e2']);
  } finally {
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});
