/**
 * Over-the-air model updates, one at a time: download the bundle into staging, verify its
 * signature, sizes and sha256, validate it on its reference frames with the daemon's own
 * backend, switch the running cameras over, and watch the new model through a probation
 * period; bad health during probation switches back. Every step is reported (`report`), and
 * at every step a failure leaves the model in force running.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MANIFEST_FILE, loadBundle, parseManifest } from '../bundle/load.js';
import type { Manifest } from '../bundle/manifest.js';
import type { Detector } from '../inference/detector.js';
import type { LiveDetector } from '../inference/live-detector.js';
import { OTA_MESSAGE_MAX, type OtaStatusPayload } from '../mqtt/topics.js';
import { errorMessage, type Logger } from '../util/log.js';
import type { OtaConfig } from './config.js';
import { checkUpdateUrl, downloadFile } from './download.js';
import { describeRecovery, type ModelStore, type StartupRecovery } from './model-store.js';
import { SIGNATURE_FILE, parseSignatureFile, verifyManifest } from './signature.js';
import { checkReferenceFrames } from './validate.js';
import { compareVersions } from './version.js';

export type OtaStatus = Omit<OtaStatusPayload, 'ts'>;

/** Small files of a bundle (manifest, signature) are bounded before anything else is known. */
const MANIFEST_MAX_BYTES = 1 << 20;
const SIGNATURE_MAX_BYTES = 4096;
const PROGRESS_EVERY_MS = 1000;
/** How long a probation whose end could not be saved goes on before its end is saved again. */
const CONFIRM_RETRY_MS = 30_000;

export interface UpdateRequest {
  id: string;
  url: string;
  version?: string | undefined;
  downgrade?: boolean | undefined;
}

export interface ModelUpdaterDeps {
  store: ModelStore;
  /** The `ota` config section in force (read at each step: a reload applies to the next update). */
  config: () => OtaConfig;
  /** The cameras' model; the updater swaps it. */
  live: LiveDetector;
  /** Opens a bundle on the same backend, threads and pre/post-processing as the model in force. */
  openDetector: (bundleDir: string) => Promise<Detector>;
  /** What the configured thresholds would get wrong with this model (empty: they fit). */
  thresholdProblems: (manifest: Manifest) => string[];
  /** Why the daemon is unhealthy now (a camera's inference stuck), else undefined. */
  health: () => string | undefined;
  report: (status: OtaStatus) => void;
  log: Logger;
  /** CONFIRM_RETRY_MS, unless a test needs it shorter. */
  confirmRetryMs?: number;
}

/** A probation under way: what it watches, from which failure count, until when. */
interface Probation {
  request: string | null;
  running: OtaStatus['running'];
  seconds: number;
  /** The model on probation, and its failures counted before the watch began (not its fault). */
  model: Detector;
  errorsBefore: number;
  /**
   * When it ends, on the monotonic clock (performance.now()): boards without a battery-backed
   * RTC boot at 1970 or at the last saved time and NTP steps the wall clock later, by years at
   * times; on Date.now() such a step ended a probation at once or stretched it for years.
   */
  deadline: number;
}

/** Busy steps: a probation's end being saved (the model before then closed), a rollback. */
const ENDING_PROBATION = 'ending probation';
const ROLLING_BACK = 'rolling back';

const modelOf = (m: Manifest) => ({ name: m.name, version: m.version });

/** A bundle file's URL under the bundle's; each segment escaped, so `#`, `?` or `%2e%2e` in a name stay part of it. */
const fileUrl = (base: URL, file: string): string => new URL(file.split('/').map(encodeURIComponent).join('/'), base).href;

const parsesAsJson = (bytes: Buffer): boolean => {
  try {
    JSON.parse(bytes.toString('utf8'));
    return true;
  } catch {
    return false;
  }
};

