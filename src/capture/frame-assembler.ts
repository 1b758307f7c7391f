/**
 * Cuts a byte stream from a child's stdout into whole frames of exactly `frameBytes`.
 * Bytes land in the frame being filled, read there in place (`target`, `advance`) or copied
 * from chunks (`push`), and the buffers of frames their holder is done with come back
 * (`release`) to be filled again: at 720p rgb24 a fresh 2.7 MB buffer cost 0.3 ms a frame in
 * page faults against 0.03 ms for the copy into a reused one,
 * and each fresh one adds to the external memory that makes V8 start a full collection (the
 * daemon at 30 fps of 720p ran about five a second).
 */

/** Free buffers kept for reuse; more than a camera has frames in flight would only hold memory. */
const MAX_SPARE = 3;

export class FrameAssembler {
  private current: Buffer;
  private filled = 0;
  readonly #spare: Buffer[] = [];

  constructor(
    readonly frameBytes: number,
    /** `release` hands the buffer back once nothing reads it any more; calling it is optional. */
    private readonly onFrame: (data: Buffer, release: () => void) => void,
  ) {
    if (!Number.isInteger(frameBytes) || frameBytes <= 0) throw new Error(`frame size must be a positive integer, got ${frameBytes}`);
    this.current = Buffer.allocUnsafe(frameBytes);
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(this.frameBytes - this.filled, chunk.length - offset);
      chunk.copy(this.current, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
      if (this.filled === this.frameBytes) this.#emit();
    }
  }

  #emit(): void {
    const whole = this.current;
    this.current = this.#spare.pop() ?? Buffer.allocUnsafe(this.frameBytes);
    this.filled = 0;
    this.onFrame(whole, this.#releaser(whole));
  }

  /** Where the next bytes of the stream go, for a reader that fills it in place (then `advance`). */
  target(): Buffer {
    return this.current.subarray(this.filled);
  }

  /** `n` bytes were written into `target()`. */
  advance(n: number): void {
    if (!Number.isInteger(n) || n < 0 || this.filled + n > this.frameBytes) throw new Error(`cannot advance ${n} bytes with ${this.frameBytes - this.filled} left in the frame`);
    this.filled += n;
    if (this.filled === this.frameBytes) this.#emit();
  }

  /** Ends the stream: returns how many bytes of a partial frame were thrown away (0 if none). */
  end(): number {
    const leftover = this.filled;
    this.filled = 0;
    return leftover;
  }

  /** Buffers waiting to be filled again (tests read it). */
  get spareBuffers(): number {
    return this.#spare.length;
  }

  /** A once-only hand-back: a second call must not put the buffer in the free list twice. */
  #releaser(buffer: Buffer): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (this.#spare.length < MAX_SPARE) this.#spare.push(buffer);
    };
  }
}
