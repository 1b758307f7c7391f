/** The harness itself: a broker that really starts, delivers, restarts and stops. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Mosquitto, MqttCollector, spawnProcess, tempDir, topicMatches, waitForPort } from './index.js';

test('topicMatches follows MQTT wildcard rules', () => {
  assert.equal(topicMatches('moead/#', 'moead/dev/cam/score'), true);
  assert.equal(topicMatches('moead/+/availability', 'moead/dev/availability'), true);
  assert.equal(topicMatches('moead/+/availability', 'moead/dev/cam/availability'), false);
  assert.equal(topicMatches('a/b', 'a/b/c'), false);
  assert.equal(topicMatches('a/b/c', 'a/b'), false);
});

test('mosquitto starts on a free port, delivers, survives a restart, and is removed', async () => {
  const broker = await Mosquitto.start();
  try {
    const sub = await MqttCollector.connect(broker.url, 'h/#');
    await sub.publish('h/one', { n: 1 });
    const first = await sub.waitFor('h/one', { timeoutMs: 3000 });
    assert.deepEqual(first.json(), { n: 1 });

    const mark = sub.mark;
    await broker.restart();
    await waitForPort(broker.port);
    // The client reconnects on its own; a clean session needs a fresh subscription.
    await sub.waitConnected();
    await sub.client.subscribeAsync('h/#', { qos: 1 });
    await sub.publish('h/two', 'after restart');
    const second = await sub.waitFor('h/two', { from: mark, timeoutMs: 3000 });
    assert.equal(second.text(), 'after restart');
    await assert.rejects(sub.waitFor('h/never', { timeoutMs: 100 }), /waited 100 ms .*h\/never.*topics seen: h\/one, h\/two/);
    await sub.close();
  } finally {
    await broker.teardown();
  }
  assert.equal(broker.running, false);
  assert.equal(existsSync(broker.dir.path), false);
});

test('a bad extra config line makes start fail with the broker log', async () => {
  await assert.rejects(Mosquitto.start({ extraConfig: ['no_such_option 1'] }), /mosquitto exited while starting[\s\S]*no_such_option/);
});

test('child processes: wait for a line, fail clearly when it never comes', async () => {
  const child = spawnProcess('sh', ['-c', 'echo hello; echo warn >&2; exec sleep 5']);
  assert.equal((await child.waitForLine(/hel+o/)).stream, 'stdout');
  assert.equal((await child.waitForLine('warn', { stream: 'stderr' })).text, 'warn');
  await assert.rejects(child.waitForLine('never', { timeoutMs: 100 }), /no line matching never within 100 ms/);
  const status = await child.stop();
  assert.equal(status.signal, 'SIGTERM');
  const done = spawnProcess('sh', ['-c', 'exit 3']);
  await assert.rejects(done.waitForLine('x'), /before it exited \(code 3/);
  const dir = await tempDir();
  assert.equal(existsSync(dir.path), true);
  await dir.remove();
  assert.equal(existsSync(dir.path), false);
});
