/**
 * Opens a bundle folder: parses manifest.json against the manifest contract and checks
 * that the model file it names (and each reference frame that lists them) is the one the
 * toolchain wrote (size and sha256), so a truncated download or a tampered file is refused
 * before any session touches it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { z } from 'zod';
import type { LoadedBundle } from '../inference/backend.js';
import { ManifestSchema, type Manifest } from './manifest.js';
import { formatKeyPath } from '../util/key-path.js';

export const MANIFEST_FILE = 'manifest.json';

/** Why a bundle was refused; `file` is the path the problem is in. */
export class BundleError extends Error {
  override readonly name = 'BundleError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

function describeIssues(issues: z.core.$ZodIssue[]): string {
  return issues.map((issue) => `${formatKeyPath(issue.path)}: ${issue.message}`).join('; ');
}

/** Parses manifest text; errors name the file and every bad key path. */
export function parseManifest(text: string, file: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BundleError(file, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) throw new BundleError(file, `invalid manifest: ${describeIssues(parsed.error.issues)}`);
  return parsed.data;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Resolves a manifest path inside the bundle. The schema already refuses ".." and absolute
 * paths; this also follows symlinks, so a link pointing out of the bundle is refused too.
 */
async function resolveInside(dir: string, file: string, manifestFile: string): Promise<string> {
  const root = await realpath(dir);
  let target: string;
  try {
    target = await realpath(join(root, file));
  } catch (err) {
    // Only ENOENT means missing; EACCES, ENOTDIR or ELOOP say what to fix instead.
    const code = (err as NodeJS.ErrnoException).code;
    throw new BundleError(join(dir, file), code === 'ENOENT' ? `missing (named by ${manifestFile})` : `unreadable (${code ?? String(err)}; named by ${manifestFile})`);
  }
  const rel = relative(root, target);
  // Outside means a first segment of exactly "..": a file named "..ref.png" is inside.
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new BundleError(join(dir, file), `resolves outside the bundle folder ${root}`);
  }
  return target;
}

/** Checks that a file the manifest names has the size and sha256 the manifest says. */
export async function verifyBundleFile(
  dir: string,
  entry: { file: string; bytes: number; sha256: string },
  manifestFile: string,
): Promise<string> {
  const path = await resolveInside(dir, entry.file, manifestFile);
  const info = await stat(path);
  if (!info.isFile()) throw new BundleError(path, 'is not a regular file');
  if (info.size !== entry.bytes) {
    throw new BundleError(path, `size ${info.size} bytes, but the manifest says ${entry.bytes} (truncated or replaced?)`);
  }
  const digest = await sha256File(path);
  if (digest !== entry.sha256) {
    throw new BundleError(path, `sha256 ${digest} does not match the manifest's ${entry.sha256} (corrupted or tampered)`);
  }
  return path;
}

/** Reads and checks a bundle folder. The fp32 model, when listed, is only checked on request. */
export async function loadBundle(dir: string, options: { verifyFp32?: boolean } = {}): Promise<LoadedBundle> {
  const absDir = resolve(dir);
  const manifestFile = join(absDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BundleError(manifestFile, code === 'ENOENT' ? 'missing: not a model bundle folder' : `unreadable (${code ?? String(err)})`);
  }
  const manifest = parseManifest(text, manifestFile);
  const modelPath = await verifyBundleFile(absDir, manifest.model, manifestFile);
  if (options.verifyFp32 && manifest.fp32_model) await verifyBundleFile(absDir, manifest.fp32_model, manifestFile);
  for (const frame of manifest.reference_frames) {
    // Frames from older bundles carry no sha256/bytes: for them, only check they are inside.
    if (frame.sha256 !== undefined && frame.bytes !== undefined) {
      await verifyBundleFile(absDir, { file: frame.file, sha256: frame.sha256, bytes: frame.bytes }, manifestFile);
    } else {
      await resolveInside(absDir, frame.file, manifestFile);
    }
  }
  return { dir: absDir, manifest, modelPath };
}
