/**
 * The board profile's thermal zones and power rails, read from sysfs for telemetry. A
 * sensor this unit does not have reads as null (a profile covers a family of boards).
 */
import { readdir, readFile } from 'node:fs/promises';
import type { BoardProfile } from '../config/board.js';

/** Resolves one `*` path level (hwmon numbering) to the first existing match. */
async function resolveGlob(path: string): Promise<string | undefined> {
  const star = path.indexOf('*');
  if (star < 0) return path;
  const slashBefore = path.lastIndexOf('/', star);
  const slashAfter = path.indexOf('/', star);
  const parent = path.slice(0, slashBefore);
  const pattern = path.slice(slashBefore + 1, slashAfter < 0 ? undefined : slashAfter);
  const rest = slashAfter < 0 ? '' : path.slice(slashAfter);
  const regex = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names.sort()) {
    if (!regex.test(name)) continue;
    const candidate = await resolveGlob(`${parent}/${name}${rest}`);
    if (candidate !== undefined) return candidate;
  }
  return undefined;
}

async function readNumber(path: string): Promise<number | null> {
  const file = await resolveGlob(path);
  if (file === undefined) return null;
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const value = text === undefined ? NaN : Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

export interface SensorReadings {
  /** °C per zone name. */
  temperature_c: Record<string, number | null>;
  /** mW per rail name. */
  power_mw: Record<string, number | null>;
}

export async function readSensors(board: Pick<BoardProfile, 'thermalZones' | 'powerSensors'>): Promise<SensorReadings> {
  const temperature_c: Record<string, number | null> = {};
  for (const zone of board.thermalZones) {
    const milli = await readNumber(zone.path);
    temperature_c[zone.name] = milli === null ? null : Math.round(milli / 100) / 10;
  }
  const power_mw: Record<string, number | null> = {};
  for (const rail of board.powerSensors) {
    if ('path' in rail) {
      const value = await readNumber(rail.path);
      power_mw[rail.name] = value === null ? null : Math.round(value * rail.scale);
    } else {
      const [mv, ma] = await Promise.all([readNumber(rail.voltagePath), readNumber(rail.currentPath)]);
      power_mw[rail.name] = mv === null || ma === null ? null : Math.round((mv * ma) / 1000);
    }
  }
  return { temperature_c, power_mw };
}
