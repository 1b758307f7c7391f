/**
 * Fuzzing the command topics through a real Mosquitto: random bytes, mutated valid requests,
 * wrong types, odd names, oversized and deeply nested payloads. Every request must get exactly
 * one well-formed reply, no bad request may reach a handler, and scores keep flowing.
 * Seeded, so a failure is reproducible; bounded in count (FUZZ_COUNT) and time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMAND_SCHEMAS, CommandReplySchema, createFleetLink } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, tempDir } from '../harness/index.js';
import { closeLinkTest, expectEverySeq, score, testConfig, until } from './helpers.js';
import { rng } from '../harness/random.js';

const FUZZ_COUNT = 2500;
const SEED = 0x5eed;


const VALID: Record<string, object> = {
  status: { id: 'x' },
  'set-threshold': { id: 'x', threshold: 0.8, camera: 'cam1' },
  snapshot: { id: 'x', camera: 'cam1' },
  'restart-camera': { id: 'x', camera: 'cam1' },
  'reload-config': { id: 'x' },
};
const NAMES = [...Object.keys(VALID), 'reboot', 'STATUS', 'set_threshold', 'x'.repeat(100), '..', 'ümlaut', '$SYS'];
const WEIRD_VALUES: unknown[] = [null, true, -1, 0, 1e308, -1e-308, '', 'x'.repeat(300), [], {}, [1, [2, [3]]], { __proto__: { polluted: 1 } }, '1.0', 'NaN'];

function makePayload(r: () => number, name: string): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const kind = Math.floor(r() * 7);
  const base = VALID[name] ?? VALID.status!;
  switch (kind) {
    case 0: // random bytes
      return Buffer.from(Array.from({ length: Math.floor(r() * 300) }, () => Math.floor(r() * 256)));
    case 1: { // a valid request with one byte flipped
      const b = Buffer.from(JSON.stringify({ ...base, id: `f${Math.floor(r() * 1e6)}` }));
      b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    }
    case 2: { // truncated
      const s = JSON.stringify(base);
      return Buffer.from(s.slice(0, Math.floor(r() * s.length)));
    }
    case 3: { // a field given a wrong type, or an extra field
      const obj: Record<string, unknown> = { ...base };
      const keys = [...Object.keys(obj), 'extra', '__proto__', 'constructor'];
      obj[pick(keys)] = pick(WEIRD_VALUES);
      return Buffer.from(JSON.stringify(obj));
    }
    case 4: // over the size limit
      return Buffer.from(JSON.stringify({ ...base, pad: 'y'.repeat(1100 + Math.floor(r() * 3000)) }));
    case 5: // deeply nested
      return Buffer.from(`${'['.repeat(200 + Math.floor(r() * 300))}${']'.repeat(200)}`);
    default: // a JSON value that is not an object
      return Buffer.from(JSON.stringify(pick(WEIRD_VALUES)));
  }
}

test(`fuzz: ${FUZZ_COUNT} random and mutated command payloads, every one answered, scores keep flowing`, async () => {
  const broker = await Mosquitto.start({ extraConfig: ['max_queued_messages 100000', 'max_inflight_messages 0'] });
  const state = await tempDir('moead-fuzz-');
  const w = await MqttCollector.connect(broker.url, ['moead/dev1/cmd/+/reply', 'moead/dev1/cam1/score']);
  const link = createFleetLink(testConfig(broker.url, { commands: { maxPayloadBytes: 1024 } }), { stateDir: state.path });
  const reached: Array<{ name: string; request: unknown }> = [];
  for (const name of Object.keys(VALID)) {
    link.onCommand(name, async (request) => {
      reached.push({ name, request });
      return { done: name };
    });
  }
  let seq = 0;
  const timer = setInterval(() => void link.publishScore('cam1', score(seq++)), 10);
  try {
    await link.start();
    await link.announceOnline();
    const r = rng(SEED);
    const sentByName = new Map<string, number>();
    for (let i = 0; i < FUZZ_COUNT; i++) {
      const name = NAMES[Math.floor(r() * NAMES.length)]!;
      sentByName.set(name, (sentByName.get(name) ?? 0) + 1);
      // QoS 1 from the fuzzer so the broker delivers every request; awaited in small batches.
      const pub = w.publish(`moead/dev1/cmd/${name}`, makePayload(r, name), { qos: 1 });
      if (i % 50 === 49) await pub;
    }
    await until(() => w.on('moead/dev1/cmd/+/reply').length >= FUZZ_COUNT, 60_000, `${FUZZ_COUNT} replies`);
    const replies = w.on('moead/dev1/cmd/+/reply');
    assert.equal(replies.length, FUZZ_COUNT, 'exactly one reply per request');
    for (const [name, count] of sentByName) {
      assert.equal(w.on(`moead/dev1/cmd/${name}/reply`).length, count, `replies for ${name}`);
    }
    for (const reply of replies) CommandReplySchema.parse(reply.json());
    for (const { name, request } of reached) {
      const schema = COMMAND_SCHEMAS[name as keyof typeof COMMAND_SCHEMAS];
      assert.ok(schema.safeParse(request).success, `${name} handler got an invalid request ${JSON.stringify(request)}`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');

    // Still answering and still publishing, in order and complete.
    const from = w.mark;
    await w.publish('moead/dev1/cmd/status', JSON.stringify({ id: 'after-fuzz' }));
    const after = await w.waitFor('moead/dev1/cmd/status/reply', { from });
    assert.deepEqual(after.json(), { id: 'after-fuzz', ok: true, result: { done: 'status' } });
    clearInterval(timer);
    const last = seq - 1;
    await expectEverySeq(w, 'moead/dev1/cam1/score', last, 10_000);
    assert.ok(last > 20, `scores were published during the fuzz (${last + 1})`);
    assert.equal(link.stats().commands, FUZZ_COUNT + 1);
  } finally {
    clearInterval(timer);
    await closeLinkTest({ link, watcher: w, broker, state });
  }
});
