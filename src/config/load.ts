/**
 * Reading a config: file (YAML or JSON) → environment overrides → zod validation → paths
 * resolved. Relative paths written in a file are relative to that file's folder; paths set
 * by environment variables (or with no file) are relative to the working directory; the
 * built-in defaults (sample frames, shipped bundle) are relative to the package.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { PACKAGE_ROOT } from '../util/paths.js';
import { applyOverrides, CONFIG_ENV, envOverrides, EnvOverrideError, type EnvOverride } from './env.js';
import { ConfigError, describeIssues, formatKeyPath, valueAt } from './errors.js';
import { keysAt } from './shape.js';
import { ConfigSchema, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the file, when there is one. */
  file?: string;
  /** The file's content after environment overrides, before defaults (what the user wrote). */
  raw: Record<string, unknown>;
  overrides: EnvOverride[];
}

export const DEFAULTS_SOURCE = '(defaults)';

/** Parses YAML or JSON text (JSON is YAML); errors name the file and the line. */
export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    const parsed = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    const [error] = parsed.errors;
    if (error) throw error;
    // What the YAML library only warns about (an unknown !tag, read as plain text instead) it
    // printed to stderr without the file's name, and the daemon ran on a value other than the
    // one written; such a file is refused like any other mistake in it.
    if (parsed.warnings.length > 0) throw new ConfigError(source, parsed.warnings.map((w) => `not read as written: ${w.message}`));
    doc = parsed.toJS();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(source, [`not valid YAML/JSON: ${err instanceof Error ? err.message : String(err)}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(source, [`(root): expected a mapping of keys (board:, cameras:, mqtt: ...); received ${Array.isArray(doc) ? 'a list' : JSON.stringify(doc)}`]);
  }
  const cycle = recursiveAlias(doc, [], new Set());
  if (cycle !== undefined) {
    throw new ConfigError(source, [`${formatKeyPath(cycle)}: a YAML alias here refers to a node that contains it; a config cannot be recursive`]);
  }
  return doc as Record<string, unknown>;
}

/**
 * The key path of the first value that contains itself, or undefined. YAML lets an alias name
 * its own ancestor (`mqtt: &m {url: *m}`); the parsed object is then circular, and showing the
 * value in an error (JSON.stringify) threw a TypeError that named neither the file nor the key.
 */
function recursiveAlias(node: unknown, path: (string | number)[], ancestors: Set<object>): (string | number)[] | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  if (ancestors.has(node)) return path;
  ancestors.add(node);
  const entries: [string | number, unknown][] =
    Array.isArray(node) ? node.map((v, i) => [i, v]) : node instanceof Map || node instanceof Set ? [] : Object.entries(node);
  for (const [key, value] of entries) {
    const found = recursiveAlias(value, [...path, key], ancestors);
    if (found !== undefined) return found;
  }
  ancestors.delete(node);
  return undefined;
}

function resolveFrom(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

/**
 * Makes every file path in the config absolute. Who set the key decides the folder it is
 * relative to: the file (its folder), an environment variable (the working directory), or
 * nobody (the package, for the built-in defaults).
 */
function resolvePaths(config: Config, raw: Record<string, unknown>, userBase: string, overrides: readonly EnvOverride[]): Config {
  const fromEnv = (keyPath: (string | number)[]) => overrides.some((o) => o.path.length <= keyPath.length && o.path.every((key, i) => key === keyPath[i]));
  const base = (keyPath: (string | number)[]) => (valueAt(raw, keyPath) === undefined ? PACKAGE_ROOT : fromEnv(keyPath) ? process.cwd() : userBase);
  const out = structuredClone(config);
  out.stateDir = resolveFrom(base(['stateDir']), out.stateDir);
  out.inference.model = resolveFrom(base(['inference', 'model']), out.inference.model);
  out.cameras.forEach((camera, i) => {
    if (camera.type === 'folder' || camera.type === 'file') camera.path = resolveFrom(base(['cameras', i, 'path']), camera.path);
  });
  const mqtt = out.mqtt;
  if (mqtt.usernameFile) mqtt.usernameFile = resolveFrom(base(['mqtt', 'usernameFile']), mqtt.usernameFile);
  if (mqtt.passwordFile) mqtt.passwordFile = resolveFrom(base(['mqtt', 'passwordFile']), mqtt.passwordFile);
  if (mqtt.outbox.path) mqtt.outbox.path = resolveFrom(base(['mqtt', 'outbox', 'path']), mqtt.outbox.path);
  if (mqtt.tls) {
    for (const key of ['ca', 'cert', 'key'] as const) {
      const value = mqtt.tls[key];
      if (value) mqtt.tls[key] = resolveFrom(base(['mqtt', 'tls', key]), value);
    }
  }
  return out;
}

/**
 * Validates a raw config object (file content + overrides). Throws ConfigError listing
 * every problem with its key path, the value found and what was expected.
 */
export function validateConfig(
  raw: Record<string, unknown>,
  options: { source: string; baseDir: string; overrides?: readonly EnvOverride[] },
): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const labels = new Map((options.overrides ?? []).map((o) => [formatKeyPath(o.path), o.variable]));
    const problems = describeIssues(parsed.error.issues, raw, labels).map((line) => {
      // Unknown keys: say which keys are allowed there.
      const m = /^(.*?)(?: \(from [^)]*\))?: unknown key$/.exec(line);
      if (!m?.[1]) return line;
      const parent = m[1].includes('.') || m[1].includes('[') ? m[1].replace(/(\.[^.[\]]+|\[\d+\])$/, '') : '';
      const parentPath = parent === '' ? [] : pathFromString(parent);
      const allowed = keysAt(ConfigSchema, parentPath);
      return allowed.length ? `${line} (expected one of: ${allowed.join(', ')})` : line;
    });
    throw new ConfigError(options.source, problems);
  }
  return resolvePaths(parsed.data, raw, options.baseDir, options.overrides ?? []);
}

/** Inverse of formatKeyPath for the paths it writes (`a.b[2].c`). */
function pathFromString(text: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of text.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (part[2] !== undefined) out.push(Number(part[2]));
    else if (part[1] !== undefined) out.push(part[1]);
  }
  return out;
}

/** The config file to use: --config, else $MOEAD_CONFIG, else none (built-in defaults). */
export function configFileFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? (env[CONFIG_ENV] || undefined);
}

function overridesFor(source: string, env: NodeJS.ProcessEnv): EnvOverride[] {
  try {
    return envOverrides(ConfigSchema, env);
  } catch (err) {
    if (err instanceof EnvOverrideError) throw new ConfigError(source, [err.message]);
    throw err;
  }
}

function withOverrides(source: string, raw: unknown, overrides: readonly EnvOverride[]): Record<string, unknown> {
  try {
    return applyOverrides(raw, overrides) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof EnvOverrideError) throw new ConfigError(source, [err.message]);
    throw err;
  }
}

/** Validates config text as it would be loaded from `file` (used by reload and set-threshold before saving). */
export function validateConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const absolute = resolve(file);
  const fromFile = parseConfigText(text, absolute);
  const overrides = overridesFor(absolute, env);
  const raw = withOverrides(absolute, fromFile, overrides);
  const config = validateConfig(raw, { source: absolute, baseDir: dirname(absolute), overrides });
  return { config, file: absolute, raw, overrides };
}

/** Loads the config from `file` (or defaults when undefined) with environment overrides. */
export async function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  if (file !== undefined) {
    const absolute = resolve(file);
    let text: string;
    try {
      text = await readFile(absolute, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(absolute, [code === 'ENOENT' ? 'file not found' : `cannot read: ${err instanceof Error ? err.message : String(err)}`]);
    }
    return validateConfigText(text, absolute, env);
  }
  const overrides = overridesFor(DEFAULTS_SOURCE, env);
  const raw = withOverrides(DEFAULTS_SOURCE, {}, overrides);
  const config = validateConfig(raw, { source: DEFAULTS_SOURCE, baseDir: process.cwd(), overrides });
  return { config, raw, overrides };
}
