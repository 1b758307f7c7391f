/**
 * Per-camera score sequence numbers that survive restarts, crashes and power cuts. `seq`
 * numbers the score messages of a camera from 0 without gaps: the next number is committed to
 * disk after its message was handed to the link, so that a crash in between never skips one.
 * Such a crash leaves the message in the link's on-disk queue with a number this file does not
 * count yet; at start the camera asks the link for it (FleetLink.queuedByLastRun) and goes on
 * after it (skipPast), so that the number does not label a second, different score.
 *
 * The file holds two fixed-width slots, each one JSON line with a checksum, and a commit
 * rewrites the slot the previous commit did not touch (pwrite + fdatasync, no new file name,
 * no size change). A write torn by a power cut therefore leaves the other slot, one number
 * behind, which repeats one number. Replacing a whole file per commit (temp file, fsync,
 * rename, folder fsync) cost 9 thread-pool operations and two syncs per scored frame.
 */
import { createHash } from 'node:crypto';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FileWriteError, readStateFile, writeFileAtomic } from '../util/atomic-write.js';
import { errorMessage } from '../util/log.js';

/** One slot: one JSON line padded with spaces. Camera names are at most 64 characters. */
const SLOT_BYTES = 160;

const SlotSchema = z.strictObject({ camera: z.string(), next: z.number().int().min(0), check: z.string() });
/** What versions before the two-slot file wrote: one JSON object, no checksum. */
const LegacySchema = z.strictObject({ camera: z.string(), next: z.number().int().min(0) });

export class SeqStoreError extends Error {
  override readonly name = 'SeqStoreError';
}

function checksum(camera: string, next: number): string {
  return createHash('sha256').update(`${camera}\0${next}`).digest('hex').slice(0, 16);
}

function slotLine(camera: string, next: number): Buffer {
  const line = Buffer.alloc(SLOT_BYTES, ' ');
  line.write(JSON.stringify({ camera, next, check: checksum(camera, next) }));
  line[SLOT_BYTES - 1] = 0x0a;
  return line;
}

/** The highest valid `next` in the file's slots (undefined when none is valid), and whose slots they are. */
function readSlots(text: string): { next: number | undefined; cameras: string[] } {
  const found: number[] = [];
  const cameras: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue; // a torn slot
    }
    const slot = SlotSchema.safeParse(value);
    if (slot.success && slot.data.check === checksum(slot.data.camera, slot.data.next)) {
      found.push(slot.data.next);
      cameras.push(slot.data.camera);
      continue;
    }
    const legacy = LegacySchema.safeParse(value);
    if (legacy.success) {
      found.push(legacy.data.next);
      cameras.push(legacy.data.camera);
    }
  }
  return { next: found.length ? Math.max(...found) : undefined, cameras };
}

export class CameraSeq {
  #next: number;
  #handle: FileHandle | undefined;

  private constructor(
    readonly camera: string,
    readonly file: string,
    next: number,
  ) {
    this.#next = next;
  }

  /** Opens `<stateDir>/seq/<camera>.json`; a missing file starts at 0, a corrupt one is an error. */
  static async open(stateDir: string, camera: string): Promise<CameraSeq> {
    const file = join(stateDir, 'seq', `${camera}.json`);
    const text = await readStateFile(file).catch((err: unknown) => {
      throw new SeqStoreError(errorMessage(err));
    });
    if (text === undefined) return new CameraSeq(camera, file, 0);
    const { next, cameras } = readSlots(text);
    // Refuse rather than restart at 0: silently reusing numbers would break consumers' gap checks.
    if (next === undefined) throw new SeqStoreError(`${file}: not a sequence file (no valid slot); fix or delete it (deleting it restarts ${camera}'s seq after the newest of its scores still in the MQTT outbox, or at 0)`);
    const other = cameras.find((c) => c !== camera);
    if (other !== undefined) throw new SeqStoreError(`${file}: belongs to camera "${other}", not "${camera}"`);
    return new CameraSeq(camera, file, next);
  }

  /** The number the next score message gets. */
  get next(): number {
    return this.#next;
  }

  /** Marks `seq` as used (its message is on its way) and persists the following number. */
  async commit(seq: number): Promise<void> {
    if (seq !== this.#next) throw new SeqStoreError(`camera ${this.camera}: committing seq ${seq} but ${this.#next} is next`);
    this.#next = seq + 1;
    const handle = this.#handle ?? (await this.#openForCommits());
    await handle.write(slotLine(this.camera, this.#next), 0, SLOT_BYTES, (this.#next % 2) * SLOT_BYTES);
    await handle.datasync();
  }

  /**
   * Marks `seq` as used when it is at or past the next number (a message with it went out
   * although this file never recorded it) and persists the one after it; false when `seq`
   * was already counted.
   */
  async skipPast(seq: number): Promise<boolean> {
    if (seq < this.#next) return false;
    this.#next = seq;
    await this.commit(seq);
    return true;
  }

  /** Releases the file; a later commit opens it again. */
  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  /**
   * Replaces the file (atomically) with both slots holding the last committed number, once
   * per open, and keeps it open for the in-place commits. This also turns a file of the
   * one-slot format into the two-slot one.
   *
   * The replacement needs room for a second copy; on a full disk a file that already is a
   * two-slot one with the last number in the slot the next commit leaves alone is used as
   * it is (its in-place commits need no new blocks), so that seq goes on being saved.
   */
  async #openForCommits(): Promise<FileHandle> {
    const previous = this.#next - 1;
    try {
      await writeFileAtomic(this.file, Buffer.concat([slotLine(this.camera, previous), slotLine(this.camera, previous)]));
    } catch (err) {
      if (!(await this.#usableInPlace(previous))) throw new SeqStoreError(`${this.file}: cannot save seq (${err instanceof FileWriteError ? err.reason : String(err)})`);
    }
    this.#handle = await open(this.file, 'r+');
    return this.#handle;
  }

  async #usableInPlace(previous: number): Promise<boolean> {
    const bytes = await readFile(this.file).catch(() => undefined);
    if (bytes?.length !== 2 * SLOT_BYTES) return false;
    // The slot the next commit leaves alone must hold the last number, or a torn commit would lose it.
    const keep = (previous % 2) * SLOT_BYTES;
    return previous < 0 || bytes.subarray(keep, keep + SLOT_BYTES).equals(slotLine(this.camera, previous));
  }
}
