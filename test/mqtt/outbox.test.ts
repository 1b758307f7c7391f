import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Outbox, type OutboxOptions } from '../../src/mqtt/outbox.js';
import { withSmallDisk, withTempDir } from '../harness/index.js';

const opts = (over: Partial<OutboxOptions> = {}): OutboxOptions => ({ maxMessages: 1000, segmentBytes: 1 << 20, fsyncMs: 0, ...over });
const seqOf = (payload: string): number => (JSON.parse(payload) as { seq: number }).seq;
/** The seq of the newest message of `topic` in the files at open; undefined when there is none. */
const newestSeq = (box: Outbox, topic: string): number | undefined => {
  const payload = box.lastPutAtOpen(topic);
  return payload === undefined ? undefined : seqOf(payload);
};
const seqs = (box: Outbox): number[] => box.take(1_000_000).map((m) => seqOf(m.payload));

test('messages survive a reopen, in order, and acknowledged ones do not come back', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts());
    for (let seq = 0; seq < 10; seq++) a.put('score', 't/score', JSON.stringify({ seq }));
    const first = a.take(4);
    for (const m of first) a.ack(m.id);
    a.close();

    const b = Outbox.open(dir.path, opts());
    assert.equal(b.size, 6);
    assert.deepEqual(seqs(b), [4, 5, 6, 7, 8, 9]);
    b.close();
  }));

test('a reopen knows the newest message of each topic in the files, delivered or not (a seq the previous run used)', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts());
    for (let seq = 0; seq < 10; seq++) a.put('score', 't/score', JSON.stringify({ seq }));
    a.put('event', 't/event', JSON.stringify({ seq: 100 }));
    for (const m of a.take(10)) a.ack(m.id);
    assert.equal(a.lastPutAtOpen('t/score'), undefined, 'only what the files held at open');
    a.close();

    const b = Outbox.open(dir.path, opts());
    assert.equal(b.size, 1);
    assert.equal(seqOf(b.lastPutAtOpen('t/score')!), 9);
    assert.equal(seqOf(b.lastPutAtOpen('t/event')!), 100);
    assert.equal(b.lastPutAtOpen('t/other'), undefined);
    b.close();
  }));

test('the newest put of each topic stays in the files after the broker acknowledged it, through rotations and compactions, so a reopen after a kill still names it', () =>
  withTempDir(async (dir) => {
    // Segments so small that every put closes one: each acknowledged put's segment is then
    // resolved at once, as happens now and then with any segment size. A camera saves its seq
    // after queueing the score, so a kill right after the ack leaves the queue's files as the
    // only record of the seq that went out.
    const small = opts({ segmentBytes: 256 });
    const a = Outbox.open(dir.path, small);
    a.put('event', 't/event', JSON.stringify({ seq: 100 }));
    for (let seq = 0; seq < 40; seq++) {
      a.put('score', 't/score', JSON.stringify({ seq, pad: 'x'.repeat(40) }));
      for (const m of a.take(10)) a.ack(m.id);
    }
    assert.equal(a.size, 0);
    const files = () => readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    assert.ok(files().length <= 5, `segments stay bounded: ${files().join(', ')}`);
    // No close(): killed.
    const b = Outbox.open(dir.path, small);
    assert.equal(newestSeq(b, 't/score'), 39);
    assert.equal(newestSeq(b, 't/event'), 100);
    assert.deepEqual(seqs(b), [], 'kept as a record only: nothing acknowledged is sent again');
    for (let seq = 40; seq < 45; seq++) {
      b.put('score', 't/score', JSON.stringify({ seq, pad: 'x'.repeat(40) }));
      for (const m of b.take(10)) b.ack(m.id);
    }
    const c = Outbox.open(dir.path, small);
    assert.equal(newestSeq(c, 't/score'), 44);
    assert.equal(newestSeq(c, 't/event'), 100, 'a quiet topic keeps its newest put through the compactions of the others');
    assert.deepEqual(seqs(c), []);
    assert.ok(files().length <= 6, `segments stay bounded: ${files().join(', ')}`);
    c.close();
    b.close();
    a.close();
  }));

