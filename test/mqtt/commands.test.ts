/**
 * The command dispatcher's turn-taking without a broker: a handler past its timeout keeps the
 * turn until it settles, and a request that waits too long for its turn is never run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandDispatcher } from '../../src/mqtt/commands.js';
import type { CommandReply } from '../../src/mqtt/topics.js';

const request = (id: string): Buffer => Buffer.from(JSON.stringify({ id }));
const errorOf = (reply: CommandReply): string => (reply.ok ? assert.fail(`expected an error reply, got ${JSON.stringify(reply)}`) : reply.error);

test('a handler past its timeout keeps the turn: the next command starts only when it has settled', async () => {
  const d = new CommandDispatcher({ maxPayloadBytes: 1024, timeoutMs: 300 });
  const events: string[] = [];
  d.register('slow', async () => {
    events.push('slow start');
    await sleep(450);
    events.push('slow end');
    return 'slow done';
  });
  d.register('status', async () => {
    events.push('status start');
    return 'ok';
  });
  const slow = d.dispatch('slow', request('s1'));
  // Sent late enough that its wait for the turn (about 200 ms) stays under the timeout.
  await sleep(250);
  const status = d.dispatch('status', request('s2'));
  assert.match(errorOf(await slow), /slow did not finish within 300 ms \(mqtt.commands.timeoutMs\); it is still running/);
  assert.deepEqual(events, ['slow start'], 'status waits while slow runs past its timeout');
  assert.deepEqual(await status, { id: 's2', ok: true, result: 'ok' });
  assert.deepEqual(events, ['slow start', 'slow end', 'status start']);
});

test('EXPECTED FAILURE - a request that waits longer than the timeout for its turn is answered and never run', async () => {
  const d = new CommandDispatcher({ maxPayloadBytes: 1024, timeoutMs: 150 });
  const events: string[] = [];
  d.register('stuck', async () => {
    events.push('stuck start');
    await sleep(600);
    events.push('stuck end');
  });
  d.register('set-threshold', async (req) => {
    events.push(`set-threshold ${String(req.threshold)}`);
  });
  const stuck = d.dispatch('stuck', request('a'));
  const waiting = d.dispatch('set-threshold', Buffer.from(JSON.stringify({ id: 'b', threshold: 0.7 })));
  const reply = await waiting;
  assert.equal(reply.id, 'b');
  assert.match(errorOf(reply), /set-threshold not run: the command before it was still running after 150 ms.*nothing was changed/);
  assert.match(errorOf(await stuck), /stuck did not finish within 150 ms/);
  await sleep(700);
  assert.deepEqual(events, ['stuck start', 'stuck end'], 'the refused request never ran, not even after the stuck one ended');
  assert.deepEqual({ handled: d.handled, errors: d.errors }, { handled: 2, errors: 2 });
});

test('EXPECTED FAILURE - an id with a control character or an unpaired surrogate is refused naming id, and the handler never runs', async () => {
  const d = new CommandDispatcher({ maxPayloadBytes: 1024, timeoutMs: 1000 });
  const ran: string[] = [];
  d.register('status', async (r) => {
    ran.push(r.id);
    return 'ok';
  });
  // The id goes into log lines (`update <id> failed ...`): a newline in it would forge a line.
  for (const id of ['a\nERROR [daemon] forged', 'nul\u0000', 'c1\u0085', 'esc\u001b[31m', 'half\ud800']) {
    const reply = await d.dispatch('status', request(id));
    assert.equal(reply.id, null, JSON.stringify(id));
    assert.match(errorOf(reply), /^invalid status request: id: expected no control characters or unpaired surrogates/, JSON.stringify(id));
  }
  assert.deepEqual(ran, []);
  // Other unicode is an id like any other, echoed as sent.
  for (const id of ['📷 caméra-1', 'ид-٣', 'a\u200db']) assert.deepEqual(await d.dispatch('status', request(id)), { id, ok: true, result: 'ok' });
});
