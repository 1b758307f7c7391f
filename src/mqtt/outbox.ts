/**
 * The persistent outgoing queue for QoS 1 scores and events: nothing the daemon hands to
 * the link is lost while the broker is away, across a SIGKILL, or (within fsyncMs) a power cut.
 *
 * On disk: numbered segment files `seg-<n>.log` of JSON lines, appended only:
 *   {"o":"p","i":<id>,"k":"score"|"event","t":<topic>,"p":<payload>}   a message was queued
 *   {"o":"a","i":<id>}                                                 the broker acknowledged it
 *   {"o":"d","i":<id>}                                  it was dropped (queue full, or refused by the broker)
 * Replay (open) reads the segments in order; the pending messages are the puts not followed
 * by an ack or drop. Ids grow monotonically, so delivery order is id order.
 *
 * Durability (fsync policy): every record is written with a write(2) before put() returns, so
 * it is in the kernel's page cache and survives the process being killed (SIGKILL, OOM).
 * Surviving a power cut needs fdatasync, which costs milliseconds on SD cards and eMMC; a put
 * is therefore synced at most fsyncMs after it was written (0 = before put() returns). That
 * timed sync runs on libuv's pool, off the event loop: a second's worth of appends took
 * 17 ms to sync here, and on an SD card far longer, time the daemon spends decoding frames.
 * Acks and drops are never synced on their own: losing one only re-sends a message the
 * subscriber already has (it de-duplicates by seq), which is harmless, never a loss.
 * A torn last line (power cut mid-write) is cut off at replay.
 *
 * Space: a segment is closed past segmentBytes. Closed segments are deleted from the oldest
 * while every put they hold is resolved (only a prefix, so an ack record is never deleted
 * before the put it resolves) and none holds the newest put of a topic: that one, delivered or
 * not, is what the next open tells a camera about the seq and event the previous run queued
 * (lastPutAtOpen), and a SIGKILL may come after the broker acknowledged it but before the
 * camera's own files recorded it. When a long-pending message pins old segments, the pending
 * messages (and each topic's newest put, with its ack if it has one) are rewritten into one
 * fresh segment (compaction) and the old ones deleted.
 *
 * A full disk (or any other write error) never makes a put, ack or drop throw: the daemon
 * keeps scoring and delivering. A put the disk refused stays queued in memory only (`unsaved`:
 * lost if the process stops before there is room), and is written at the next put the disk
 * takes again. A record the disk took only part of is cut off, so the next one starts on a
 * clean line; an ack or drop the disk refused only means a re-send after a restart.
 */
