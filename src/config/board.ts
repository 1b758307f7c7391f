/**
 * Board profiles (boards/<name>.json): what a kind of device can do and how to run on it.
 * The config names a profile (`board:`); the profile supplies backend, providers,
 * precision and threads unless the config's `inference:` section sets them explicitly.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BoardCaptureSchema } from '../capture/board.js';
import { describeIssues } from './errors.js';

export const BOARDS_DIR = fileURLToPath(new URL('../../../boards/', import.meta.url));

/** `*` stands for one path level that differs between units (hwmon numbering); the first match is read. */
const sysfsPath = z.string().regex(/^\/(sys|proc|dev)\/[A-Za-z0-9_:./@*-]+$/, 'expected an absolute /sys, /proc or /dev path');

export const PowerSensorSchema = z.union([
  /** A file holding milliwatts (scale converts other units: 0.001 for microwatts). */
  z.strictObject({ name: z.string().min(1), path: sysfsPath, scale: z.number().positive().default(1) }),
  /** A rail that reports millivolts and milliamperes separately (INA3221 under hwmon). */
  z.strictObject({ name: z.string().min(1), voltagePath: sysfsPath, currentPath: sysfsPath }),
]);
export type PowerSensor = z.infer<typeof PowerSensorSchema>;

export const BoardNameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'expected a profile name [a-z0-9-], e.g. jetson-orin-nano');

export const BoardProfileSchema = z.strictObject({
  name: BoardNameSchema,
  description: z.string().min(1),
  inference: z.strictObject({
    backend: z.enum(['onnxruntime', 'native']),
    /** In order of preference; the backend falls back along it to `cpu`. */
    providers: z.array(z.enum(['cpu', 'cuda', 'tensorrt'])).min(1),
    /** Precision asked of GPU providers (CPU runs the bundle as shipped). */
    precision: z.enum(['int8', 'fp16', 'fp32']),
    /** Intra-op threads (0 = library default: one per core). */
    threads: z.number().int().min(0).max(64),
  }),
  /** What the daemon may use in total (model, frames, queues); telemetry warns above it. */
  memoryBudgetMb: z.number().int().min(64).max(1_048_576),
  /** Temperatures to report: sysfs files holding millidegrees Celsius. */
  thermalZones: z.array(z.strictObject({ name: z.string().min(1), path: sysfsPath })),
  /** Power rails to report, in milliwatts. */
  powerSensors: z.array(PowerSensorSchema),
  capture: BoardCaptureSchema.prefault({}),
});
export type BoardProfile = z.infer<typeof BoardProfileSchema>;

export const DEFAULT_BOARD = 'generic-x86';

export class BoardError extends Error {
  override readonly name = 'BoardError';
}

/** Board profile names shipped in boards/. */
export async function listBoards(dir = BOARDS_DIR): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length)).sort();
}

/** Reads and validates boards/<name>.json; errors name the file and the key path. */
export async function loadBoard(name: string, dir = BOARDS_DIR): Promise<BoardProfile> {
  const file = join(dir, `${name}.json`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const known = await listBoards(dir);
    throw new BoardError(`board profile "${name}" not found (${file}); known profiles: ${known.join(', ') || 'none'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BoardError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = BoardProfileSchema.safeParse(json);
  if (!parsed.success) throw new BoardError(`${file}: invalid board profile:\n${describeIssues(parsed.error.issues, json).join('\n')}`);
  if (parsed.data.name !== name) throw new BoardError(`${file}: name: expected "${name}" (the file name), received "${parsed.data.name}"`);
  return parsed.data;
}
