/**
 * Cuts a byte stream from a child's stdout into whole frames of exactly `frameBytes`.
 * Memory stays bounded at one frame: bytes are copied straight into the frame being filled.
 */
export class FrameAssembler {
  private current: Buffer;
  private filled = 0;

  constructor(
    readonly frameBytes: number,
    private readonly onFrame: (data: Buffer) => void,
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
      if (this.filled === this.frameBytes) {
        const whole = this.current;
        this.current = Buffer.allocUnsafe(this.frameBytes);
        this.filled = 0;
        this.onFrame(whole);
      }
    }
  }

  /** Ends the stream: returns how many bytes of a partial frame were thrown away (0 if none). */
  end(): number {
    const leftover = this.filled;
    this.filled = 0;
    return leftover;
  }
}
