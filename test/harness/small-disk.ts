/**
 * A real, small file system (a size-limited tmpfs) that tests fill up: the state dir of an
 * edge board with a full SD card. ENOSPC cannot be faked convincingly (short writes, a
 * create that succeeds while the write fails), so these tests use the kernel's.
 *
 * Mounting needs root. CI runs as root, so there a failed mount fails the test; anywhere
 * else the test is skipped, saying why.
 */
import { execFileSync } from 'node:child_process';
import { statfsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir, type TempDir } from './tmp.js';

export interface SmallDisk {
  readonly path: string;
  file(...parts: string[]): string;
  /** Fills the disk so that at most `leaveBytes` stay free (a filler file, removed by free()). */
  fill(leaveBytes?: number): void;
  /** Deletes the filler: the disk has room again. */
  free(): void;
  freeBytes(): number;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** The reason a small-disk test cannot run here, or undefined when it can (it runs as root). */
export const smallDiskSkip: string | false = isRoot() ? false : 'mounting a size-limited tmpfs needs root (CI runs these as root)';

/**
 * Runs `fn` with a fresh tmpfs of `sizeBytes` mounted on a temporary folder, unmounted and
 * removed afterwards even when `fn` fails. Skips `t` when not root.
 */
export async function withSmallDisk<T>(t: TestContext, fn: (disk: SmallDisk) => Promise<T>, sizeBytes = 2 << 20): Promise<T | undefined> {
  if (!isRoot()) {
    t.skip(smallDiskSkip || undefined);
    return undefined;
  }
  const dir: TempDir = await tempDir('moead-small-disk-');
  // As root a failed mount is a broken test machine, not a reason to skip: it throws.
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir.path], { stdio: 'pipe' });
  const filler = join(dir.path, '.filler');
  let fillers = 0;
  const freeBytes = (): number => {
    const s = statfsSync(dir.path);
    return s.bavail * s.bsize;
  };
  const disk: SmallDisk = {
    path: dir.path,
    file: (...parts) => join(dir.path, ...parts),
    fill(leaveBytes = 0) {
      const bytes = freeBytes() - leaveBytes;
      if (bytes <= 0) return;
      // fallocate reserves the blocks without writing them; each call adds a filler file.
      execFileSync('fallocate', ['-l', String(bytes), `${filler}${fillers++}`], { stdio: 'pipe' });
    },
    free() {
      for (let i = 0; i < fillers; i++) unlinkSync(`${filler}${i}`);
      fillers = 0;
    },
    freeBytes,
  };
  let result: T;
  try {
    result = await fn(disk);
  } catch (err) {
    // The test's own failure is the one to report; a mount it left busy is detached anyway.
    await unmount(dir.path).catch(() => undefined);
    await dir.remove();
    throw err;
  }
  await unmount(dir.path);
  await dir.remove();
  return result;
}

/**
 * Unmounts, waiting a little for descriptors closed off the event loop (the outbox syncs and
 * closes files on libuv's pool); a mount still busy after that is detached lazily so that no
 * test leaves one behind, and the test fails.
 */
async function unmount(path: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      execFileSync('umount', [path], { stdio: 'pipe' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  execFileSync('umount', ['-l', path], { stdio: 'pipe' });
  throw new Error(`${path} was still busy after 1 s: something kept a file open on it`);
}
