/**
 * Crash-safe file replacement: write a temp file next to the target, fsync it, rename it
 * over the target, fsync the folder. A power cut leaves either the old or the new content,
 * never a torn file (rename is atomic within one file system; the folder fsync makes the
 * rename itself durable).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
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

/** The temp file a replacement of `file` writes first: `.<name>.<pid>.<8 hex digits>.tmp` beside it. */
const tempName = (file: string): string => `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
const TEMP_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/**
 * Deletes the temp files that replacements of `files` left beside them when their process died
 * between creating the temp file and renaming it (a SIGKILL, an OOM kill, a power cut): no
 * later replacement reuses their random names, so each such death would leave one more for
 * good. Call it before this process replaces any of them for the first time. A temp file of
 * another process that is still running is left alone; one named with this process's id
 * cannot be in flight yet, so it is a leftover of an earlier run that had the same id (a
 * container's daemon is often pid 1 at every start). Each folder is read once. Returns the
 * files deleted, for the log; a folder that cannot be read or a file that cannot be deleted
 * is skipped (it costs only disk space).
 */
export async function removeLeftoverTemps(...files: string[]): Promise<string[]> {
  const byFolder = new Map<string, Set<string>>();
  for (const file of files) byFolder.set(dirname(file), (byFolder.get(dirname(file)) ?? new Set()).add(basename(file)));
  const removed: string[] = [];
  for (const [dir, targets] of byFolder) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const match = TEMP_NAME.exec(name);
      if (match?.[1] === undefined || !targets.has(match[1]) || processRunning(Number(match[2]))) continue;
      const path = join(dir, name);
      try {
        await rm(path, { force: true });
        removed.push(path);
      } catch {
        // Left for the next start.
      }
    }
  }
  return removed;
}

/** Whether `pid` is a process other than this one that is running now (EPERM: it runs, under another user). */
function processRunning(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function replace(file: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, tempName(file));
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
