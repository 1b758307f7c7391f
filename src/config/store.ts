/**
 * The running config and its changes at run time. Every new config (file edited, reload
 * command, set-threshold) is validated in full before it is used or saved; an invalid one
 * is refused with the reason and the last known good config keeps running. Only the live
 * sections apply at once; changes elsewhere are reported as needing a restart.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import YAML from 'yaml';
import { FileWriteError, removeLeftoverTemps, writeFileAtomic } from '../util/atomic-write.js';
import { errorMessage } from '../util/log.js';
import { setIn } from './env.js';
import { ConfigError, formatKeyPath, valueAt } from './errors.js';
import { validateConfigText, validateConfig, DEFAULTS_SOURCE, type LoadedConfig } from './load.js';
import type { Config } from './schema.js';

/**
 * What takes effect without a restart: whole top-level keys, or (for a section whose other
 * parts start servers) only the listed sub-keys. Everything else needs a restart.
 */
export const LIVE_KEYS: { readonly [K in keyof Config]?: true | readonly (keyof Config[K])[] } = {
  logLevel: true,
  scoring: true,
  telemetry: ['intervalS'],
  // The updater reads its section at each step; keys rotated by a reload apply to the next update.
  ota: true,
};

export type ConfigChange =
  | { ok: true; applied: string[]; restartRequired: string[] }
  | { ok: false; error: string };

/** Checks only the running daemon can make (e.g. a threshold above the model's good median). */
export type ConfigCheck = (config: Config) => string[];

