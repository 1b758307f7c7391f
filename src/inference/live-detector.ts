/**
 * The model in force, replaceable while frames flow (over-the-air updates, rollbacks).
 * Every frame is prepared and inferred by one and the same detector: a frame prepared just
 * before a switch runs on the model that prepared it (the new one may want another input
 * size), and a replaced detector is closed once its last such frame is done.
 */
import type { Manifest } from '../bundle/manifest.js';
import type { Frame } from '../capture/frame.js';
import { PreprocessError } from '../preprocess/errors.js';
import type { BackendCapabilities } from './backend.js';
import type { Detection, Detector, PreparedFrame } from './detector.js';

export class LiveDetector {
  #current: Detector;
  /** Frames between `prepare` and the end of `infer`, per detector. */
  readonly #inFlight = new Map<Detector, number>();
  readonly #preparedBy = new WeakMap<PreparedFrame, Detector>();
  /** Frames that failed, per detector that prepared them (frames it could not decode aside). */
  readonly #failures = new WeakMap<Detector, number>();
  /** Replaced detectors waiting for their frames, with what closes them. */
  readonly #retiring = new Map<Detector, () => void>();
  readonly #closing: Promise<void>[] = [];

  constructor(initial: Detector) {
    this.#current = initial;
  }

  get current(): Detector {
    return this.#current;
  }

  get manifest(): Manifest {
    return this.#current.manifest;
  }

  async prepare(frame: Frame): Promise<PreparedFrame> {
    const detector = this.#current;
    this.#enter(detector);
    try {
      const prepared = await detector.prepare(frame);
      this.#preparedBy.set(prepared, detector);
      return prepared;
    } catch (err) {
      // A frame that cannot be decoded says nothing about the model.
      if (!(err instanceof PreprocessError)) this.#countFailure(detector);
      this.#leave(detector);
      throw err;
    }
  }

  async infer(prepared: PreparedFrame): Promise<Detection> {
    const detector = this.#preparedBy.get(prepared);
    if (!detector) throw new Error('LiveDetector.infer: this frame was not prepared here');
    this.#preparedBy.delete(prepared);
    try {
      return await detector.infer(prepared);
    } catch (err) {
      this.#countFailure(detector);
      throw err;
    } finally {
      this.#leave(detector);
    }
  }

  /**
   * Frames prepared by `detector` that failed so far. A model update's probation counts these
   * for the new model only: frames the model before had prepared finish (or fail) on it.
   */
  failures(detector: Detector): number {
    return this.#failures.get(detector) ?? 0;
  }

  /**
   * Frames `detector` prepared (or is preparing) whose inference has not ended. After the
   * cameras stopped, these are the frames they abandoned on it.
   */
  inFlight(detector: Detector): number {
    return this.#inFlight.get(detector) ?? 0;
  }

  /** Why the model in force can run no frame any more (its inference worker died), else undefined. */
  failure(): string | undefined {
    return this.#current.failure();
  }

  snapshot(frame: Frame, detection: Detection, options: { threshold: { value: number; good_median: number } }): Promise<Buffer> {
    return this.#current.snapshot(frame, detection, options);
  }

  capabilities(): BackendCapabilities {
    return this.#current.capabilities();
  }

  inferenceThreadIds(): readonly number[] | undefined {
    return this.#current.inferenceThreadIds();
  }

  /**
   * Puts `next` in force for every frame prepared from now on and returns the replaced
   * detector. Unless `keep` is set, that one closes when its frames in flight are done;
   * a kept one stays open for a quick way back (`swap` to it) until `retire` is called.
   */
  swap(next: Detector, { keep = false }: { keep?: boolean } = {}): Detector {
    if (this.#retiring.has(next)) throw new Error('LiveDetector.swap: that detector is being retired');
    const previous = this.#current;
    this.#current = next;
    if (!keep && previous !== next) void this.retire(previous);
    return previous;
  }

  /** Closes a detector that is no longer in force, once its frames in flight are done. */
  retire(detector: Detector): Promise<void> {
    if (detector === this.#current) return Promise.reject(new Error('LiveDetector.retire: that detector is in force'));
    const closed = new Promise<void>((resolve, reject) => {
      this.#retiring.set(detector, () => void detector.close().then(resolve, reject));
    });
    this.#closing.push(closed.catch(() => undefined));
    if ((this.#inFlight.get(detector) ?? 0) === 0) this.#close(detector);
    return closed;
  }

  /** Closes the detector in force and waits for replaced ones (call after the cameras stopped). */
  async close(): Promise<void> {
    for (const detector of [...this.#retiring.keys()]) this.#close(detector);
    await Promise.all(this.#closing);
    await this.#current.close();
  }

  #countFailure(detector: Detector): void {
    this.#failures.set(detector, this.failures(detector) + 1);
  }

  #enter(detector: Detector): void {
    this.#inFlight.set(detector, (this.#inFlight.get(detector) ?? 0) + 1);
  }

  #leave(detector: Detector): void {
    const left = (this.#inFlight.get(detector) ?? 1) - 1;
    if (left > 0) {
      this.#inFlight.set(detector, left);
      return;
    }
    this.#inFlight.delete(detector);
    if (this.#retiring.has(detector)) this.#close(detector);
  }

  #close(detector: Detector): void {
    const close = this.#retiring.get(detector);
    this.#retiring.delete(detector);
    close?.();
  }
}
