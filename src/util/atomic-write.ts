/**
 * Crash-safe file replacement: write a temp file next to the target, fsync it, rename it
 * over the target, fsync the folder. A power cut leaves either the old or the new content,
 * never a torn file (rename is atomic within one file system; the folder fsync makes the
 * rename itself durable).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errorMessage } from './log.js';

/**
 * A state file's text as a crash-safe replacement left it, or undefined when there is none yet
 * (a first start); any other failure throws, naming the file.
 */
export async function readStateFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: cannot read (${errorMessage(err)})`);
  }
}

/**
 * A replacement that failed, naming the file: ENOSPC and EISDIR name none, and an operator
 * must learn which file to make room for. `reason` is the system's message alone, for callers
 * that name the file in words of their own.
 */
export class FileWriteError extends Error {
  override readonly name = 'FileWriteError';
  constructor(
    readonly file: string,
    readonly reason: string,
    options: { cause: unknown },
  ) {
    super(`${file}: ${reason}`, options);
  }
}

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  try {
    await replace(file, data);
  } catch (err) {
    throw new FileWriteError(file, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

async function replace(file: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
