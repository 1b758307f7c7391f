/**
 * A log for lines that can repeat on every frame (a camera sending corrupt frames, a dead
 * inference worker, a broker refusing publishes): at 30 fps a line per frame is ~100k lines
 * an hour, which floods the journal and wears the SD card or eMMC of an edge board. Counters
 * already count every frame, so the log only has to say that it is happening.
 *
 * The first line of a kind is logged at once; later lines of that kind within the window
 * are held back and counted. When the window is over, the newest held line is logged saying
 * how many came before it, and a new window opens: a failure on every frame logs one line per
 * window, and a burst that stopped is still told within one window, not days later at the
 * next stop. flush() logs what is still held (at stop). Every line is thus either logged or
 * counted in a logged one.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from './log.js';

export const REPEAT_WINDOW_MS = 10_000;

/** Kinds remembered at most: a message whose kind changes every time must not grow memory. */
const MAX_KINDS = 64;

export interface RepeatLimiterOptions {
  /** How long after a logged line of a kind the next ones are only counted (ms). */
  windowMs?: number;
  /** Monotonic milliseconds (tests inject their own). */
  now?: () => number;
  /**
   * Runs `fn` after `delayMs` and returns what cancels it (tests inject their own). The
   * default timer is unref'd: a held line never keeps the process alive.
   */
  schedule?: (fn: () => void, delayMs: number) => () => void;
}

type Level = 'warn' | 'error';

interface Kind {
  level: Level;
  /** When the last line of this kind was logged. */
  loggedAt: number;
  /** Lines held back since, and the newest of them. */
  held: number;
  latest: string;
  /** Cancels the timer that tells the held lines when the window is over; set while held > 0. */
  cancelWindow?: () => void;
}

/**
 * What stays the same across repeats of one failure: the frame index, sequence numbers,
 * sizes and durations are digits, so they are masked, and two failures that differ in words
 * stay two kinds.
 */
export function repeatKind(message: string): string {
  return message.replace(/\d+/g, '#');
}

export class RepeatLimiter {
  readonly #log: Pick<Logger, Level>;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #schedule: (fn: () => void, delayMs: number) => () => void;
  /** In the order they were last logged, oldest first. */
  readonly #kinds = new Map<string, Kind>();

  constructor(log: Pick<Logger, Level>, options: RepeatLimiterOptions = {}) {
    this.#log = log;
    this.#windowMs = options.windowMs ?? REPEAT_WINDOW_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#schedule = options.schedule ?? unrefTimeout;
  }

  warn(message: string): void {
    this.#line('warn', message);
  }

  error(message: string): void {
    this.#line('error', message);
  }

  /** Logs each kind's held-back lines (the newest, with the count) and forgets every kind. */
  flush(): void {
    const now = this.#now();
    for (const kind of this.#kinds.values()) this.#flushKind(kind, now);
    this.#kinds.clear();
  }

  /** A kind's window is over: its held lines are told now, and the next ones open a new window. */
  #windowOver(key: string, kind: Kind): void {
    kind.cancelWindow = undefined;
    if (this.#kinds.get(key) !== kind || kind.held === 0) return;
    const now = this.#now();
    this.#flushKind(kind, now);
    this.#remember(key, { level: kind.level, loggedAt: now, held: 0, latest: kind.latest }, now);
  }

  #line(level: Level, message: string): void {
    const now = this.#now();
    const key = `${level} ${repeatKind(message)}`;
    const kind = this.#kinds.get(key);
    if (kind && now - kind.loggedAt < this.#windowMs) {
      kind.held += 1;
      kind.latest = message;
      kind.cancelWindow ??= this.#schedule(() => this.#windowOver(key, kind), kind.loggedAt + this.#windowMs - now);
      return;
    }
    this.#log[level](kind && kind.held > 0 ? withCount(message, kind.held, now - kind.loggedAt) : message);
    this.#remember(key, { level, loggedAt: now, held: 0, latest: message }, now);
  }

  /** Puts `kind` in place of the one under `key`, as the newest; the oldest goes past the bound. */
  #remember(key: string, kind: Kind, now: number): void {
    this.#kinds.get(key)?.cancelWindow?.();
    // Inserted again, so that the map stays in logging order and the oldest kind goes first.
    this.#kinds.delete(key);
    this.#kinds.set(key, kind);
    if (this.#kinds.size > MAX_KINDS) {
      const [oldestKey, oldest] = this.#kinds.entries().next().value!;
      this.#flushKind(oldest, now);
      this.#kinds.delete(oldestKey);
    }
  }

  #flushKind(kind: Kind, now: number): void {
    kind.cancelWindow?.();
    kind.cancelWindow = undefined;
    if (kind.held === 0) return;
    // The newest held line is logged itself; the ones before it are counted in it.
    this.#log[kind.level](kind.held === 1 ? kind.latest : withCount(kind.latest, kind.held - 1, now - kind.loggedAt));
  }
}

function unrefTimeout(fn: () => void, delayMs: number): () => void {
  const timer = setTimeout(fn, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
}

function withCount(message: string, more: number, sinceMs: number): string {
  return `${message} (and ${more} more like it in the last ${Math.max(1, Math.round(sinceMs / 1000))} s)`;
}
