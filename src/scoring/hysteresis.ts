/**
 * Events with hysteresis: one noisy frame neither starts nor ends an event. An event starts
 * after `startFrames` consecutive anomalous frames and ends after `endFrames` consecutive
 * normal ones; frames below the threshold inside an event (fewer than endFrames) belong to it.
 */
import type { EventMessage } from '../mqtt/link.js';

export interface HysteresisOptions {
  startFrames: number;
  endFrames: number;
}

export interface ScoredFrame {
  /** The score message's seq: names the event (unique per camera, also across restarts). */
  seq: number;
  score: number;
  anomalous: boolean;
  ts: string;
}

interface Run {
  firstSeq: number;
  frames: number;
  peak: number;
}

export class EventTracker {
  /** Anomalous frames in a row while no event is open. */
  #pending: Run | undefined;
  #open: (Run & { id: string; below: number }) | undefined;
  #options: HysteresisOptions;

  constructor(
    readonly camera: string,
    options: HysteresisOptions,
  ) {
    this.#options = { ...options };
  }

  /** New N and M apply from the next frame; a pending run or open event carries on. */
  setOptions(options: HysteresisOptions): void {
    this.#options = { ...options };
  }

  get openEventId(): string | undefined {
    return this.#open?.id;
  }

  /** The open event's id, peak and length so far (what its `end` would carry), if one is open. */
  get openEvent(): { id: string; peak_score: number; frames: number } | undefined {
    const open = this.#open;
    return open ? { id: open.id, peak_score: open.peak, frames: open.frames } : undefined;
  }

  /** Feeds one scored frame; returns the event it starts or ends, if any. */
  update(frame: ScoredFrame): EventMessage | undefined {
    const open = this.#open;
    if (open) {
      if (frame.anomalous) {
        // The frames under the threshold that did not end the event are part of it.
        open.frames += open.below + 1;
        open.below = 0;
        open.peak = Math.max(open.peak, frame.score);
        return undefined;
      }
      open.below += 1;
      if (open.below < this.#options.endFrames) return undefined;
      this.#open = undefined;
      return { id: open.id, type: 'end', ts: frame.ts, peak_score: open.peak, frames: open.frames };
    }
    if (!frame.anomalous) {
      this.#pending = undefined;
      return undefined;
    }
    const run = this.#pending ?? { firstSeq: frame.seq, frames: 0, peak: -Infinity };
    run.frames += 1;
    run.peak = Math.max(run.peak, frame.score);
    if (run.frames < this.#options.startFrames) {
      this.#pending = run;
      return undefined;
    }
    this.#pending = undefined;
    const id = `${this.camera}-${run.firstSeq}`;
    this.#open = { ...run, id, below: 0 };
    return { id, type: 'start', ts: frame.ts, peak_score: run.peak, frames: run.frames };
  }

  /** Ends an open event now (the daemon is stopping), so no consumer waits for an end forever. */
  close(ts: string): EventMessage | undefined {
    const open = this.#open;
    this.#open = undefined;
    this.#pending = undefined;
    if (!open) return undefined;
    return { id: open.id, type: 'end', ts, peak_score: open.peak, frames: open.frames };
  }
}