import { close, closeSync, fdatasync, fdatasyncSync, fsync, ftruncateSync, mkdirSync, open, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export type OutboxKind = 'score' | 'event';

export interface OutboxMessage {
  readonly id: number;
  readonly kind: OutboxKind;
  readonly topic: string;
  readonly payload: string;
}

export interface OutboxOptions {
  maxMessages: number;
  segmentBytes: number;
  fsyncMs: number;
}

export interface OutboxStats {
  depth: number;
  droppedScores: number;
  segments: number;
  /** Lines that could not be read at replay (torn tail or damage), skipped. */
  corruptRecords: number;
  /** Timed fdatasyncs the kernel refused (an I/O error: what was written may not survive a power cut). */
  syncFailures: number;
  /** Messages the broker refused for good (e.g. not authorized for the topic), taken off the queue. */
  refused: number;
  /** Queued messages the disk refused (full): held in memory only until a later write succeeds. */
  unsaved: number;
  /** Records (puts, acks, drops) the disk refused, since open. */
  writeFailures: number;
}

const RecordSchema = z.discriminatedUnion('o', [
  z.strictObject({ o: z.literal('p'), i: z.number().int().min(0), k: z.enum(['score', 'event']), t: z.string().min(1), p: z.string() }),
  z.strictObject({ o: z.literal('a'), i: z.number().int().min(0) }),
  z.strictObject({ o: z.literal('d'), i: z.number().int().min(0) }),
]);

const SEGMENT = /^seg-(\d{10})\.log$/;
const segmentName = (n: number): string => `seg-${String(n).padStart(10, '0')}.log`;
/** Segments kept before pending messages are compacted into one. */
const MAX_SEGMENTS = 4;

interface Pending extends OutboxMessage {
  segment: number;
}

type OutboxRecord = z.infer<typeof RecordSchema>;

/** One line of a segment file. */
const recordLine = (rec: OutboxRecord): Buffer => Buffer.from(`${JSON.stringify(rec)}\n`);
/** The put record of a queued message (written at put, again after a refused write, at compaction). */
const putRecord = (m: OutboxMessage): OutboxRecord => ({ o: 'p', i: m.id, k: m.kind, t: m.topic, p: m.payload });

export class Outbox {
  readonly #dir: string;
  readonly #opts: OutboxOptions;
  /** Insertion-ordered by id, so iteration is delivery order. */
  readonly #pending = new Map<number, Pending>();
  /** Ids of pending scores in id order, for drop-oldest; stale entries are skipped lazily. */
  #scoreIds: number[] = [];
  #scoreHead = 0;
  readonly #inflight = new Set<number>();
  /** Refused for now by the broker (e.g. quota exceeded): not sent again until the next session. */
  readonly #parked = new Set<number>();
  /** Unresolved puts, and each topic's newest put (see #newest), per segment number. */
  readonly #liveBySegment = new Map<number, number>();
  /** The newest put of each topic (resolved or not) and the segment that holds it: kept on disk until a newer one is. */
  readonly #newest = new Map<string, Pending>();
  #segments: number[] = [];
  #fd = -1;
  #activeBytes = 0;
  #nextId = 0;
  #droppedScores = 0;
  #corrupt = 0;
  #syncFailures = 0;
  #refused = 0;
  /** Pending puts not on disk (the write failed), in id order; written again at the next put. */
  readonly #unsaved = new Set<number>();
  #writeFailures = 0;
  /** Why the last put could not be written; undefined once a put is written again. */
  #diskError: string | undefined;
  #lastWriteError = '';
  #syncTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The newest put per topic in the files replayed at open, delivered or not (see lastPutAtOpen). */
  readonly #lastPutAtOpen = new Map<string, { id: number; payload: string }>();

  private constructor(dir: string, opts: OutboxOptions) {
    this.#dir = dir;
    this.#opts = opts;
  }

  /** Opens (creating if needed) the queue in `dir` and replays what a previous run left. */
  static open(dir: string, opts: OutboxOptions): Outbox {
    mkdirSync(dir, { recursive: true });
    const box = new Outbox(dir, opts);
    box.#replay();
    return box;
  }

  /**
   * The payload of the newest message for `topic` in the queue's files when it was opened,
   * whether it was still pending or already acknowledged. A previous run killed just after
   * queueing a message left its only trace here (see CameraSeq: a score's seq is saved after
   * its message is queued).
   */
  lastPutAtOpen(topic: string): string | undefined {
    return this.#lastPutAtOpen.get(topic)?.payload;
  }

  get size(): number {
    return this.#pending.size;
  }

  stats(): OutboxStats {
    return {
      depth: this.#pending.size, droppedScores: this.#droppedScores, segments: this.#segments.length, corruptRecords: this.#corrupt,
      syncFailures: this.#syncFailures, refused: this.#refused, unsaved: this.#unsaved.size, writeFailures: this.#writeFailures,
    };
  }

  /**
   * Why the disk refused the last put (e.g. `ENOSPC: no space left on device, write`); undefined
   * while puts are written. Acks and drops do not change it: a short one may fit where a put does not.
   */
  get diskError(): string | undefined {
    return this.#diskError;
  }

  /** Queued messages held in memory only (see stats().unsaved). */
  get unsaved(): number {
    return this.#unsaved.size;
  }

  /**
   * Queues a message durably (see the fsync policy above). When the queue is full the oldest
   * pending score not in flight is dropped; a score arriving when none can be dropped is itself
   * dropped; an event is always kept, even past maxMessages. Returns undefined for a dropped score.
   */
  put(kind: OutboxKind, topic: string, payload: string): OutboxMessage | undefined {
    this.#assertOpen();
    if (this.#pending.size >= this.#opts.maxMessages && !this.#dropOldestScore() && kind === 'score') {
      this.#droppedScores += 1;
      return undefined;
    }
    // Earlier puts the disk refused go first, while this one may still find room.
    this.#saveUnsaved();
    const message: Pending = { id: this.#nextId++, kind, topic, payload, segment: this.#active() };
    // Tracked before the append: a rotation inside it must see this put as live in its segment.
    this.#track(message);
    this.#pinNewest({ ...message });
    if (!this.#append(putRecord(message))) {
      this.#unsaved.add(message.id);
      this.#diskError = this.#lastWriteError;
      return message;
    }
    this.#diskError = undefined;
    if (this.#opts.fsyncMs === 0) this.#syncNow();
    else this.#scheduleSync();
    return message;
  }

  /** The oldest pending messages not already handed out, marked in flight; at most `limit`. */
  take(limit: number): OutboxMessage[] {
    const out: OutboxMessage[] = [];
    for (const m of this.#pending.values()) {
      if (out.length >= limit) break;
      if (this.#inflight.has(m.id) || this.#parked.has(m.id)) continue;
      this.#inflight.add(m.id);
      out.push(m);
    }
    return out;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** The broker acknowledged the message: it leaves the queue. Unknown ids are ignored. */
  ack(id: number): void {
    this.#inflight.delete(id);
    if (this.#closed || !this.#pending.has(id)) return;
    // Resolved before the append: a compaction inside it must not copy the acknowledged put.
    this.#resolve(id);
    this.#append({ o: 'a', i: id });
  }

  /**
   * The broker answered the message with an error reason code. A refusal for good (the
   * session may not publish there, or the broker cannot take that payload) takes it off the
   * queue, counted; sending it again would be refused again and hold an in-flight slot forever.
   * Anything else (quota exceeded, an unspecified error) keeps it queued but not sent again
   * until the next session, so one refused message never blocks the rest.
   */
  refuse(id: number, final: boolean): void {
    this.#inflight.delete(id);
    if (this.#closed || !this.#pending.has(id)) return;
    if (!final) {
      this.#parked.add(id);
      return;
    }
    this.#refused += 1;
    this.#resolve(id);
    this.#append({ o: 'd', i: id });
  }

  /** The connection went away: everything in flight or set aside is sent again, in order, on the next one. */
  releaseInflight(): void {
    this.#inflight.clear();
    this.#parked.clear();
  }

  /** Syncs and closes the active segment; the queue stays on disk for the next open(). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#syncTimer);
    if (this.#fd >= 0) {
      this.#syncNow();
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }

  // ---- internals ----------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new Error(`outbox ${this.#dir} is closed`);
  }

  #replay(): void {
    const numbers = readdirSync(this.#dir).flatMap((f) => {
      const m = SEGMENT.exec(f);
      return m ? [Number(m[1])] : [];
    }).sort((a, b) => a - b);
    const resolved = new Set<number>();
    const puts = new Map<number, Pending>();
    const newest = new Map<string, Pending>();
    let maxId = -1;
    for (const n of numbers) {
      const path = join(this.#dir, segmentName(n));
      const text = readFileSync(path, 'utf8');
      const lastNewline = text.lastIndexOf('\n');
      if (lastNewline < text.length - 1) {
        // A torn final record (power cut mid-write): cut it off so appends start on a clean line.
        this.#corrupt += 1;
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, lastNewline + 1)));
        closeSync(fd);
      }
      for (const line of text.slice(0, lastNewline + 1).split('\n')) {
        if (line === '') continue;
        let rec: z.infer<typeof RecordSchema>;
        try {
          rec = RecordSchema.parse(JSON.parse(line));
        } catch {
          this.#corrupt += 1;
          continue;
        }
        maxId = Math.max(maxId, rec.i);
        if (rec.o === 'p') {
          // A put seen twice (compaction interrupted before old segments were deleted) keeps its first segment.
          if (!resolved.has(rec.i) && !puts.has(rec.i)) puts.set(rec.i, { id: rec.i, kind: rec.k, topic: rec.t, payload: rec.p, segment: n });
          // By id, not by file order: compaction rewrites old puts into a newer segment.
          if (rec.i >= (this.#lastPutAtOpen.get(rec.t)?.id ?? -1)) {
            this.#lastPutAtOpen.set(rec.t, { id: rec.i, payload: rec.p });
            newest.set(rec.t, { id: rec.i, kind: rec.k, topic: rec.t, payload: rec.p, segment: n });
          }
        } else {
          resolved.add(rec.i);
          puts.delete(rec.i);
        }
      }
    }
    this.#segments = numbers;
    this.#nextId = maxId + 1;
    for (const m of [...puts.values()].sort((a, b) => a.id - b.id)) this.#track(m);
    for (const m of newest.values()) this.#pinNewest(m);
    // Appends always go to a fresh segment: the last one may have been written by a process
    // that died, and starting anew keeps "prefix of resolved segments" simple to reason about.
    this.#rotate();
  }

  #track(m: Pending): void {
    this.#pending.set(m.id, m);
    if (m.kind === 'score') this.#scoreIds.push(m.id);
    this.#countLive(m.segment, +1);
  }

  /**
   * Makes `m` its topic's newest put: its segment stays until a newer put of the topic is
   * written (the one before is let go), whether or not the broker has acknowledged it.
   */
  #pinNewest(m: Pending): void {
    const before = this.#newest.get(m.topic);
    if (before !== undefined) this.#countLive(before.segment, -1);
    this.#newest.set(m.topic, m);
    this.#countLive(m.segment, +1);
  }

  /** Pending puts counted per segment: a segment with none left can be deleted. */
  #countLive(segment: number, delta: 1 | -1): void {
    const live = (this.#liveBySegment.get(segment) ?? 0) + delta;
    if (live > 0) this.#liveBySegment.set(segment, live);
    else this.#liveBySegment.delete(segment);
  }

  #resolve(id: number): void {
    const m = this.#pending.get(id);
    if (!m) return;
    this.#pending.delete(id);
    this.#parked.delete(id);
    this.#unsaved.delete(id);
    this.#countLive(m.segment, -1);
    this.#deleteResolvedPrefix();
  }

  #dropOldestScore(): boolean {
    while (this.#scoreHead < this.#scoreIds.length) {
      const id = this.#scoreIds[this.#scoreHead]!;
      if (!this.#pending.has(id)) {
        this.#scoreHead += 1;
        continue;
      }
      if (this.#inflight.has(id)) {
        // In flight scores are about to be acknowledged; look for the next one, keeping this slot.
        const next = this.#scoreIds.slice(this.#scoreHead + 1).find((x) => this.#pending.has(x) && !this.#inflight.has(x));
        if (next === undefined) return false;
        this.#drop(next);
        return true;
      }
      this.#scoreHead += 1;
      this.#drop(id);
      return true;
    }
    return false;
  }

  #drop(id: number): void {
    this.#droppedScores += 1;
    this.#resolve(id);
    this.#append({ o: 'd', i: id });
    if (this.#scoreHead > 4096 && this.#scoreHead * 2 > this.#scoreIds.length) {
      this.#scoreIds = this.#scoreIds.slice(this.#scoreHead);
      this.#scoreHead = 0;
    }
  }

  #active(): number {
    return this.#segments[this.#segments.length - 1]!;
  }

  /** Writes one record; false when the disk refused it (counted, nothing half-written left). */
  #append(rec: OutboxRecord): boolean {
    const line = recordLine(rec);
    try {
      this.#writeAll(line);
    } catch (err) {
      this.#writeFailed(err);
      return false;
    }
    this.#activeBytes += line.length;
    if (this.#activeBytes >= this.#opts.segmentBytes) this.#rotate();
    return true;
  }

  /** writeSync may write only part of the buffer (a disk with a few bytes left) without throwing. */
  #writeAll(line: Buffer): void {
    for (let done = 0; done < line.length; ) done += writeSync(this.#fd, line, done);
  }

  #writeFailed(err: unknown): void {
    this.#writeFailures += 1;
    this.#lastWriteError = err instanceof Error ? err.message : String(err);
    // A torn record would swallow the next one at replay (two records on one line). Shrinking
    // a file needs no free space.
    try {
      ftruncateSync(this.#fd, this.#activeBytes);
    } catch {
      // The descriptor is unusable too; the next write fails and is counted likewise.
    }
  }

  /** Writes the puts the disk refused before, in id order, stopping at the first it refuses again. */
  #saveUnsaved(): void {
    for (const id of this.#unsaved) {
      const m = this.#pending.get(id)!;
      // Counted in the segment it is written to now: the one it was counted in may have been deleted.
      this.#move(m, this.#active());
      if (!this.#append(putRecord(m))) {
        this.#diskError = this.#lastWriteError;
        return;
      }
      this.#unsaved.delete(id);
    }
  }

  #move(m: Pending, segment: number): void {
    if (m.segment === segment) return;
    this.#countLive(m.segment, -1);
    m.segment = segment;
    this.#countLive(segment, +1);
    // Written again into `segment`, it is the newest of its topic there (a put the disk refused may be one).
    const newest = this.#newest.get(m.topic);
    if (newest?.id === m.id) this.#pinNewest({ ...newest, segment });
  }

  #syncNow(): void {
    try {
      fdatasyncSync(this.#fd);
    } catch {
      this.#syncFailures += 1;
    }
  }

  #rotate(): void {
    const n = (this.#segments[this.#segments.length - 1] ?? 0) + 1;
    let fd: number;
    try {
      // Opened before the old one is retired: when the disk refuses a new file, appends go on
      // in the old segment (or fail there, counted) rather than to a closed descriptor.
      fd = openSync(join(this.#dir, segmentName(n)), 'a');
    } catch (err) {
      this.#writeFailed(err);
      return;
    }
    if (this.#fd >= 0) this.#retire(this.#fd);
    this.#fd = fd;
    this.#syncDir();
    this.#segments.push(n);
    this.#activeBytes = 0;
    this.#deleteResolvedPrefix();
    if (this.#segments.length > MAX_SEGMENTS) this.#compact();
  }

  /** Rewrites every pending put into the active (fresh) segment and deletes all older segments. */
  #compact(): void {
    const active = this.#active();
    let bytes = 0;
    // Each topic's newest put that is already resolved goes forward too, with an ack so that it is not sent again.
    const resolvedNewest = [...this.#newest.values()].filter((m) => !this.#pending.has(m.id));
    const lines = [...[...this.#pending.values()].map(putRecord), ...resolvedNewest.flatMap((m): OutboxRecord[] => [putRecord(m), { o: 'a', i: m.id }])].map(recordLine);
    try {
      for (const line of lines) {
        this.#writeAll(line);
        bytes += line.length;
      }
      // The copies must be on disk before the originals go.
      fdatasyncSync(this.#fd);
    } catch (err) {
      // The disk refused the copies: the originals stay, and the copies written are cut off.
      this.#writeFailed(err);
      return;
    }
    this.#activeBytes += bytes;
    this.#liveBySegment.clear();
    for (const m of this.#pending.values()) m.segment = active;
    // Every pending put is on disk now, the unsaved ones included.
    this.#unsaved.clear();
    for (const m of this.#newest.values()) m.segment = active;
    const live = this.#pending.size + this.#newest.size;
    if (live > 0) this.#liveBySegment.set(active, live);
    for (const n of this.#segments.slice(0, -1)) unlinkSync(join(this.#dir, segmentName(n)));
    this.#segments = [active];
    this.#syncDir();
  }

  #deleteResolvedPrefix(): void {
    let removed = false;
    while (this.#segments.length > 1 && !this.#liveBySegment.has(this.#segments[0]!)) {
      unlinkSync(join(this.#dir, segmentName(this.#segments.shift()!)));
      removed = true;
    }
    if (removed) this.#syncDir();
  }

  /**
   * A segment the rotation closed: synced on libuv's pool, then its descriptor closed. With
   * fsyncMs 0 each of its puts was synced when written, and acks and drops need no sync.
   */
  #retire(fd: number): void {
    if (this.#opts.fsyncMs === 0) {
      closeSync(fd);
      return;
    }
    fdatasync(fd, (err) => {
      if (err) this.#syncFailures += 1;
      close(fd, () => undefined);
    });
  }

  #syncDir(): void {
    // A new or removed file name is durable only once its directory is synced. Errors are
    // ignored: some filesystems refuse fsync on a directory, and the data files are synced.
    open(this.#dir, 'r', (openErr, fd) => {
      if (openErr) return;
      fsync(fd, () => close(fd, () => undefined));
    });
  }

  #scheduleSync(): void {
    if (this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      if (this.#closed || this.#fd < 0) return;
      const fd = this.#fd;
      // A rotation or close meanwhile syncs that segment itself before closing it, so an error
      // on a descriptor that is no longer the active one (closed, or reused) means nothing.
      fdatasync(fd, (err) => {
        if (err && fd === this.#fd && !this.#closed) this.#syncFailures += 1;
      });
    }, this.#opts.fsyncMs);
    this.#syncTimer.unref();
  }
}

/** Size on disk of the queue's segments, for telemetry. */
export function outboxBytes(dir: string): number {
  return readdirSync(dir).filter((f) => SEGMENT.test(f)).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}