test('a reopen without close (the process was killed) keeps every put', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts({ fsyncMs: 1000 }));
    for (let seq = 0; seq < 50; seq++) a.put('score', 't/score', JSON.stringify({ seq }));
    // No close(): the writes are in the page cache, which a killed process does not lose.
    const b = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(b), [...Array(50).keys()]);
    b.close();
    a.close();
  }));

test('the timed sync runs off the event loop and keeps up with rotations, with no failure counted', () =>
  withTempDir(async (dir) => {
    // Small segments: rotations close descriptors while timed syncs of them may be in flight.
    const box = Outbox.open(dir.path, opts({ fsyncMs: 5, segmentBytes: 2048 }));
    for (let round = 0; round < 20; round++) {
      for (let seq = 0; seq < 10; seq++) box.put('score', 't/score', JSON.stringify({ seq: round * 10 + seq }));
      await new Promise((r) => setTimeout(r, 8));
    }
    assert.ok(box.stats().segments > 1, `segments: ${box.stats().segments}`);
    assert.equal(box.stats().syncFailures, 0);
    box.close();
    const again = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(again), [...Array(200).keys()]);
    again.close();
  }));

test('segments a rotation closes are synced and closed off the event loop: no descriptor is left open', () =>
  withTempDir(async (dir) => {
    const openFds = () => readdirSync('/proc/self/fd').length;
    const before = openFds();
    const box = Outbox.open(dir.path, opts({ fsyncMs: 1000, segmentBytes: 4096 }));
    for (let seq = 0; seq < 400; seq++) {
      box.put('score', 't/score', JSON.stringify({ seq, pad: 'x'.repeat(40) }));
      for (const m of box.take(10)) box.ack(m.id);
    }
    // Dozens of rotations, each handing a descriptor (and a directory sync) to libuv's pool.
    box.close();
    const deadline = Date.now() + 5000;
    while (openFds() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(openFds(), before, 'descriptors left open after the rotations settled');
    assert.equal(box.stats().syncFailures, 0);
    assert.deepEqual(readdirSync(dir.path).filter((f) => f.endsWith('.log')).length, 1, 'resolved segments deleted');
  }));

test('released in-flight messages are taken again first, in order', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts());
    for (let seq = 0; seq < 5; seq++) box.put('score', 't', JSON.stringify({ seq }));
    const batch = box.take(3);
    box.ack(batch[1]!.id);
    box.releaseInflight();
    assert.deepEqual(seqs(box), [0, 2, 3, 4]);
    box.close();
  }));

test('when full, the oldest scores are dropped and counted, events are kept', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts({ maxMessages: 10 }));
    box.put('event', 't/event', JSON.stringify({ seq: -1 }));
    for (let seq = 0; seq < 20; seq++) box.put('score', 't/score', JSON.stringify({ seq }));
    box.put('event', 't/event', JSON.stringify({ seq: -2 }));
    // 1 event + 9 scores fill it; each of the 11 later scores and the last event drop one score.
    assert.equal(box.stats().droppedScores, 12);
    const kept = box.take(100);
    assert.deepEqual(kept.filter((m) => m.kind === 'event').length, 2);
    assert.deepEqual(kept.filter((m) => m.kind === 'score').map((m) => seqOf(m.payload)), [12, 13, 14, 15, 16, 17, 18, 19]);
    box.close();

    const again = Outbox.open(dir.path, opts({ maxMessages: 10 }));
    assert.equal(again.size, 10, 'drops are persisted: the dropped scores do not come back');
    again.close();
  }));

test('a queue of events only refuses a new score (the oldest score is the incoming one)', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts({ maxMessages: 10 }));
    for (let i = 0; i < 10; i++) box.put('event', 't/event', '{}');
    assert.equal(box.put('score', 't/score', '{}'), undefined);
    assert.equal(box.stats().droppedScores, 1);
    assert.ok(box.put('event', 't/event', '{}'));
    assert.equal(box.size, 11);
    box.close();
  }));

