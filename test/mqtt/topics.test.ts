import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MqttConfigSchema } from '../../src/mqtt/config.js';
import { deviceTopics } from '../../src/mqtt/topics.js';

test('topic builders keep everything under <base>/<device>', () => {
  const t = deviceTopics('moead', 'line-3');
  assert.equal(t.root, 'moead/line-3');
  assert.equal(t.availability, 'moead/line-3/availability');
  assert.equal(t.score('cam1'), 'moead/line-3/cam1/score');
  assert.equal(t.event('cam1'), 'moead/line-3/cam1/event');
  assert.equal(t.snapshot('cam1'), 'moead/line-3/cam1/snapshot');
  assert.equal(t.cameraStatus('cam1'), 'moead/line-3/cam1/status');
  assert.equal(t.telemetry, 'moead/line-3/telemetry');
  assert.equal(t.command('status'), 'moead/line-3/cmd/status');
  assert.equal(t.reply('status'), 'moead/line-3/cmd/status/reply');
  assert.equal(t.commandFilter, 'moead/line-3/cmd/+');
  assert.equal(t.commandName('moead/line-3/cmd/set-threshold'), 'set-threshold');
  assert.equal(t.commandName('moead/line-3/cmd/status/reply'), undefined, 'our own replies are not commands');
  assert.equal(t.commandName('moead/other/cmd/status'), undefined);
});

test('BAD CALL - names that would break the topic tree are refused, naming the kind', () => {
  const t = deviceTopics('moead', 'd');
  assert.throws(() => t.score('a/b'), /camera name "a\/b" cannot be used in a topic/);
  assert.throws(() => t.score('#'), /camera name "#"/);
  assert.throws(() => t.command('+'), /command name "\+"/);
  assert.throws(() => deviceTopics('moead', ''), /topic level/);
});

test('config: defaults work out of the box, bad values name their key', () => {
  const c = MqttConfigSchema.parse({});
  assert.equal(c.protocolVersion, 5);
  assert.equal(c.outbox.maxMessages, 100_000);
  assert.equal(c.commands.maxPayloadBytes, 16_384);
  assert.deepEqual(c.backoff, { minMs: 500, maxMs: 60_000 });
  const paths = (input: unknown): string[] => {
    const r = MqttConfigSchema.safeParse(input);
    assert.equal(r.success, false);
    return r.error.issues.map((i) => i.path.join('.'));
  };
  assert.deepEqual(paths({ tls: { cert: '/c.pem' } }), ['tls.key']);
  assert.deepEqual(paths({ backoff: { minMs: 1000, maxMs: 500 } }), ['backoff.maxMs']);
  assert.deepEqual(paths({ protocolVersion: 3 }), ['protocolVersion']);
  assert.deepEqual(paths({ outbox: { maxMessages: 5 } }), ['outbox.maxMessages']);
  assert.deepEqual(paths({ sparkplug: { groupId: 'a/b' } }), ['sparkplug.groupId']);
  assert.deepEqual(paths({ unknownKey: 1 }), ['']);
});
