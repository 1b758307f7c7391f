/**
 * Cuts a byte stream from a child's stdout into whole frames of exactly `frameBytes`.
 * A stream whose rows carry padding (GStreamer pads each row of RGB to a multiple of 4 bytes)
 * is read with its padding and the rows are moved together in place once a frame is whole.
 * Bytes land in the frame being filled, read there in place (`target`, `advance`) or copied
 * from chunks (`push`), and the buffers of frames their holder is done with come back
 * (`release`) to be filled again: at 720p rgb24 a fresh 2.7 MB buffer cost 0.3 ms a frame in
 * page faults against 0.03 ms for the copy into a reused one,
 * and each fresh one adds to the external memory that makes V8 start a full collection (the
 * daemon at 30 fps of 720p ran about five a second).
 */

/** Free buffers kept for reuse; more than a camera has frames in flight would only hold memory. */
const MAX_SPARE = 3;

/** Rows of a frame in the stream: `rows` of them, each `stride` bytes, of which the first frameBytes / rows are pixels. */
export interface RowPadding {
  rows: number;
  stride: number;
}

export class FrameAssembler {
  /** Bytes a frame takes in the stream, padding included. */
  readonly streamBytes: number;
  private readonly rowBytes: number;
  private readonly stride: number;
  private current: Buffer;
  private filled = 0;
  readonly #spare: Buffer[] = [];

  constructor(
    /** Bytes of a frame as it is handed on, without padding. */
    readonly frameBytes: number,
    /** `release` hands the buffer back once nothing reads it any more; calling it is optional. */
    private readonly onFrame: (data: Buffer, release: () => void) => void,
    padding: RowPadding = { rows: 1, stride: frameBytes },
  ) {
    if (!Number.isInteger(frameBytes) || frameBytes <= 0) throw new Error(`frame size must be a positive integer, got ${frameBytes}`);
    this.rowBytes = frameBytes / padding.rows;
    this.stride = padding.stride;
    if (!Number.isInteger(this.rowBytes) || !Number.isInteger(this.stride) || this.stride < this.rowBytes) {
      throw new Error(`${frameBytes} bytes cannot be ${padding.rows} rows of a ${padding.stride}-byte stride`);
    }
    this.streamBytes = padding.rows * this.stride;
    this.current = Buffer.allocUnsafe(this.streamBytes);
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(this.streamBytes - this.filled, chunk.length - offset);
      chunk.copy(this.current, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
      if (this.filled === this.streamBytes) this.#emit();
    }
  }

  #emit(): void {
    const whole = this.current;
    this.current = this.#spare.pop() ?? Buffer.allocUnsafe(this.streamBytes);
    this.filled = 0;
    this.onFrame(this.#unpad(whole), this.#releaser(whole));
  }

  /**
   * The frame's rows moved together over the padding, in the same buffer: a row moves only
   * towards the start and never past the previous one's end, so moving them in order never
   * overwrites a row still to be moved.
   */
  #unpad(frame: Buffer): Buffer {
    if (this.stride === this.rowBytes) return frame;
    for (let at = this.rowBytes, from = this.stride; at < this.frameBytes; at += this.rowBytes, from += this.stride) {
      frame.copyWithin(at, from, from + this.rowBytes);
    }
    return frame.subarray(0, this.frameBytes);
  }

  /** Where the next bytes of the stream go, for a reader that fills it in place (then `advance`). */
  target(): Buffer {
    return this.current.subarray(this.filled);
  }

  /** `n` bytes were written into `target()`. */
  advance(n: number): void {
    if (!Number.isInteger(n) || n < 0 || this.filled + n > this.streamBytes) throw new Error(`cannot advance ${n} bytes with ${this.streamBytes - this.filled} left in the frame`);
    this.filled += n;
    if (this.filled === this.streamBytes) this.#emit();
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
