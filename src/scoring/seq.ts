/**
 * Per-camera score sequence numbers that survive restarts and crashes. `seq` numbers the
 * score messages of a camera from 0 without gaps: the next number is committed to disk
 * after its message was handed to the link, so a crash in between repeats a number (a
 * duplicate a consumer can drop, like any QoS 1 redelivery) and never skips one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-write.js';

const SeqFileSchema = z.strictObject({ camera: z.string(), next: z.number().int().min(0) });

export class SeqStoreError extends Error {
  override readonly name = 'SeqStoreError';
}

export class CameraSeq {
  #next: number;

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
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new CameraSeq(camera, file, 0);
      throw new SeqStoreError(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
    }
    let parsed: z.infer<typeof SeqFileSchema>;
    try {
      parsed = SeqFileSchema.parse(JSON.parse(text));
    } catch {
      // Refuse rather than restart at 0: silently reusing numbers would break consumers' gap checks.
      throw new SeqStoreError(`${file}: not a sequence file ({"camera", "next"}); fix or delete it (deleting restarts ${camera}'s seq at 0)`);
    }
    if (parsed.camera !== camera) throw new SeqStoreError(`${file}: belongs to camera "${parsed.camera}", not "${camera}"`);
    return new CameraSeq(camera, file, parsed.next);
  }

  /** The number the next score message gets. */
  get next(): number {
    return this.#next;
  }

  /** Marks `seq` as used (its message is on its way) and persists the following number. */
  async commit(seq: number): Promise<void> {
    if (seq !== this.#next) throw new SeqStoreError(`camera ${this.camera}: committing seq ${seq} but ${this.#next} is next`);
    this.#next = seq + 1;
    await writeFileAtomic(this.file, `${JSON.stringify({ camera: this.camera, next: this.#next })}\n`);
  }
}
