/**
 * The models on the device's disk and which one is in force. Updates live under
 * `<stateDir>/models/`: each installed bundle in its own folder, downloads in `.staging-*`
 * folders, `state.json` saying which bundle is active, which one came before it, and
 * whether the active one is still on probation, and `update.json` naming an update under
 * way until it switches or fails. Every change of state.json is one atomic
 * replace, so a power cut at any point leaves the old state or the new one.
 *
 * The configured `inference.model` is where the device starts from (the "factory" model);
 * an installed update wins over it until the config names another model.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { formatKeyPath } from '../util/key-path.js';
import type { Manifest } from '../bundle/manifest.js';
import { readStateFile, writeFileAtomic } from '../util/atomic-write.js';

const STATE_FORMAT = 'moead-edge.models/v1';
const STAGING_PREFIX = '.staging-';
/** Written when an update begins, deleted when it ends: found at start-up, the last run died during it. */
const UPDATE_FILE = 'update.json';
const UpdateMarkSchema = z.strictObject({ request: z.string() });

const ModelStateSchema = z.strictObject({
  format: z.literal(STATE_FORMAT),
  /** inference.model (absolute) when this state was written; a different one in the config resets it. */
  configured: z.string().min(1),
  /** Bundle folder in force. */
  active: z.string().min(1),
  /** The bundle in force before the last switch, kept for a rollback. */
  previous: z.string().min(1).nullable(),
  /** Set from a switch until the new model has run its probation without trouble. */
  probation: z
    .strictObject({
      since: z.iso.datetime({ offset: true }),
      /** The bundle to return to when probation fails. */
      from: z.string().min(1),
      /** The update command's id, for status reports. */
      request: z.string().nullable(),
      /** The daemon was stopped on purpose (SIGTERM) during probation: the next start resumes it. */
      stoppedCleanly: z.boolean(),
    })
    .nullable(),
});
export type ModelState = z.infer<typeof ModelStateSchema>;

/** What happened to the state at start-up, for the log and the first OTA status message. */
export type StartupRecovery =
  | { kind: 'rolled_back'; from: string; to: string; request: string | null }
  | { kind: 'probation_resumed'; bundle: string; request: string | null }
  | { kind: 'config_changed'; installed: string }
  | { kind: 'unreadable'; error: string }
  | { kind: 'install_broken'; bundle: string; error: string }
  /** An update had not switched yet when the last run ended without stopping it (null: its mark was unreadable). */
  | { kind: 'interrupted'; request: string | null };

/** One line on a start-up recovery, for the daemon's log and the first `…/ota` message alike. */
export function describeRecovery(recovery: StartupRecovery): string {
  switch (recovery.kind) {
    case 'rolled_back':
      return `the daemon stopped unexpectedly while ${recovery.from} was on probation; ${recovery.to} is back in force`;
    case 'probation_resumed':
      return `the probation of ${recovery.bundle} starts over (the daemon was stopped during it)`;
    case 'config_changed':
      return `inference.model changed in the config: it replaces the installed update ${recovery.installed}`;
    case 'unreadable':
      return `model state unreadable, running inference.model: ${recovery.error}`;
    case 'install_broken':
      return `the installed model ${recovery.bundle} does not open, running inference.model: ${recovery.error}`;
    case 'interrupted':
      return `update ${recovery.request ?? '(id unreadable)'} was under way, not yet switched, when the daemon last ended without stopping (killed, crashed or powered off); what it had downloaded is deleted: send it again`;
  }
}

export class ModelStore {
  readonly dir: string;
  #state: ModelState;
  /** The last save, settled or not: the next one starts after it. */
  #saving: Promise<void> = Promise.resolve();

  private constructor(dir: string, state: ModelState) {
    this.dir = dir;
    this.#state = state;
  }

  get active(): string {
    return this.#state.active;
  }

  get previous(): string | null {
    return this.#state.previous;
  }

  get probation(): ModelState['probation'] {
    return this.#state.probation;
  }

  get configured(): string {
    return this.#state.configured;
  }

  /**
   * Reads state.json under `<stateDir>/models`. A probation still open means the last run
   * ended before the new model proved itself: after a crash, a power cut or a watchdog kill
   * the bundle before it becomes active again; after a clean stop the probation starts over.
   * Leftover downloads and bundles nothing refers to are deleted.
   */
  static async open(stateDir: string, configuredModel: string): Promise<{ store: ModelStore; recovery?: StartupRecovery }> {
    const dir = join(resolve(stateDir), 'models');
    const configured = resolve(configuredModel);
    const fresh: ModelState = { format: STATE_FORMAT, configured, active: configured, previous: null, probation: null };
    let state = fresh;
    let recovery: StartupRecovery | undefined;
    const read = await readState(join(dir, 'state.json'));
    if ('error' in read) recovery = { kind: 'unreadable', error: read.error };
    else if (read.state !== undefined) {
      const saved = read.state;
      if (saved.configured !== configured) recovery = { kind: 'config_changed', installed: saved.active };
      else if (saved.probation?.stoppedCleanly) {
        state = { ...saved, probation: { ...saved.probation, since: new Date().toISOString(), stoppedCleanly: false } };
        recovery = { kind: 'probation_resumed', bundle: saved.active, request: saved.probation.request };
      } else if (saved.probation) {
        state = { ...saved, active: saved.probation.from, previous: null, probation: null };
        recovery = { kind: 'rolled_back', from: saved.active, to: saved.probation.from, request: saved.probation.request };
      } else state = saved;
    }
    const store = new ModelStore(dir, state);
    if (recovery !== undefined) await store.#save(() => state);
    // Any other recovery says more about the model in force (and an update cannot run during
    // a probation); the mark only tells the requester that nothing came of the update.
    const mark = join(dir, UPDATE_FILE);
    const interrupted = await readUpdateMark(mark);
    if (interrupted !== undefined) {
      recovery ??= { kind: 'interrupted', request: interrupted };
      await rm(mark, { force: true });
    }
    await store.prune();
    return { store, ...(recovery ? { recovery } : {}) };
  }