export class ConfigStore {
  #current: Config;
  #loaded: LoadedConfig;
  #listeners: ((next: Config, previous: Config) => void)[] = [];
  #checks: ConfigCheck[] = [];
  #watcher: FSWatcher | undefined;
  /** The file text last read or written, so a watch event for it is not a change. */
  #lastText: string | undefined;
  #debounce: NodeJS.Timeout | undefined;
  /** Serialises reloads and saves so two changes never interleave. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    loaded: LoadedConfig,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.#loaded = loaded;
    this.#current = loaded.config;
  }

  get current(): Config {
    return this.#current;
  }

  get file(): string | undefined {
    return this.#loaded.file;
  }

  /** Whether the user set this key (file or environment) rather than leaving the default. */
  given(path: readonly (string | number)[]): boolean {
    return valueAt(this.#loaded.raw, path) !== undefined;
  }

  onChange(listener: (next: Config, previous: Config) => void): void {
    this.#listeners.push(listener);
  }

  addCheck(check: ConfigCheck): void {
    this.#checks.push(check);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #check(config: Config, source: string): void {
    const problems = this.#checks.flatMap((check) => check(config));
    if (problems.length) throw new ConfigError(source, problems);
  }

  /** Takes a validated config: live sections now, the rest reported as restart-required. */
  #adopt(next: LoadedConfig): ConfigChange {
    const previous = this.#current;
    const applied: string[] = [];
    const restartRequired: string[] = [];
    const merged = structuredClone(previous);
    const target = merged as Record<string, unknown>;
    for (const key of Object.keys(next.config) as (keyof Config)[]) {
      const before = previous[key];
      const after = next.config[key];
      if (isDeepStrictEqual(before, after)) continue;
      const live = LIVE_KEYS[key];
      if (live === true) {
        target[key] = structuredClone(after);
        applied.push(key);
        continue;
      }
      if (live === undefined || typeof before !== 'object' || typeof after !== 'object' || before === null || after === null) {
        restartRequired.push(key);
        continue;
      }
      const section = target[key] as Record<string, unknown>;
      const nextSection = after as Record<string, unknown>;
      for (const sub of new Set([...Object.keys(before), ...Object.keys(nextSection)])) {
        if (isDeepStrictEqual((before as Record<string, unknown>)[sub], nextSection[sub])) continue;
        if ((live as readonly string[]).includes(sub)) {
          section[sub] = structuredClone(nextSection[sub]);
          applied.push(`${key}.${sub}`);
        } else {
          restartRequired.push(`${key}.${sub}`);
        }
      }
    }
    this.#loaded = next;
    this.#current = merged;
    if (applied.length) for (const listener of this.#listeners) listener(merged, previous);
    return { ok: true, applied, restartRequired };
  }

  /** Re-reads the config file (the environment overrides still apply). */
  reload(): Promise<ConfigChange> {
    return this.#serial(async () => {
      const file = this.#loaded.file;
      if (file === undefined) return { ok: false, error: 'running on built-in defaults: there is no config file to reload (start with --config FILE)' };
      try {
        const text = await readFile(file, 'utf8');
        this.#lastText = text;
        // An empty file would mean "all defaults", but at a reload it is far more often a
        // save caught halfway (an editor that truncates, then writes): applying it would drop
        // the scoring settings and ask for restarts to default cameras and broker.
        if (text.trim() === '') {
          return { ok: false, error: `${file}: the file is empty (caught in the middle of a save?); the running config stays. For a config of all defaults, write {}` };
        }
        const next = validateConfigText(text, file, this.env);
        this.#check(next.config, file);
        return this.#adopt(next);
      } catch (err) {
        return { ok: false, error: errorMessage(err) };
      }
    });
  }

  /**
   * Sets one key. With `persist` and a config file, the file is rewritten (comments and
   * layout kept) only after the result validated; otherwise the change lives until restart.
   */
  set(path: (string | number)[], value: unknown, { persist }: { persist: boolean }): Promise<ConfigChange & { persisted?: boolean }> {
    return this.#serial(async () => {
      const file = this.#loaded.file;
      try {
        if (persist && file !== undefined) {
          const before = await readFile(file, 'utf8');
          const doc = YAML.parseDocument(before, { uniqueKeys: true });
          let text: string;
          try {
            if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('; '));
            doc.setIn(path, value);
            text = doc.toString();
          } catch (err) {
            // The file was edited since it was loaded into something that does not parse or where a key on
            // the path is not a mapping; the YAML library's own words ("Document with errors cannot be
            // stringified", "Expected YAML collection at scoring") named neither the file nor the key.
            // Validating the file as it is says what is wrong there, as a reload would.
            validateConfigText(before, file, this.env);
            throw new ConfigError(file, [`${formatKeyPath(path)}: cannot be written into the file as it is (${errorMessage(err)}); the running config is unchanged`]);
          }
          const next = validateConfigText(text, file, this.env);
          this.#check(next.config, file);
          await writeFileAtomic(file, text).catch((err: unknown) => {
            throw err instanceof FileWriteError ? new Error(`${file}: not saved, the running config is unchanged (${err.reason})`, { cause: err }) : err;
          });
          this.#lastText = text;
          return { ...this.#adopt(next), persisted: true };
        }
        const raw = structuredClone(this.#loaded.raw);
        setIn(raw, path, value);
        const source = file ?? DEFAULTS_SOURCE;
        const config = validateConfig(raw, { source, baseDir: file === undefined ? process.cwd() : dirname(file), overrides: this.#loaded.overrides });
        this.#check(config, source);
        return { ...this.#adopt({ ...this.#loaded, raw, config }), persisted: false };
      } catch (err) {
        return { ok: false, error: errorMessage(err) };
      }
    });
  }

  /**
   * Deletes the temp files that saves of the config file (set with persist) left beside it when
   * the daemon was killed during them; in turn with saves, so that none of this process's is
   * taken for one. Returns the files deleted.
   */
  removeLeftoverTemps(): Promise<string[]> {
    const file = this.#loaded.file;
    return this.#serial(async () => (file === undefined ? [] : removeLeftoverTemps(file)));
  }

  /**
   * Reloads when the file changes on disk (debounced: editors write in several steps).
   * Watches the folder, not the file: editors and our own saves replace the file by
   * rename, which would leave a file watch on the old inode.
   */
  watchFile(onResult: (change: ConfigChange) => void, debounceMs = 300): void {
    const file = this.#loaded.file;
    if (file === undefined || this.#watcher) return;
    const name = basename(file);
    try {
      this.#watcher = watch(dirname(file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => {
          void this.#reloadIfChanged().then((change) => {
            if (change) onResult(change);
          });
        }, debounceMs);
      });
      this.#watcher.on('error', () => this.unwatch());
    } catch {
      // A file system without change notification: reload stays available by command and SIGHUP.
    }
  }

  /** A reload unless the file says what is running already (our own save, a touch). */
  async #reloadIfChanged(): Promise<ConfigChange | undefined> {
    const file = this.#loaded.file;
    if (file === undefined) return undefined;
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined && text === this.#lastText) return undefined;
    return this.reload();
  }

  unwatch(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
