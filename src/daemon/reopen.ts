/**
 * Brings the model in force back after its inference worker died (a crash, out of memory):
 * the same bundle is opened again in a fresh worker, retried with a growing delay while that
 * fails. Without it a daemon that no watchdog restarts (`npm start`) would run on and score
 * nothing; under systemd the watchdog stays the backstop, since health says unhealthy until
 * the model is back.
 */
import { backoffDelay, type BackoffPolicy } from '../capture/backoff.js';
import type { Detector } from '../inference/detector.js';
import type { LiveDetector } from '../inference/live-detector.js';
import { errorMessage, type Logger } from '../util/log.js';

/** 1 s, 2 s, 4 s … then every 30 s: a model that dies again at once (out of memory) does not spin. */
export const REOPEN_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, jitter: 0.1 };

/** How often the model in force is asked whether its worker died: small next to the first delay. */
const CHECK_EVERY_MS = 250;

export interface ModelReopenerDeps {
  live: LiveDetector;
  /** Opens a bundle the way the model in force was opened (backend, threads, pre/post-processing). */
  open: (bundleDir: string) => Promise<Detector>;
  /**
   * Whether a model update's probation, or a rollback, is under way. The rollback answers the
   * death of the model under watch; a reopen first would hide that death from the probation.
   */
  probationOrRollback: () => boolean;
  log: Logger;
  backoff?: BackoffPolicy;
}

export class ModelReopener {
  readonly #deps: ModelReopenerDeps;
  readonly #backoff: BackoffPolicy;
  #check: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** An open under way: stop() waits for it, so that what it opened is closed, not leaked. */
  #attempt: Promise<void> | undefined;
  /** The dead model being replaced, while a reopen is under way. */
  #dead: Detector | undefined;
  #failuresInRow = 0;
  /** The model last opened again, and when (monotonic ms): its death soon after is no fresh start. */
  #reopened: { detector: Detector; at: number } | undefined;
  #lastError: string | undefined;
  #stopped = false;

  constructor(deps: ModelReopenerDeps) {
    this.#deps = deps;
    this.#backoff = deps.backoff ?? REOPEN_BACKOFF;
  }

  start(): void {
    this.#check = setInterval(() => this.#notice(), CHECK_EVERY_MS);
    this.#check.unref();
  }

  /** Where reopening the model in force stands while it is under way, else undefined. */
  progress(): string | undefined {
    if (this.#dead === undefined) return undefined;
    const failed = this.#lastError === undefined ? '' : `; ${this.#failuresInRow} attempt(s) failed, the last: ${this.#lastError}`;
    return `opening it again in a fresh inference worker${failed}`;
  }

  /** Cancels a reopen that waits for its next try, and waits for one under way (what it opened is closed). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#check);
    clearTimeout(this.#retry);
    await this.#attempt;
  }

  #notice(): void {
    if (this.#stopped || this.#dead !== undefined) return;
    const current = this.#deps.live.current;
    const why = current.failure();
    if (why === undefined || this.#deps.probationOrRollback()) return;
    this.#dead = current;
    // One opened again that died within the longest delay did not run: the backoff goes on
    // growing, so that a model that dies again at once (out of memory) does not spin.
    const reopened = this.#reopened;
    const soon = reopened?.detector === current && performance.now() - reopened.at < this.#backoff.maxMs;
    this.#failuresInRow = soon ? this.#failuresInRow + 1 : 0;
    this.#lastError = undefined;
    this.#schedule(`${current.manifest.name} ${current.manifest.version} can run no frame any more (${why})`);
  }

  #schedule(why: string): void {
    const delay = backoffDelay(this.#failuresInRow + 1, this.#backoff);
    this.#deps.log.error(`${why}; opening it again in a fresh inference worker in ${delay} ms`);
    this.#retry = setTimeout(() => {
      this.#attempt = this.#reopen().finally(() => {
        this.#attempt = undefined;
      });
    }, delay);
    this.#retry.unref();
  }

  async #reopen(): Promise<void> {
    const { live, log } = this.#deps;
    const dead = this.#dead;
    if (this.#stopped || dead === undefined) return;
    if (live.current !== dead) {
      this.#dead = undefined;
      log.info('another model was put in force meanwhile (an update or a rollback); the dead one is not opened again');
      return;
    }
    let fresh: Detector;
    try {
      fresh = await this.#deps.open(dead.bundle.dir);
    } catch (err) {
      this.#failuresInRow += 1;
      this.#lastError = errorMessage(err);
      if (!this.#stopped) this.#schedule(`opening ${dead.bundle.dir} again failed (attempt ${this.#failuresInRow}): ${this.#lastError}`);
      return;
    }
    // A stop, or a switch to another model, that came while it opened has the last word.
    if (this.#stopped || live.current !== dead) {
      this.#dead = undefined;
      await fresh.close().catch((err: unknown) => log.warn(`closing the model opened again: ${errorMessage(err)}`));
      if (!this.#stopped) log.info('another model was put in force meanwhile (an update or a rollback); the one opened again is closed');
      return;
    }
    live.swap(fresh);
    this.#dead = undefined;
    this.#reopened = { detector: fresh, at: performance.now() };
    log.info(`${fresh.manifest.name} ${fresh.manifest.version} runs again, in a fresh inference worker (after ${this.#failuresInRow} failed attempt(s))`);
  }
}