test('a torn last record (power cut mid-write) is cut off and counted', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts());
    a.put('score', 't', JSON.stringify({ seq: 0 }));
    a.put('score', 't', JSON.stringify({ seq: 1 }));
    a.close();
    const seg = readdirSync(dir.path).filter((f) => f.endsWith('.log')).sort()[0]!;
    appendFileSync(join(dir.path, seg), '{"o":"p","i":2,"k":"sco');
    const b = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(b), [0, 1]);
    assert.equal(b.stats().corruptRecords, 1);
    b.put('score', 't', JSON.stringify({ seq: 2 }));
    b.close();
    const c = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(c), [0, 1, 2]);
    c.close();
  }));

test('segments rotate, resolved ones are deleted, and a pinned old message is compacted forward', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts({ segmentBytes: 4096, maxMessages: 100, fsyncMs: 1000 }));
    const pinned = box.put('event', 't/event', JSON.stringify({ seq: -1 }))!;
    for (let seq = 0; seq < 2000; seq++) {
      box.put('score', 't/score', JSON.stringify({ seq, pad: 'x'.repeat(40) }));
      for (const m of box.take(10)) if (m.id !== pinned.id) box.ack(m.id);
    }
    box.releaseInflight();
    const files = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    assert.ok(files.length <= 5, `segments are bounded, found ${files.length}`);
    const pending = box.take(1000);
    assert.equal(pending[0]?.id, pinned.id, 'the pinned event is still first');
    box.close();
    const again = Outbox.open(dir.path, opts({ segmentBytes: 4096, maxMessages: 100, fsyncMs: 1000 }));
    assert.deepEqual(again.take(1000).map((m) => m.id), pending.map((m) => m.id));
    again.close();
  }));

test('a refusal for good takes the message off the queue for good; a passing one sets it aside until the next session', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts());
    for (let seq = 0; seq < 4; seq++) a.put('score', 't/score', JSON.stringify({ seq }));
    const [m0, m1] = a.take(2);
    a.refuse(m0!.id, true);
    a.refuse(m1!.id, false);
    assert.equal(a.inflight, 0, 'neither holds an in-flight slot');
    assert.deepEqual(seqs(a), [2, 3], 'the set-aside one is not handed out again in this session');
    a.releaseInflight();
    assert.deepEqual(seqs(a), [1, 2, 3], 'the next session sends it again, in order');
    assert.deepEqual({ depth: a.stats().depth, refused: a.stats().refused }, { depth: 3, refused: 1 });
    a.close();

    const b = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(b), [1, 2, 3], 'the refused one does not come back after a restart');
    b.close();
  }));

test('ids after a reopen continue above every id ever written, so a new put is neither shadowed by an old ack nor sent first', () =>
  withTempDir(async (dir) => {
    const a = Outbox.open(dir.path, opts());
    for (let seq = 0; seq < 3; seq++) a.put('score', 't/score', JSON.stringify({ seq }));
    for (const m of a.take(2)) a.ack(m.id);
    a.close();
    // One pending message but ids 0..2 used: the next id must be 3, not 1 (whose ack is on disk).
    const b = Outbox.open(dir.path, opts());
    assert.equal(b.put('score', 't/score', JSON.stringify({ seq: 3 }))?.id, 3);
    b.close();
    const c = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(c), [2, 3]);
    c.close();
  }));

test('messages spread over several segments replay in order', () =>
  withTempDir(async (dir) => {
    // Small segments and no acks: a handful of segments, fewer than compaction would merge.
    const a = Outbox.open(dir.path, opts({ segmentBytes: 256, fsyncMs: 1000 }));
    for (let seq = 0; seq < 8; seq++) a.put('score', 't/score', JSON.stringify({ seq, pad: 'x'.repeat(40) }));
    a.close();
    const written = readdirSync(dir.path).filter((f) => f.endsWith('.log')).sort();
    assert.ok(written.length >= 3, `segments: ${written.join(', ')}`);
    const b = Outbox.open(dir.path, opts());
    assert.deepEqual(seqs(b), [...Array(8).keys()]);
    // Appends go to a fresh segment numbered after the newest, never into an old one.
    const last = Number(/\d+/.exec(written.at(-1)!)![0]);
    assert.ok(readdirSync(dir.path).includes(`seg-${String(last + 1).padStart(10, '0')}.log`));
    b.close();
  }));

