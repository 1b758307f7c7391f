/**
 * A camera's open event on disk, so that one a crash left open is ended at the next start.
 *
 * A clean stop ends an open event itself (EventTracker.close). A SIGKILL, an OOM kill or a
 * power cut did not: the `start` was delivered, no `end` ever followed, and every consumer that
 * pairs them (an alarm, a counter of open incidents) waited for it forever, while the restarted
 * daemon named its next event differently. Now the open event is kept in
 * `<stateDir>/events/<camera>.json` from its start to its end, and a start that finds one
 * publishes its `end`. The file is written just after the event's message is queued; what a
 * kill in between leaves, the newest event in the MQTT outbox tells (CameraPipeline).
 *
 * The start is written whole and durably (atomic replace, fsync). Later frames of the event
 * update its peak and length in place (one fixed-width record, pwrite, no fsync): a crash of
 * the process keeps them (the page cache survives it), a power cut may lose the latest ones or
 * tear the record, which is then reported once and removed. The end removes the file.
 */
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readStateFile, removeLeftoverTemps, writeFileAtomic } from '../util/atomic-write.js';
import { errorMessage } from '../util/log.js';

/** One JSON line padded with spaces: camera names are at most 64 characters, so an id at most 81. */
const RECORD_BYTES = 512;

const RecordSchema = z.strictObject({
  camera: z.string(),
  id: z.string().min(1),
  /** The latest frame known to belong to the event: the time its `end` is stamped with. */
  ts: z.string().min(1),
  peak_score: z.number(),
  frames: z.number().int().min(1),
});

/** What an open event's `end` needs. */
export type OpenEventRecord = Omit<z.infer<typeof RecordSchema>, 'camera'>;

function recordLine(camera: string, rec: OpenEventRecord): Buffer {
  const line = Buffer.alloc(RECORD_BYTES, ' ');
  line.write(JSON.stringify({ camera, ...rec }));
  line[RECORD_BYTES - 1] = 0x0a;
  return line;
}

export class OpenEventFile {
  #handle: FileHandle | undefined;
  /** The id and figures last written, so an unchanged event is not written again. */
  #saved: OpenEventRecord | undefined;
  #left: OpenEventRecord | undefined;

  private constructor(
    readonly camera: string,
    readonly file: string,
    left: OpenEventRecord | undefined,
    /** Why a file that was there could not be read back (torn by a power cut, someone else's). */
    readonly problem: string | undefined,
  ) {
    this.#left = left;
    this.#saved = left;
  }

  /** Opens `<stateDir>/events/<camera>.json`; what a previous run left open is `left`. */
  static async open(stateDir: string, camera: string): Promise<OpenEventFile> {
    const file = join(stateDir, 'events', `${camera}.json`);
    let text: string | undefined;
    try {
      text = await readStateFile(file);
    } catch (err) {
      return new OpenEventFile(camera, file, undefined, errorMessage(err));
    }
    if (text === undefined) return new OpenEventFile(camera, file, undefined, undefined);
    let parsed: z.infer<typeof RecordSchema> | undefined;
    try {
      parsed = RecordSchema.parse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || parsed.camera !== camera) {
      return new OpenEventFile(camera, file, undefined, `${file}: not a record of camera ${camera}'s open event (torn by a power cut?); its end cannot be sent`);
    }
    return new OpenEventFile(camera, file, { id: parsed.id, ts: parsed.ts, peak_score: parsed.peak_score, frames: parsed.frames }, undefined);
  }

  /** The event a previous run left open, until `clear()`. */
  get left(): OpenEventRecord | undefined {
    return this.#left;
  }

  /** Records the open event (its start durably, later changes in place). */
  async save(rec: OpenEventRecord): Promise<void> {
    const saved = this.#saved;
    if (saved?.id === rec.id && saved.frames === rec.frames && saved.peak_score === rec.peak_score) return;
    const line = recordLine(this.camera, rec);
    if (this.#handle === undefined || saved?.id !== rec.id) {
      await this.#closeHandle();
      await writeFileAtomic(this.file, line);
      this.#handle = await open(this.file, 'r+');
    } else {
      await this.#handle.write(line, 0, RECORD_BYTES, 0);
    }
    this.#saved = { ...rec };
    this.#left = undefined;
  }

  /** No event is open any more (its end is queued): the file goes. */
  async clear(): Promise<void> {
    this.#left = undefined;
    this.#saved = undefined;
    await this.#closeHandle();
    await rm(this.file, { force: true });
  }

  /** Releases the file; an open event stays recorded for the next start. */
  async close(): Promise<void> {
    await this.#closeHandle();
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}

/**
 * Events left open by a crash under cameras the config no longer has (renamed or removed
 * since): their files are never read by a camera again. Each is named and removed; its `end`
 * is not sent, since publishing for a camera that is gone would announce it again (Home
 * Assistant discovery, a Sparkplug DBIRTH). Returns one line per file, for the log.
 */
export async function dropOrphanedOpenEvents(stateDir: string, cameras: readonly string[]): Promise<string[]> {
  const folder = join(stateDir, 'events');
  const names = await readdir(folder).catch(() => [] as string[]);
  const lines: string[] = [];
  for (const name of names) {
    const camera = name.endsWith('.json') ? name.slice(0, -'.json'.length) : undefined;
    if (camera === undefined || cameras.includes(camera)) continue;
    const file = join(folder, name);
    const left = await OpenEventFile.open(stateDir, camera);
    const what = left.left ? `event ${left.left.id} (peak ${left.left.peak_score.toFixed(4)}, ${left.left.frames} frames, last seen ${left.left.ts})` : 'an open event';
    try {
      await rm(file, { force: true });
      await removeLeftoverTemps(file);
      lines.push(`${file}: ${what} of camera ${camera}, which the config no longer has, was left open when the daemon last ended; its end is not sent, and the file is removed`);
    } catch (err) {
      lines.push(`${file}: ${what} of camera ${camera}, which the config no longer has, was left open; the file could not be removed (${errorMessage(err)})`);
    }
  }
  return lines;
}