export class ModelUpdater {
  readonly #deps: ModelUpdaterDeps;
  #busy: { request: string; step: string } | undefined;
  #status: OtaStatus;
  #probation: (Probation & { timer: NodeJS.Timeout }) | undefined;
  /** The model whose probation stop() left to resume, for stoppedWithModelHung(). */
  #paused: Detector | undefined;
  /** The model before the switch, kept open during probation so that a rollback is immediate. */
  #standby: Detector | undefined;
  /** A model opened and not yet in force (an update being validated, a rollback's target). */
  #candidate: Detector | undefined;
  #abort = new AbortController();
  /** Updates, rollbacks and the end of a probation under way: stop() waits for them. */
  readonly #work = new Set<Promise<unknown>>();
  /** Set by stop(): nothing new starts after it. */
  #stopped = false;

  constructor(deps: ModelUpdaterDeps) {
    this.#deps = deps;
    this.#status = { state: 'active', request: null, running: modelOf(deps.live.manifest), target: null };
  }

  /**
   * Threads of the models the updater holds open beside the one in force. The daemon keeps
   * them at normal priority too: a thread's nice value, once raised, cannot be lowered again
   * without privilege, so a candidate swept while it validates would run slower once in force.
   */
  inferenceThreadIds(): number[] {
    return [this.#candidate, this.#standby].flatMap((d) => d?.inferenceThreadIds() ?? []);
  }

  /** The latest status (what `<root>/ota` holds). */
  status(): OtaStatus {
    return this.#status;
  }

  /**
   * Whether a probation watches the model in force (from the switch to the save of its end)
   * or a rollback is replacing it: that, not a reopen, answers the model's death.
   */
  probationOrRollback(): boolean {
    const step = this.#busy?.step;
    return this.#probation !== undefined || step === 'switching' || step === ENDING_PROBATION || step === ROLLING_BACK;
  }

  /** Reports the state after start-up, and resumes a probation the last run left open. */
  start(recovery: StartupRecovery | undefined): void {
    const running = modelOf(this.#deps.live.manifest);
    if (recovery === undefined) this.#report({ state: 'active', request: null, running, target: null });
    else {
      const state = recovery.kind === 'rolled_back' ? 'rolled_back' : recovery.kind === 'unreadable' || recovery.kind === 'install_broken' || recovery.kind === 'interrupted' ? 'failed' : 'active';
      const request = recovery.kind === 'rolled_back' || recovery.kind === 'probation_resumed' || recovery.kind === 'interrupted' ? recovery.request : null;
      this.#report({ state, request, running, target: null, message: describeRecovery(recovery) });
    }
    if (this.#deps.store.probation) this.#beginProbation(this.#deps.store.probation.request, this.#deps.live.manifest);
  }

  /**
   * Accepts an update and runs it in the background (its steps go to `report`). Rejects,
   * changing nothing, when another update or a probation is under way, when no key is
   * trusted, when the URL is not http(s), or when the update's mark (update.json) cannot be
   * saved. It resolves only once that mark is on disk: an update accepted, and reported as
   * downloading, by a daemon killed right after always gets its `failed` at the next start,
   * where one accepted before its mark was saved got no word at all.
   */
  async update(request: UpdateRequest): Promise<{ accepted: true; url: string }> {
    this.#refuseWhileBusy();
    const base = checkUpdateUrl(request.url);
    if (this.#deps.config().trustedKeys.length === 0) throw new Error('ota.trustedKeys is empty: this device accepts no update until the fleet signing key is configured');
    this.#busy = { request: request.id, step: 'downloading' };
    const marked = this.#deps.store.beginUpdate(request.id);
    // Tracked from the mark on, so that a stop meanwhile waits for the update to cancel and unmark itself.
    void this.#track(
      marked
        .then(
          () => this.#update(request, base),
          () => undefined,
        )
        .finally(() => {
          this.#busy = undefined;
        }),
    );
    await marked.catch((err: unknown) => {
      throw new Error(`update ${request.id} not begun: ${errorMessage(err)}`, { cause: err });
    });
    return { accepted: true, url: base.href };
  }

  /** Returns to the previous model now (the operator's command); the rolled-back one stays installed. */
  async rollBack(request: string): Promise<{ from: OtaStatus['running']; to: OtaStatus['running'] }> {
    this.#refuseWhenStopped();
    if (this.#busy) throw new Error(`update ${this.#busy.request} is under way (${this.#busy.step}); wait for it to end`);
    const probation = this.#probation;
    this.#endProbation();
    const from = modelOf(this.#deps.live.manifest);
    try {
      await this.#track(this.#returnToPrevious(request, true, 'rollback-model command'));
    } catch (err) {
      // Nothing was rolled back (state.json could not be saved): the model under watch stays in
      // force and state.json still says probation, so the probation goes on, as its status says.
      if (probation) this.#watch(probation);
      throw err;
    }
    return { from, to: modelOf(this.#deps.live.manifest) };
  }

  /**
   * Refuses updates and rollbacks from now on, cancels an update that has not switched yet,
   * waits for what is under way (an update, a rollback, the end of a probation) to settle,
   * and leaves a probation under way to resume at the next start.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    // Settled work may have started more (an update that switched begins its probation).
    while (this.#work.size > 0) await Promise.allSettled(this.#work);
    const probation = this.#probation;
    this.#endProbation();
    // Not waited for: the model before closes after its frames, which the cameras' stop bounds
    // (inference.stuckTimeoutS) and LiveDetector.close() waits for. Waiting here, before the
    // cameras stop, would let a hung model before hold the stop up.
    void this.#retireStandby();
    if (probation) {
      this.#paused = probation.model;
      await this.#deps.store.pauseProbation().catch((err: unknown) => this.#deps.log.error(`probation state not saved: ${errorMessage(err)}`));
    }
  }

  /**
   * After stop(), when the cameras could not stop cleanly (a frame hung in inference): a
   * probation stop() left to resume rolls back at the next start instead, as after a crash,
   * when a frame the model on probation prepared is among those abandoned. The model
   * before's are not the new model's fault (as probation counts failures).
   */
  async stoppedWithModelHung(): Promise<void> {
    if (this.#paused === undefined || this.#deps.live.inFlight(this.#paused) === 0) return;
    await this.#deps.store.pauseProbation(false);
  }

  /** Runs `work` as part of the updater's work in progress (stop() waits for it); returns it. */
  #track<T>(work: Promise<T>): Promise<T> {
    this.#work.add(work);
    const untrack = () => this.#work.delete(work);
    work.then(untrack, untrack);
    return work;
  }

  #refuseWhenStopped(): void {
    if (this.#stopped) throw new Error('the model updater is stopped (the daemon is stopping)');
  }

  #refuseWhileBusy(): void {
    this.#refuseWhenStopped();
    if (this.#busy) throw new Error(`update ${this.#busy.request} is under way (${this.#busy.step}); wait for it to end`);
    // A second switch during probation would make the model under watch the rollback target.
    if (this.#probation) throw new Error(`the model switched by update ${this.#probation.request ?? '(before the last restart)'} is on probation for ${Math.ceil((this.#probation.deadline - performance.now()) / 1000)} s more; wait for it to end or roll it back`);
  }

  #report(reported: OtaStatus): void {
    // A long error (many failing reference frames, a long URL) must still reach the fleet, shortened.
    const { message } = reported;
    const status = message !== undefined && message.length > OTA_MESSAGE_MAX ? { ...reported, message: `${message.slice(0, OTA_MESSAGE_MAX - 1)}…` } : reported;
    this.#status = status;
    if (this.#busy) this.#busy.step = status.state;
    this.#deps.report(status);
  }

  async #update(request: UpdateRequest, base: URL): Promise<void> {
    const { store, log } = this.#deps;
    const running = () => modelOf(this.#deps.live.manifest);
    let target: OtaStatus['target'] = null;
    const step = (state: OtaStatus['state'], extra: Partial<OtaStatus> = {}) => this.#report({ state, request: request.id, running: running(), target, ...extra });
    let staging: string | undefined;
    try {
      // Killed from here (update() saved the mark) to the switch, the next start reports this update failed, by its id.
      step('downloading', { message: `fetching ${base.href}` });
      staging = await store.stagingFolder();
      const { manifest, bytes } = await this.#fetchSigned(base, staging);
      target = modelOf(manifest);
      if (request.version !== undefined && manifest.version !== request.version) {
        throw new Error(`version: the bundle at ${base.href} is ${manifest.version}, the request asked for ${request.version}`);
      }
      const current = this.#deps.live.manifest;
      if (manifest.model.sha256 === current.model.sha256 && manifest.version === current.version) throw new Error(`${manifest.name} ${manifest.version} is the model in force already`);
      if (manifest.name === current.name && compareVersions(manifest.version, current.version) < 0 && request.downgrade !== true) {
        throw new Error(`version: ${manifest.version} is older than the running ${current.version}; send "downgrade": true to install it (rollback-model returns to the previous model)`);
      }
      await this.#fetchFiles(base, staging, manifest, bytes, (progress) => step('downloading', { progress }));

      step('verifying');
      // Everything on disk again, as the daemon will open it: sizes, sha256, paths inside the bundle.
      await loadBundle(staging);

      step('validating', { message: 'scoring the reference frames on this device' });
      const problems = this.#deps.thresholdProblems(manifest);
      if (problems.length > 0) throw new Error(`the configured thresholds do not fit ${manifest.name} ${manifest.version}: ${problems.join('; ')}`);
      const installed = await store.install(staging, manifest);
      staging = undefined;
      const candidate = await this.#deps.openDetector(installed);
      this.#candidate = candidate;
      const references = await checkReferenceFrames(candidate, this.#deps.config().referenceTolerance);
      // A stop that came during validation cancels here: nothing switches while the cameras stop.
      if (this.#abort.signal.aborted) throw new Error('cancelled');

      step('switching');
      await store.switchTo(installed, request.id);
      await this.#endUpdate();
      this.#standby = this.#deps.live.swap(candidate, { keep: true });
      this.#candidate = undefined;
      log.info(`model ${manifest.name} ${manifest.version} in force (update ${request.id}; ${references.length} reference frames within tolerance)`);
      // The bundle before the previous one is no rollback target any more. Pruned while still
      // busy, so that no other update's download is under way to be taken for a leftover.
      await this.#pruneOldBundles();
      this.#beginProbation(request.id, manifest);
    } catch (err) {
      const candidate = this.#candidate;
      this.#candidate = undefined;
      await candidate?.close().catch(() => undefined);
      // Cleared before the report, so that `failed` means nothing of the update is left on disk.
      if (staging !== undefined) await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      await this.#pruneOldBundles();
      await this.#endUpdate();
      const message = this.#abort.signal.aborted ? 'cancelled: the daemon is stopping' : errorMessage(err);
      log.error(`update ${request.id} failed, ${running().name} ${running().version} stays: ${message}`);
      step('failed', { message });
    }
  }

  /** manifest.json and manifest.sig: the signature is checked before the manifest is believed. */
  async #fetchSigned(base: URL, staging: string): Promise<{ manifest: Manifest; bytes: number }> {
    const config = this.#deps.config();
    const limits = { timeoutMs: config.downloadTimeoutS * 1000, retries: config.downloadRetries, onRetry: this.#logRetry, signal: this.#abort.signal };
    const manifestFile = join(staging, MANIFEST_FILE);
    const sigFile = join(staging, SIGNATURE_FILE);
    const fetched = await downloadFile(fileUrl(base, MANIFEST_FILE), manifestFile, { ...limits, maxBytes: MANIFEST_MAX_BYTES });
    await downloadFile(fileUrl(base, SIGNATURE_FILE), sigFile, { ...limits, maxBytes: SIGNATURE_MAX_BYTES });
    const manifestBytes = await readFile(manifestFile);
    try {
      verifyManifest(manifestBytes, parseSignatureFile(await readFile(sigFile, 'utf8')), config.trustedKeys);
    } catch (err) {
      // A page served in the manifest's place (a login or error page with 200) is not a manifest
      // altered after signing: say what came instead. Only described, nothing in it is believed.
      if (!parsesAsJson(manifestBytes)) {
        throw new Error(`${fileUrl(base, MANIFEST_FILE)}: not JSON, so not a bundle's manifest (${manifestBytes.length} bytes starting ${JSON.stringify(manifestBytes.subarray(0, 40).toString('utf8'))})`);
      }
      throw new Error(`${fileUrl(base, SIGNATURE_FILE)}: ${errorMessage(err)}`);
    }
    const manifest = parseManifest(manifestBytes.toString('utf8'), fileUrl(base, MANIFEST_FILE));
    return { manifest, bytes: fetched.bytes };
  }

  /** The model and the reference frames, each checked against the (signed) manifest's size and sha256. */
  async #fetchFiles(base: URL, staging: string, manifest: Manifest, manifestBytes: number, progress: (p: { bytes: number; total: number }) => void): Promise<void> {
    const config = this.#deps.config();
    const files = [
      { file: manifest.model.file, bytes: manifest.model.bytes, sha256: manifest.model.sha256 },
      ...manifest.reference_frames.map((r) => ({ file: r.file, bytes: r.bytes, sha256: r.sha256 })),
    ];
    const known = files.reduce((sum, f) => sum + (f.bytes ?? 0), manifestBytes);
    if (known > config.maxBytes) throw new Error(`the update is ${known} bytes, over ota.maxBytes (${config.maxBytes})`);
    let done = manifestBytes;
    let lastReport = -Infinity;
    for (const entry of files) {
      const target = join(staging, entry.file);
      await mkdir(dirname(target), { recursive: true });
      const before = done;
      const result = await downloadFile(fileUrl(base, entry.file), target, {
        ...(entry.bytes !== undefined ? { bytes: entry.bytes } : {}),
        ...(entry.sha256 !== undefined ? { sha256: entry.sha256 } : {}),
        maxBytes: config.maxBytes - before,
        timeoutMs: config.downloadTimeoutS * 1000,
        retries: config.downloadRetries,
        onRetry: this.#logRetry,
        signal: this.#abort.signal,
        onProgress: (received) => {
          // Monotonic: after the wall clock stepped back, Date.now() would hold progress back until it caught up.
          const now = performance.now();
          if (now - lastReport < PROGRESS_EVERY_MS) return;
          lastReport = now;
          progress({ bytes: before + received, total: known });
        },
      });
      done = before + result.bytes;
    }
    progress({ bytes: done, total: Math.max(known, done) });
  }

  readonly #logRetry = (attempt: number, reason: string): void => {
    this.#deps.log.warn(`download retry ${attempt}/${this.#deps.config().downloadRetries}: ${reason}`);
  };

  #beginProbation(request: string | null, manifest: Manifest): void {
    const seconds = this.#deps.config().probationS;
    const { live } = this.#deps;
    // Frames the model before had prepared may still fail after the switch: they are not this model's.
    const model = live.current;
    const running = modelOf(manifest);
    this.#report({ state: 'probation', request, running, target: running, message: `watching inference for ${seconds} s (ota.probationS)` });
    this.#watch({ request, running, seconds, model, errorsBefore: live.failures(model), deadline: performance.now() + seconds * 1000 });
  }

  #watch(probation: Probation): void {
    const { live } = this.#deps;
    const { request, running, model, errorsBefore, deadline } = probation;
    const check = () => {
      // A stop under way leaves the probation to resume at the next start.
      if (this.#stopped) return;
      const failed = live.failures(model) - errorsBefore;
      const why = this.#deps.health() ?? (failed > 0 ? `${failed} frame(s) failed in inference` : undefined);
      if (why !== undefined) {
        this.#endProbation();
        void this.#track(
          this.#returnToPrevious(request, false, `bad health on probation: ${why}`).catch((err: unknown) => {
            // The model under watch stays in force: nothing better can be opened.
            this.#deps.log.error(`rollback failed: ${errorMessage(err)}`);
            this.#report({ state: 'failed', request, running, target: running, message: `bad health on probation (${why}), and the rollback failed: ${errorMessage(err)}` });
          }),
        );
      } else if (performance.now() >= deadline) {
        this.#endProbation();
        void this.#track(this.#confirm(probation));
      }
    };
    const timer = setInterval(check, Math.min(1000, Math.max(50, probation.seconds * 100)));
    timer.unref();
    this.#probation = { ...probation, timer };
    if (performance.now() >= deadline) check();
  }

  /**
   * Saves the end of a probation, then closes the model before. A probation whose end could
   * not be saved (a full or read-only disk) goes on, and saving is tried again later: over,
   * but with state.json still saying probation, the next start would take the model for one
   * that died on probation and roll it back.
   */
  async #confirm(probation: Probation): Promise<void> {
    const { request, running, seconds } = probation;
    // Busy until the model before is closed: a rollback now would take it for its target.
    this.#busy = { request: request ?? '(probation resumed at start-up)', step: ENDING_PROBATION };
    try {
      try {
        await this.#deps.store.confirm();
      } catch (err) {
        const retryMs = this.#deps.confirmRetryMs ?? CONFIRM_RETRY_MS;
        this.#deps.log.error(`probation end not saved: ${errorMessage(err)}; the probation goes on, and its end is saved again in ${retryMs / 1000} s`);
        this.#report({ state: 'probation', request, running, target: running, message: `passed ${seconds} s of probation, but its end was not saved (${errorMessage(err)}); still watching, saving again in ${retryMs / 1000} s` });
        // Also when a stop is under way: it then finds a probation to leave for the next start.
        this.#watch({ ...probation, deadline: performance.now() + retryMs });
        return;
      }
      await this.#retireStandby();
      this.#report({ state: 'active', request, running, target: null, message: `passed ${seconds} s of probation` });
    } finally {
      this.#busy = undefined;
    }
  }

  async #retireStandby(): Promise<void> {
    const standby = this.#standby;
    this.#standby = undefined;
    if (standby) await this.#deps.live.retire(standby).catch((err: unknown) => this.#deps.log.warn(`closing the model before the update: ${errorMessage(err)}`));
  }

  /** A mark left behind only makes the next start report this update interrupted: worth a warning, not a failure. */
  async #endUpdate(): Promise<void> {
    await this.#deps.store.endUpdate().catch((err: unknown) => this.#deps.log.warn(`update mark not deleted: ${errorMessage(err)}`));
  }

  /** Deletes the bundles the state no longer refers to; a failure only costs disk space until the next prune. */
  async #pruneOldBundles(): Promise<void> {
    await this.#deps.store.prune().catch((err: unknown) => this.#deps.log.warn(`old bundles not deleted: ${errorMessage(err)}`));
  }

