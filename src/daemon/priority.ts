/**
 * Inference first: every thread of the process except the main thread and the threads
 * running the model is moved to a higher nice value, so when the CPU is saturated the
 * kernel gives the model's threads the cores and the rest (image decoding on libuv's and
 * libvips' pools, garbage collection, file syncs) fills the gaps. Without it, with one
 * inference thread on a 2-core machine, the decoder and the publisher preempted the model
 * for 8-10 % of its time (measured with /proc/<pid>/task/<tid>/schedstat).
 *
 * The main thread keeps its priority: threads inherit their creator's nice value and only a
 * privileged process can lower it again, so an inference worker started later (a reopened
 * model) must come from a thread at normal priority. Threads start lazily (libvips creates
 * workers on first use), so the sweep repeats.
 */
import { availableParallelism } from 'node:os';
import { deprioritizeThreads, processThreadIds } from '../util/threads.js';

/** Why the policy is off, or undefined when it applies. */
export function housekeepingPriorityOff(options: { nice: number; inferenceThreads: number; platform?: NodeJS.Platform; cores?: number }): string | undefined {
  const { nice, inferenceThreads, platform = process.platform, cores = availableParallelism() } = options;
  if (nice === 0) return 'inference.housekeepingNice is 0';
  if (platform !== 'linux') return `thread priorities are per process on ${platform}`;
  // With inference on every core, starving the decoder would leave the model waiting for its next frame.
  if (inferenceThreads === 0 || inferenceThreads >= cores) {
    return `inference uses every core (${inferenceThreads === 0 ? 'default' : inferenceThreads} threads on ${cores} cores); set inference.threads below ${cores} to leave a core for the rest`;
  }
  return undefined;
}

export class HousekeepingPriority {
  #timer: NodeJS.Timeout | undefined;

  /** `inferenceThreads` answers the TIDs to leave alone (undefined: unknown, do nothing). */
  constructor(
    private readonly nice: number,
    private readonly inferenceThreads: () => readonly number[] | undefined,
  ) {}

  /** One sweep; returns how many threads run at the lower priority, or undefined when the model's threads are unknown. */
  apply(): number | undefined {
    const keep = this.inferenceThreads();
    if (!keep || keep.length === 0) return undefined;
    const spared = new Set([process.pid, ...keep]);
    return deprioritizeThreads(
      processThreadIds().filter((tid) => !spared.has(tid)),
      this.nice,
    );
  }

  /** Sweeps now and every `everyMs` (for threads started later), until stop(). */
  start(everyMs = 5000): number | undefined {
    const lowered = this.apply();
    this.#timer = setInterval(() => this.apply(), everyMs);
    this.#timer.unref();
    return lowered;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** What `favorInference` did: `stop` ends the sweeps; `off` says why nothing was changed. */
export interface InferencePriority {
  stop(): void;
  off?: string;
  lowered?: number;
}

/**
 * The daemon's policy in one place (the daemon and the benchmark rig both use it): decide
 * whether it applies, sweep, and keep sweeping only while the backend names its threads.
 */
export function favorInference(options: { nice: number; threads: number; inferenceThreadIds: () => readonly number[] | undefined }): InferencePriority {
  const off = housekeepingPriorityOff({ nice: options.nice, inferenceThreads: options.threads });
  if (off) return { stop: () => undefined, off };
  const priority = new HousekeepingPriority(options.nice, options.inferenceThreadIds);
  const lowered = priority.start();
  if (lowered === undefined) {
    priority.stop();
    return { stop: () => undefined, off: 'the backend does not name its inference threads' };
  }
  return { stop: () => priority.stop(), lowered };
}
