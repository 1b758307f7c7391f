/**
 * The Mosquitto ACL documented in docs/mqtt.md, run as written against a real broker: a
 * device can publish only under its own subtree and read only its own commands.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { createFleetLink } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, repoPath, tempDir } from '../harness/index.js';
import { readableByBroker, score, testConfig } from './helpers.js';

function documentedAcl(): string {
  const doc = readFileSync(repoPath('docs', 'mqtt.md'), 'utf8');
  const m = /<!-- acl-example -->\s*```text\n([\s\S]*?)```/.exec(doc);
  if (!m?.[1]) throw new Error('docs/mqtt.md: no ```text block after <!-- acl-example -->');
  return m[1];
}

test('the documented ACL confines a device to its own subtree', async () => {
  const dir = await tempDir('moead-acl-');
  writeFileSync(dir.file('acl'), documentedAcl());
  for (const [user, i] of [['dev1', 0], ['dev2', 1], ['backend', 2]] as const) {
    execFileSync('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), dir.file('passwd'), user, `${user}-pw`]);
  }
  readableByBroker(dir.path);
  const broker = await Mosquitto.start({ extraConfig: ['allow_anonymous false', `password_file ${dir.file('passwd')}`, `acl_file ${dir.file('acl')}`] });
  const state = await tempDir('moead-acl-state-');
  const link = createFleetLink(testConfig(broker.url, { username: 'dev1', password: 'dev1-pw', homeassistant: { enabled: true }, sparkplug: { enabled: true, groupId: 'g1' } }), { stateDir: state.path, cameras: ['cam1'] });
  link.onCommand('status', async () => 'ok');
  const backend = await MqttCollector.connect(broker.url, ['moead/#', 'homeassistant/#', 'spBv1.0/#'], { username: 'backend', password: 'backend-pw', protocolVersion: 5 });
  const intruder = await MqttCollector.connect(broker.url, ['moead/dev2/#', 'moead/+/cmd/+'], { username: 'dev1', password: 'dev1-pw', clientId: 'dev1-intruder', protocolVersion: 5 });
  try {
    await link.start();
    await link.announceOnline();
    // Allowed: its own subtree, its discovery, its commands and replies.
    await link.publishScore('cam1', score(0));
    await backend.waitFor('moead/dev1/cam1/score');
    await backend.waitFor('homeassistant/sensor/dev1/cam1_score/config');
    await backend.waitFor('spBv1.0/g1/NBIRTH/dev1');
    await backend.waitFor('spBv1.0/g1/DBIRTH/dev1/cam1');
    const from = backend.mark;
    await backend.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'acl-1' }));
    assert.deepEqual((await backend.waitFor('moead/dev1/cmd/status/reply', { from })).json(), { id: 'acl-1', ok: true, result: 'ok' });

    // Denied: writing into another device's subtree. A marker that is allowed, sent after,
    // proves the broker has processed the denied one by the time the marker arrives.
    const before = backend.mark;
    await intruder.publish('moead/dev2/cam1/score', JSON.stringify(score(99))).catch(() => undefined);
    await intruder.publish('moead/dev2/cmd/status', JSON.stringify({ id: 'evil' })).catch(() => undefined);
    await intruder.publish('moead/dev1/marker', 'm');
    await backend.waitFor('moead/dev1/marker', { from: before });
    assert.deepEqual(backend.messages.slice(before).filter((m) => m.topic.startsWith('moead/dev2/')).map((m) => m.topic), []);

    // Denied: reading another device's commands (dev1 asked for moead/+/cmd/+ and moead/dev2/#).
    const seen = intruder.mark;
    await backend.publish('moead/dev2/cmd/status', JSON.stringify({ id: 'for-dev2' }));
    await backend.publish('moead/dev2/cam1/status', 'x');
    await backend.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'for-dev1' }));
    await intruder.waitFor('moead/dev1/cmd/status', { from: seen });
    assert.deepEqual(intruder.messages.slice(seen).filter((m) => m.topic.startsWith('moead/dev2/')).map((m) => m.topic), []);
  } finally {
    await link.stop();
    await intruder.close();
    await backend.close();
    await broker.teardown();
    await state.remove();
    await dir.remove();
  }
});
