/** Temporary folders that tests create and always remove, even after a failure. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  /** Path of a name inside the folder. */
  file(...parts: string[]): string;
  remove(): Promise<void>;
}

export async function tempDir(prefix = 'moead-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    file: (...parts) => join(path, ...parts),
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

/** Runs `fn` with a fresh temporary folder and removes it afterwards. */
export async function withTempDir<T>(fn: (dir: TempDir) => Promise<T>, prefix?: string): Promise<T> {
  const dir = await tempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await dir.remove();
  }
}
