import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { MqttConfigSchema } from '../../src/mqtt/config.js';
import { COMMAND_SCHEMAS, DELIVERY, deviceTopics, type KnownCommand } from '../../src/mqtt/topics.js';
import { repoPath } from '../harness/index.js';

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

test('a topic level is 1 to 128 characters with no NUL; the base is checked like the device', () => {
  assert.equal(deviceTopics('moead', 'd'.repeat(128)).root, `moead/${'d'.repeat(128)}`);
  assert.throws(() => deviceTopics('moead', 'd'.repeat(129)), /topic level/);
  // MQTT forbids U+0000 in a topic name: a broker would drop the connection over it.
  assert.throws(() => deviceTopics('moead', 'a\u0000b'), /topic level/);
  // A base with a separator would move the device out of the one-ACL-pattern subtree.
  assert.throws(() => deviceTopics('plant/moead', 'd'), /topic level/);
});

/** The topic kinds a docs table lists with their QoS and retain flag; `direction` matches docs/mqtt.md's extra column. */
async function documentedDelivery(file: string, direction: string): Promise<Record<string, { qos: number; retain: boolean }>> {
  const docs = await readFile(repoPath(file), 'utf8');
  // The docs name topics by their last level; DELIVERY by kind.
  const kinds: Record<string, keyof typeof DELIVERY> = { availability: 'availability', score: 'score', event: 'event', snapshot: 'snapshot', status: 'cameraStatus', telemetry: 'telemetry', ota: 'ota', reply: 'reply' };
  const documented = new Map<string, { qos: number; retain: boolean }>();
  for (const m of docs.matchAll(new RegExp(`^\\| \`<base>/<device>/(?:[^\`|]*/)?([a-z]+)\` \\| ${direction}(\\d) \\| (yes|no) \\|`, 'gm'))) {
    const kind = kinds[m[1] as string];
    assert.ok(kind, `${file} lists a topic kind the code does not know: ${m[1]}`);
    documented.set(kind, { qos: Number(m[2]), retain: m[3] === 'yes' });
  }
  return Object.fromEntries(documented);
}

test('the QoS and retain flag of each topic are the ones the table in docs/mqtt.md promises', async () => {
  assert.deepEqual(await documentedDelivery('docs/mqtt.md', 'device → \\| '), { ...DELIVERY });
});

test('the MQTT contract table in README.md promises the same, and both docs name every command', async () => {
  assert.deepEqual(await documentedDelivery('README.md', ''), { ...DELIVERY });
  const readme = await readFile(repoPath('README.md'), 'utf8');
  const mqttDoc = await readFile(repoPath('docs', 'mqtt.md'), 'utf8');
  const cmdRow = /^\| `<base>\/<device>\/cmd\/<name>` \|.*$/m.exec(readme)?.[0] ?? '';
  for (const name of Object.keys(COMMAND_SCHEMAS)) {
    assert.ok(cmdRow.includes(`\`${name}\``), `README.md's cmd/<name> row does not name ${name}`);
    assert.match(mqttDoc, new RegExp(`^\\| \`${name}\` \\|`, 'm'), `docs/mqtt.md's command table has no row for ${name}`);
  }
});

test('command requests: ids of 1-128 characters, thresholds above 0, URLs up to 2048 characters, no unknown fields', () => {
  const ok = (name: KnownCommand, request: unknown): boolean => COMMAND_SCHEMAS[name].safeParse(request).success;
  assert.equal(ok('status', { id: 'i'.repeat(128) }), true);
  assert.equal(ok('status', { id: 'i'.repeat(129) }), false);
  assert.equal(ok('status', { id: '' }), false);
  assert.equal(ok('set-threshold', { id: 'a', threshold: 0 }), false);
  assert.equal(ok('set-threshold', { id: 'a', threshold: 1e-9 }), true);
  const url = 'https://models.example/' + 'b'.repeat(2048 - 'https://models.example/'.length);
  assert.equal(ok('update-model', { id: 'a', url }), true);
  assert.equal(ok('update-model', { id: 'a', url: `${url}x` }), false);
  // Every known command is strict: a field the device does not know (a typo, or a newer
  // requester's option) is refused rather than silently ignored.
  const minimal: Record<KnownCommand, object> = {
    status: { id: 'a' },
    'set-threshold': { id: 'a', threshold: 1 },
    snapshot: { id: 'a', camera: 'c' },
    'restart-camera': { id: 'a', camera: 'c' },
    'reload-config': { id: 'a' },
    'update-model': { id: 'a', url: 'https://m/' },
    'rollback-model': { id: 'a' },
  };
  for (const name of Object.keys(COMMAND_SCHEMAS) as KnownCommand[]) {
    assert.equal(ok(name, minimal[name]), true, name);
    assert.equal(ok(name, { ...minimal[name], extra: 1 }), false, `${name} with an unknown field`);
  }
});
