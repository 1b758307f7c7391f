/**
 * Reconnect delays with exponential growth and "full jitter": each delay is uniform in
 * [0, min(max, min·2^attempt)]. The jitter spreads a fleet that lost the same broker over
 * the whole window, so a restarted broker is not hit by every camera in the same second.
 */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    if (!(minMs > 0) || !(maxMs >= minMs)) throw new Error(`backoff needs 0 < minMs <= maxMs, got ${minMs}, ${maxMs}`);
  }

  /** Delay before the next attempt; every call widens the window until maxMs. */
  next(): number {
    // 2^attempt is capped well before it could overflow; the cap on the window does the rest.
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt += 1;
    return Math.floor(this.random() * ceiling);
  }

  /** A connection that held: start over from the smallest window. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
