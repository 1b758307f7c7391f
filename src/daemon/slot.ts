/**
 * Backpressure between a camera and inference: a slot holding at most one waiting frame.
 * When inference is slower than capture, a new frame replaces the waiting one (the newest
 * frame wins, its predecessor is counted as dropped), so memory stays bounded and the
 * scores describe the scene as it is now, not as it was a queue ago.
 */
export class LatestFrameSlot<T> {
  /** Called with each frame the slot discards (replaced, or waiting at close). */
  readonly #onDiscard: (item: T) => void;
  #waiting: T | undefined;
  #taker: ((item: T | undefined) => void) | undefined;
  #closed = false;
  #dropped = 0;

  constructor(onDiscard: (item: T) => void = () => undefined) {
    this.#onDiscard = onDiscard;
  }

  /** Frames replaced before inference took them. */
  get dropped(): number {
    return this.#dropped;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Offers a frame; returns false when it replaced a waiting one (a drop). */
  put(item: T): boolean {
    if (this.#closed) {
      this.#onDiscard(item);
      return true;
    }
    if (this.#taker) {
      const taker = this.#taker;
      this.#taker = undefined;
      taker(item);
      return true;
    }
    const replaced = this.#waiting;
    if (replaced !== undefined) {
      this.#dropped += 1;
      this.#onDiscard(replaced);
    }
    this.#waiting = item;
    return replaced === undefined;
  }

  /** The waiting frame, or the next one to arrive; undefined once closed. One taker at a time. */
  take(): Promise<T | undefined> {
    if (this.#waiting !== undefined) {
      const item = this.#waiting;
      this.#waiting = undefined;
      return Promise.resolve(item);
    }
    if (this.#closed) return Promise.resolve(undefined);
    if (this.#taker) return Promise.reject(new Error('LatestFrameSlot has one consumer; take() called while another take() waits'));
    return new Promise((resolve) => {
      this.#taker = resolve;
    });
  }

  /** No more frames: a waiting taker gets undefined; a waiting frame is discarded (not inferred, not counted). */
  close(): void {
    this.#closed = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting !== undefined) this.#onDiscard(waiting);
    const taker = this.#taker;
    this.#taker = undefined;
    taker?.(undefined);
  }
}
