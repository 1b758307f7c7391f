/**
 * Rolling figures for telemetry: latency percentiles over the most recent frames and a
 * frame rate over the last telemetry interval.
 */

/** Percentile by nearest rank on a sorted copy; null when there are no samples. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? null;
}

export class LatencyWindow {
  #samples: number[] = [];
  #next = 0;

  constructor(private readonly size = 1000) {}

  add(ms: number): void {
    if (this.#samples.length < this.size) this.#samples.push(ms);
    else {
      this.#samples[this.#next] = ms;
      this.#next = (this.#next + 1) % this.size;
    }
  }

  /** p50/p95/p99 in ms, rounded to 0.1 ms. */
  percentiles(): { p50: number | null; p95: number | null; p99: number | null } {
    const sorted = [...this.#samples].sort((a, b) => a - b);
    const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
    return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)) };
  }
}

/** Frames per second between two readings of a counter. */
export class RateMeter {
  #lastCount = 0;
  #lastAt: number;

  constructor(now = performance.now()) {
    this.#lastAt = now;
  }

  read(count: number, now = performance.now()): number {
    const seconds = (now - this.#lastAt) / 1000;
    const rate = seconds > 0 ? (count - this.#lastCount) / seconds : 0;
    this.#lastCount = count;
    this.#lastAt = now;
    return Math.round(rate * 100) / 100;
  }
}
