/**
 * Environment overrides. `MOEAD_<KEY>__<KEY>...` sets the config key at that path:
 * levels are separated by a double underscore, matched to the schema's keys without regard
 * to case or single underscores (MOEAD_MQTT__EMBEDDED_PORT → mqtt.embeddedPort), array
 * positions are numbers (MOEAD_CAMERAS__0__FPS → cameras[0].fps). A value is JSON-parsed
 * when it parses (numbers, booleans, arrays, objects), else taken as a string.
 *
 * A variable with `__` must name a real key; a typo is an error, not silently ignored.
 * Single-level variables are overrides only when they name a top-level key
 * (MOEAD_BOARD, MOEAD_LOG_LEVEL); other MOEAD_ variables (MOEAD_CONFIG) are not config keys.
 */
import type { z } from 'zod';
import { formatKeyPath } from './errors.js';
import { isArrayAt, isRecordAt, keysAt } from './shape.js';

export const ENV_PREFIX = 'MOEAD_';
/** Names the config file when `--config` is not given. */
export const CONFIG_ENV = 'MOEAD_CONFIG';

export interface EnvOverride {
  variable: string;
  path: (string | number)[];
  value: unknown;
}

export class EnvOverrideError extends Error {
  override readonly name = 'EnvOverrideError';
}

const squash = (s: string) => s.replace(/_/g, '').toLowerCase();

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** The overrides the environment asks for, each resolved to a schema key path. */
export function envOverrides(schema: z.ZodType, env: NodeJS.ProcessEnv): EnvOverride[] {
  const out: EnvOverride[] = [];
  for (const [variable, raw] of Object.entries(env)) {
    if (!variable.startsWith(ENV_PREFIX) || raw === undefined || variable === CONFIG_ENV) continue;
    const levels = variable.slice(ENV_PREFIX.length).split('__');
    const nested = levels.length > 1;
    const path: (string | number)[] = [];
    let unknown: string | undefined;
    for (const level of levels) {
      if (isArrayAt(schema, path) && /^\d+$/.test(level)) {
        path.push(Number(level));
        continue;
      }
      if (isRecordAt(schema, path)) {
        // Record keys (camera names) are the user's own: taken as written.
        path.push(level);
        continue;
      }
      const keys = keysAt(schema, path);
      const key = keys.find((k) => squash(k) === squash(level));
      if (key === undefined) {
        unknown = `${level} is not a key of ${path.length ? formatKeyPath(path) : 'the config'} (expected one of: ${keys.join(', ') || 'no keys: this is a value'})`;
        break;
      }
      path.push(key);
    }
    if (unknown !== undefined) {
      if (nested) throw new EnvOverrideError(`${variable}: ${unknown}`);
      continue;
    }
    out.push({ variable, path, value: parseValue(raw) });
  }
  // Deterministic order: shorter paths first, so MOEAD_MQTT='{...}' then MOEAD_MQTT__URL refines it.
  // Numbers in names compare as numbers, so MOEAD_CAMERAS__9 adds an entry before MOEAD_CAMERAS__10 refines the next.
  return out.sort((a, b) => a.path.length - b.path.length || a.variable.localeCompare(b.variable, 'en', { numeric: true }));
}

/** Sets `value` at `path` inside `root`, creating objects (or arrays before a number) on the way. */
export function setIn(root: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  let node: Record<string | number, unknown> = root;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    let child = node[key];
    if (child === null || typeof child !== 'object') {
      child = typeof path[i + 1] === 'number' ? [] : {};
      node[key] = child;
    }
    node = child as Record<string | number, unknown>;
  });
}

/**
 * Refuses a list position past the end of the list it indexes once every override is in
 * (the file's entries and those the overrides add). Positions refine an entry or add the next
 * one. Without this bound, MOEAD_CAMERAS__100000000__FPS made a sparse list 1e8 entries long,
 * and validating it ran the daemon out of memory instead of naming the variable.
 *
 * Checked on the result, not override by override: overrides apply shorter paths first, so
 * MOEAD_CAMERAS__2='{...}' goes in before MOEAD_CAMERAS__1__NAME adds entry 1, and a check
 * at each step refused that pair, which leaves no hole.
 */
function checkPositions(root: Record<string, unknown>, { variable, path }: EnvOverride): void {
  let node: unknown = root;
  for (const [i, key] of path.entries()) {
    if (typeof key === 'number' && Array.isArray(node)) {
      // The entries in a row from 0: at most as many steps as the list has entries.
      let length = 0;
      while (length < key && Object.hasOwn(node, length)) length += 1;
      if (length < key) {
        const list = formatKeyPath(path.slice(0, i));
        const positions = length === 0 ? 'the list is empty: position 0 adds one' : `${length} entries: positions 0..${length - 1} refine one, ${length} adds one`;
        throw new EnvOverrideError(`${variable}: position ${key} of ${list} is past the end of the list (${positions})`);
      }
    }
    node = node !== null && typeof node === 'object' ? (node as Record<string | number, unknown>)[key] : undefined;
  }
}

/** Sets each override into a copy of `raw` (the file's parsed content). */
export function applyOverrides(raw: unknown, overrides: readonly EnvOverride[]): unknown {
  const root: Record<string, unknown> = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : {};
  for (const override of overrides) setIn(root, override.path, override.value);
  for (const override of overrides) checkPositions(root, override);
  return root;
}