test('when full, a score in flight is not the one dropped: the next oldest goes, or the incoming one when all are in flight', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts({ maxMessages: 3 }));
    for (let seq = 0; seq < 3; seq++) box.put('score', 't/score', JSON.stringify({ seq }));
    const [sending] = box.take(1);
    box.put('score', 't/score', JSON.stringify({ seq: 3 }));
    assert.equal(box.stats().droppedScores, 1);
    box.ack(sending!.id);
    assert.deepEqual(seqs(box), [2, 3], 'seq 0 was delivered, seq 1 dropped');
    box.put('score', 't/score', JSON.stringify({ seq: 4 }));
    assert.equal(box.take(10).length, 1);
    // All three pending scores are in flight now: the newcomer is the one dropped.
    assert.equal(box.put('score', 't/score', JSON.stringify({ seq: 5 })), undefined);
    assert.equal(box.stats().droppedScores, 2);
    box.releaseInflight();
    assert.deepEqual(seqs(box), [2, 3, 4]);
    box.close();
  }));

test('after thousands of drops the oldest score is still the next one dropped (the drop list is trimmed without losing its head)', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts({ maxMessages: 10, fsyncMs: 1000, segmentBytes: 1 << 16 }));
    // More than 4096 drops, so the list of score ids is trimmed at least once on the way.
    for (let seq = 0; seq < 5000; seq++) box.put('score', 't/score', JSON.stringify({ seq }));
    assert.equal(box.stats().droppedScores, 4990);
    assert.deepEqual(seqs(box), [...Array(10).keys()].map((i) => 4990 + i));
    box.close();
  }));

test('BAD CALL - a put on a closed outbox is refused, naming the outbox', () =>
  withTempDir(async (dir) => {
    const box = Outbox.open(dir.path, opts());
    box.close();
    box.close();
    assert.throws(() => box.put('score', 't/score', '{}'), /outbox .* is closed/);
  }));

test('a full disk fails no put or ack: messages are kept in memory, counted as unsaved, and saved once there is room', (t) =>
  withSmallDisk(t, async (disk) => {
    const dir = disk.file('outbox');
    const box = Outbox.open(dir, opts({ fsyncMs: 1000 }));
    box.put('score', 't/score', JSON.stringify({ seq: 0 }));
    disk.fill();
    // More than the slack of the segment's last page, so the disk refuses some of them.
    const pad = 'x'.repeat(300);
    for (let seq = 1; seq < 100; seq++) box.put('score', 't/score', JSON.stringify({ seq, pad }));
    const full = box.stats();
    assert.ok(full.unsaved > 0, `unsaved: ${full.unsaved}`);
    assert.ok(full.writeFailures > 0, `writeFailures: ${full.writeFailures}`);
    assert.match(box.diskError ?? '', /ENOSPC/);
    // Every message is still delivered while the daemon runs, in order.
    const taken = box.take(1000);
    assert.deepEqual(taken.map((m) => seqOf(m.payload)), [...Array(100).keys()]);
    // Acks cannot be written either; the broker has those messages, so nothing may throw.
    for (const m of taken.slice(0, 50)) box.ack(m.id);
    assert.equal(box.size, 50);

    disk.free();
    box.put('score', 't/score', JSON.stringify({ seq: 100 }));
    assert.equal(box.stats().unsaved, 0);
    assert.equal(box.diskError, undefined);
    box.close();

    // What was held in memory is on disk now; a torn record was cut off, not left in the way.
    const again = Outbox.open(dir, opts());
    const replayed = seqs(again);
    assert.deepEqual(replayed.filter((s) => s >= 50), [...Array(51).keys()].map((i) => i + 50));
    assert.equal(again.stats().corruptRecords, 0);
    again.close();
  }));