  /** Marks update `request` as under way, until endUpdate(): a start that finds the mark reports it interrupted. */
  async beginUpdate(request: string): Promise<void> {
    await writeFileAtomic(join(this.dir, UPDATE_FILE), `${JSON.stringify({ request })}\n`);
  }

  /** The update switched (a crash now is the probation's to handle) or failed (and says so). */
  async endUpdate(): Promise<void> {
    await rm(join(this.dir, UPDATE_FILE), { force: true });
  }

  /** A new empty folder for one download. */
  async stagingFolder(): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const folder = join(this.dir, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
    await mkdir(folder);
    return folder;
  }

  /**
   * Moves a verified staging folder to a new folder of its own, `<name>-<version>-<random>`.
   * The name is fresh for every install, never derived from the bundle: the same name and
   * version (even the same model) may already be installed as the previous model or as the
   * one a probation returns to, and an update that then fails validation must not have
   * replaced what a rollback opens. rename() onto a folder that has files fails rather than
   * replacing it, so not even a clash of random names can overwrite an installed bundle.
   */
  async install(staging: string, manifest: Manifest): Promise<string> {
    const target = join(this.dir, `${manifest.name}-${manifest.version}-${randomBytes(6).toString('hex')}`);
    await rename(staging, target);
    return target;
  }

  /** Makes `bundle` active, on probation until `confirm`; the active one becomes the previous. */
  async switchTo(bundle: string, request: string | null): Promise<void> {
    await this.#save((state) => ({ ...state, active: bundle, previous: state.active, probation: { since: new Date().toISOString(), from: state.active, request, stoppedCleanly: false } }));
  }

  /**
   * The daemon stops on purpose during probation: the next start resumes it instead of rolling
   * back. With `resume` false (the model hung as the daemon stopped) it rolls back, as after a crash.
   */
  async pauseProbation(resume = true): Promise<void> {
    await this.#save((state) => (state.probation === null ? undefined : { ...state, probation: { ...state.probation, stoppedCleanly: resume } }));
  }

  /** The active bundle passed its probation. */
  async confirm(): Promise<void> {
    await this.#save((state) => (state.probation === null ? undefined : { ...state, probation: null }));
  }

  /**
   * Makes the previous bundle active again. After a failed probation the failed bundle is
   * dropped; a rollback the operator asked for keeps it as the previous one (to go forward again).
   */
  async rollBack(keepFailed: boolean): Promise<{ from: string; to: string }> {
    return this.#update((state) => {
      const { active, previous } = state;
      if (previous === null) throw new Error('no previous model to return to');
      return { next: { ...state, active: previous, previous: keepFailed ? active : null, probation: null }, result: { from: active, to: previous } };
    });
  }

  /** Back to the configured model with no history (the installed one is unusable). */
  async reset(): Promise<void> {
    await this.#save((state) => ({ format: STATE_FORMAT, configured: state.configured, active: state.configured, previous: null, probation: null }));
    await this.prune();
  }

  /** Deletes staging folders and installed bundles that are neither active nor previous. */
  async prune(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const keep = new Set([this.#state.active, this.#state.previous, this.#state.probation?.from].filter((p): p is string => p !== null && p !== undefined));
    for (const name of names) {
      const path = join(this.dir, name);
      if (name === 'state.json' || name === UPDATE_FILE || keep.has(path)) continue;
      await rm(path, { recursive: true, force: true });
    }
  }

  /**
   * Saves one change (`change` returns the new state, or undefined for none). Saves run one
   * at a time and each change applies to the state the one before left: built from the state
   * at the call instead, a second change in flight (a rollback during the end of probation)
   * would be lost, or would undo the first, whichever write ended last.
   */
  #save(change: (state: ModelState) => ModelState | undefined): Promise<void> {
    return this.#update((state) => ({ next: change(state), result: undefined }));
  }

  /** #save, for a change that also tells its caller something about the state it was applied to. */
  #update<T>(change: (state: ModelState) => { next: ModelState | undefined; result: T }): Promise<T> {
    const saved = this.#saving.then(async () => {
      const { next, result } = change(this.#state);
      if (next !== undefined) {
        await writeFileAtomic(join(this.dir, 'state.json'), `${JSON.stringify(ModelStateSchema.parse(next), null, 2)}\n`);
        this.#state = next;
      }
      return result;
    });
    // A failed save leaves the state as it was; the next one goes ahead from there.
    this.#saving = saved.then(() => undefined, () => undefined);
    return saved;
  }
}

/** The request of an update's mark; undefined when there is none, null when it cannot be read. */
async function readUpdateMark(file: string): Promise<string | null | undefined> {
  try {
    const text = await readStateFile(file);
    return text === undefined ? undefined : UpdateMarkSchema.parse(JSON.parse(text)).request;
  } catch {
    return null;
  }
}

async function readState(file: string): Promise<{ state: ModelState | undefined } | { error: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: undefined };
    return { error: `${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  try {
    const parsed = ModelStateSchema.safeParse(JSON.parse(text));
    if (parsed.success) return { state: parsed.data };
    return { error: `${file}: ${parsed.error.issues.map((i) => `${formatKeyPath(i.path)}: ${i.message}`).join('; ')}` };
  } catch (err) {
    return { error: `${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})` };
  }
}
