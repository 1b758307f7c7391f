/**
 * Device figures the daemon's telemetry does not measure itself: disk space under the state
 * folder, every sysfs thermal zone (found, not configured), Jetson GPU load, the board's
 * model string and the runtime versions. A figure this machine does not have is null.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import { createRequire } from 'node:module';

export interface SystemFigures {
  disk: { path: string; free_bytes: number | null; total_bytes: number | null };
  /** °C per thermal zone type (e.g. CPU-therm, GPU-therm on Jetson). */
  thermal_c: Record<string, number | null>;
  /** Percent, from the Jetson GPU's sysfs load file (0-1000 scale there). */
  gpu_load_percent: number | null;
  board_model: string | null;
  runtime: { node: string; onnxruntime: string | null; mqtt: string | null };
}

export interface SystemPaths {
  /** Root of sysfs and procfs, replaceable in tests by a folder laid out the same way. */
  sys: string;
  proc: string;
}

const DEFAULT_PATHS: SystemPaths = { sys: '/sys', proc: '/proc' };

/** Where Jetson boards expose GPU load: gpu.0 on Nano/TX2/Xavier, the ga10b node on Orin. */
const GPU_LOAD_FILES = ['devices/gpu.0/load', 'devices/platform/gpu.0/load', 'devices/platform/17000000.ga10b/load', 'devices/platform/17000000.gv11b/load'];

const readText = (path: string): Promise<string | undefined> => readFile(path, 'utf8').then((t) => t.trim(), () => undefined);

async function readNumber(path: string): Promise<number | null> {
  const text = await readText(path);
  const n = text === undefined || text === '' ? NaN : Number(text);
  return Number.isFinite(n) ? n : null;
}

export async function thermalZones(sys = DEFAULT_PATHS.sys): Promise<Record<string, number | null>> {
  const base = `${sys}/class/thermal`;
  const zones = (await readdir(base).catch(() => [] as string[])).filter((z) => /^thermal_zone\d+$/.test(z)).sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  const out: Record<string, number | null> = {};
  for (const zone of zones) {
    const type = (await readText(`${base}/${zone}/type`)) || zone;
    const milli = await readNumber(`${base}/${zone}/temp`);
    // Two zones may share a type; the zone number keeps them apart.
    const name = type in out ? `${type}_${zone.slice(12)}` : type;
    out[name] = milli === null ? null : Math.round(milli / 100) / 10;
  }
  return out;
}

export async function gpuLoadPercent(sys = DEFAULT_PATHS.sys): Promise<number | null> {
  for (const file of GPU_LOAD_FILES) {
    const v = await readNumber(`${sys}/${file}`);
    if (v !== null) return Math.round(v) / 10;
  }
  return null;
}

function packageVersion(name: string): string | null {
  try {
    const require = createRequire(import.meta.url);
    return (require(`${name}/package.json`) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

export async function collectSystem(diskPath: string, paths: SystemPaths = DEFAULT_PATHS): Promise<SystemFigures> {
  const fs = await statfs(diskPath).catch(() => undefined);
  // The device-tree model string ends in a NUL.
  const model = (await readText(`${paths.proc}/device-tree/model`))?.replace(/\0/g, '') ?? null;
  return {
    disk: { path: diskPath, free_bytes: fs ? fs.bavail * fs.bsize : null, total_bytes: fs ? fs.blocks * fs.bsize : null },
    thermal_c: await thermalZones(paths.sys),
    gpu_load_percent: await gpuLoadPercent(paths.sys),
    board_model: model || null,
    runtime: { node: process.versions.node, onnxruntime: packageVersion('onnxruntime-node'), mqtt: packageVersion('mqtt') },
  };
}
