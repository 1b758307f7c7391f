/**
 * A full garbage collection whenever V8's old generation has grown by a budget since its
 * last one, so that the daemon's resident size stays flat at low frame rates.
 *
 * Why: the daemon's Node flags (src/cli/node-flags.ts) let the old generation grow to twice
 * what survived the last full collection before V8 runs another; at 200 fps that room is what
 * keeps full collections rare. At a camera's 10 fps the daemon still promotes about 0.8 MB a
 * minute of objects that outlive two scavenges and then die (timers, worker messages, outbox
 * records and the like: a sampling heap profile found no single source), and nothing collects
 * them for 20-30 minutes: RSS climbed about 1 MiB a minute and fell back by 10 MiB at the
 * collection (docs/bench.md, memory).
 * V8's memory reducer, which collects a heap that has gone quiet, is only re-armed by a full
 * collection, and Node gives V8 no idle-time notifications, so here the daemon asks.
 *
 * A collection of the daemon's ~25 MB heap held the main thread 2-20 ms here. At 10 fps this
 * asks for one every few minutes; at 200 fps V8 mostly gets there first.
 */
import v8 from 'node:v8';

/** Old-generation growth (MiB) since the last full collection that asks for one. */
export const HEAP_TRIM_BUDGET_MB = 4;
/** How often the old generation is looked at. */
export const HEAP_TRIM_CHECK_MS = 10_000;

/** Bytes in use in the spaces objects are promoted to (old and large-object). */
export function oldGenerationBytes(): number {
  let bytes = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    if (space.space_name === 'old_space' || space.space_name === 'large_object_space') bytes += space.space_used_size;
  }
  return bytes;
}

export class HeapTrimmer {
  readonly #gc: NodeJS.GCFunction | undefined;
  readonly #budgetBytes: number;
  readonly #checkMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** Lowest old-generation size seen since the last full collection this asked for (V8's own lower it too). */
  #floor = oldGenerationBytes();
  #requested = 0;

  /** `gc` is V8's collector as `--expose-gc` exposes it; without it the trimmer does nothing. */
  constructor(gc: NodeJS.GCFunction | undefined, { budgetMb = HEAP_TRIM_BUDGET_MB, checkMs = HEAP_TRIM_CHECK_MS } = {}) {
    this.#gc = gc;
    this.#budgetBytes = budgetMb * 1048576;
    this.#checkMs = checkMs;
  }

  /** Whether collections can be asked for (Node started with --expose-gc). */
  get available(): boolean {
    return this.#gc !== undefined;
  }

  /** Full collections asked for so far. */
  get requested(): number {
    return this.#requested;
  }

  start(): void {
    if (!this.#gc || this.#timer) return;
    this.#timer = setInterval(() => this.check(), this.#checkMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Asks for a full collection when the old generation has grown by the budget over its
   * lowest size since the last one; returns whether it did.
   */
  check(): boolean {
    const gc = this.#gc;
    if (!gc) return false;
    const now = oldGenerationBytes();
    // A size below the floor means a full collection ran (V8's own): growth counts from there.
    this.#floor = Math.min(this.#floor, now);
    if (now - this.#floor < this.#budgetBytes) return false;
    this.#requested += 1;
    // A task of its own, not inside whichever callback happened to run this check.
    void gc({ type: 'major', execution: 'async' }).then(() => {
      this.#floor = oldGenerationBytes();
    });
    this.#floor = now;
    return true;
  }
}