  #endProbation(): void {
    if (this.#probation) clearInterval(this.#probation.timer);
    this.#probation = undefined;
  }

  async #returnToPrevious(request: string | null, keepFailed: boolean, why: string): Promise<void> {
    const { store, log } = this.#deps;
    const failed = modelOf(this.#deps.live.manifest);
    const previous = store.previous;
    if (previous === null) throw new Error('no previous model to return to');
    // Busy while the previous model opens: an update or a second rollback now would race this one.
    this.#busy = { request: request ?? '(automatic rollback)', step: ROLLING_BACK };
    try {
      // During probation the model before is still open; later it is opened again from disk.
      const standby = this.#standby;
      const detector = standby ?? (await this.#deps.openDetector(previous));
      if (standby === undefined) this.#candidate = detector;
      try {
        await store.rollBack(keepFailed);
      } catch (err) {
        this.#candidate = undefined;
        if (standby === undefined) await detector.close().catch(() => undefined);
        throw err;
      }
      this.#standby = undefined;
      this.#candidate = undefined;
      this.#deps.live.swap(detector);
      const running = modelOf(detector.manifest);
      log.warn(`model ${failed.name} ${failed.version} rolled back to ${running.name} ${running.version}: ${why}`);
      // Still busy (cleared below): an update accepted before the prune would have its download deleted.
      await this.#pruneOldBundles();
      this.#report({ state: 'rolled_back', request, running, target: failed, message: why });
    } finally {
      this.#busy = undefined;
    }
  }
}
