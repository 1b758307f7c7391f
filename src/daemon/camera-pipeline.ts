/**
 * One camera's path through the daemon: source → latest-frame slot → detector → decision
 * → score message (with its seq) → events and snapshot. A frame that cannot be decoded is
 * counted and skipped; it never gets a seq and never stops the camera.
 *
 * The path is a short pipeline: while the inference thread runs frame N, the main thread
 * preprocesses the frames behind it (inference.framesAhead of them) and queues them on the
 * inference thread, then post-processes and publishes frame N-1, so inference does not wait
 * for a decode, a map upsample or an outbox fsync. Publishing stays in frame order.
 */
import { performance } from 'node:perf_hooks';
import type { Manifest } from '../bundle/manifest.js';
import type { CameraConfig } from '../capture/config.js';
import type { Frame, FrameSource, SourceStatus } from '../capture/frame.js';
import type { ScoringConfig } from '../config/schema.js';
import type { Detection, PreparedFrame } from '../inference/detector.js';
import type { EventMessage, FleetLink } from '../mqtt/link.js';
import type { CameraTelemetry } from '../mqtt/topics.js';
import { PreprocessError } from '../preprocess/errors.js';
import { decide, describeRegion, regionsOf, thresholdFor } from '../scoring/decide.js';
import { EventTracker } from '../scoring/hysteresis.js';
import type { OpenEventFile } from '../scoring/open-event.js';
import type { CameraSeq } from '../scoring/seq.js';
import { errorMessage, type Logger } from '../util/log.js';
import { RepeatLimiter } from '../util/repeat-log.js';
import { LatestFrameSlot } from './slot.js';
import { LatencyWindow, RateMeter } from './stats.js';

/** The part of the inference Detector a camera needs (the daemon shares one across cameras). */
export interface FrameDetector {
  readonly manifest: Manifest;
  /** Decode and normalize (throws PreprocessError for a bad frame). */
  prepare(frame: Frame): Promise<PreparedFrame>;
  /** Run the model and post-process its map. */
  infer(prepared: PreparedFrame): Promise<Detection>;
  snapshot(frame: Frame, detection: Detection, options: { threshold: { value: number; good_median: number } }): Promise<Buffer>;
}

export interface CameraPipelineDeps {
  camera: CameraConfig;
  source: FrameSource;
  detector: FrameDetector;
  link: FleetLink;
  seq: CameraSeq;
  /**
   * Where the camera's open event is kept, so that one a crash left open is ended at the next
   * start (src/scoring/open-event.ts); absent: open events are not kept across runs.
   */
  openEvent?: OpenEventFile;
  /** The scoring section in force now (it changes on reload and set-threshold). */
  scoring: () => ScoringConfig;
  /** Seconds a frame may stay in inference before the camera reports `inference_stuck`. */
  stuckTimeoutS: number;
  /** Frames kept decoded and queued behind the one in inference (inference.framesAhead, at least 1). */
  framesAhead: number;
  log: Logger;
}

/** A frame handed to the inference thread, with the outcome it will have. */
interface InFlight {
  frame: Frame;
  inference: Promise<{ detection: Detection } | { error: unknown }>;
}

/** A camera's published state: its source's, or `inference_stuck` while the model hangs. */
type CameraStatus = SourceStatus | { camera: string; state: 'inference_stuck'; message: string };

export interface CameraStatusReport {
  state: string;
  message?: string;
  frames: number;
  next_seq: number;
  threshold: number;
  open_event: string | null;
}

export class CameraPipeline {
  readonly name: string;
  readonly #deps: CameraPipelineDeps;
  // A frame's pixels go back to its source (Frame.release) at the last of: replaced in the slot
  // or failed; replaced as #lastScored; the last snapshot drawn from it finished.
  readonly #slot = new LatestFrameSlot<Frame>((frame) => frame.release?.());
  readonly #tracker: EventTracker;
  readonly #latency = new LatencyWindow();
  readonly #rate = new RateMeter();
  #loop: Promise<void> | undefined;
  #status: CameraStatus;
  #scored = 0;
  /** Scored frames at or over the threshold, and events started: how often this camera alarms. */
  #anomalous = 0;
  #events = 0;
  #decodeErrors = 0;
  #inferenceErrors = 0;
  #publishErrors = 0;
  /** What the source last reported; the published status is this unless inference is stuck. */
  #sourceStatus: SourceStatus;
  /** When the frame now in inference went in (monotonic ms), undefined when none is. */
  #inferenceSince: number | undefined;
  #stuck = false;
  #stuckTimer: NodeJS.Timeout | undefined;
  /** Set when stop() begins: the source is never started again after it. */
  #stopped = false;
  /** A restart-camera under way, which stop() lets finish before it stops the source. */
  #restarting: Promise<unknown> | undefined;
  /** Set when stop() gave up waiting for a frame in inference: its result, if any, is dropped. */
  #abandoned = false;
  /** The newest frame that got a score, kept for the `snapshot` command. */
  #lastScored: { frame: Frame; detection: Detection; seq: number } | undefined;
  /** Snapshots being drawn, per frame, and the frames to release once theirs are done. */
  readonly #drawing = new Map<Frame, number>();
  readonly #releaseAfterDrawing = new Set<Frame>();
  /**
   * The log for failures that can repeat on every frame: the drops counters count each one,
   * the log says once in a while that it goes on, so a broken camera or model cannot flood
   * the journal.
   */
  readonly #repeats: RepeatLimiter;

  constructor(deps: CameraPipelineDeps) {
    this.#deps = deps;
    this.name = deps.camera.name;
    this.#repeats = new RepeatLimiter(deps.log);
    const { startFrames, endFrames } = deps.scoring();
    this.#tracker = new EventTracker(this.name, { startFrames, endFrames });
    this.#status = { camera: this.name, state: 'starting' };
    this.#sourceStatus = this.#status;
  }

  async start(): Promise<void> {
    const queued = this.#deps.link.queuedByLastRun(this.name);
    await this.#continueAfterQueuedSeq(queued.seq);
    await this.#endEventsLeftOpen(queued.event);
    this.#loop = this.#run();
    const period = Math.min(1000, (this.#deps.stuckTimeoutS * 1000) / 4);
    this.#stuckTimer = setInterval(() => this.#checkStuck(), period);
    this.#stuckTimer.unref();
    await this.#startSource();
  }

  /**
   * A run killed between queueing a score and saving its seq (src/scoring/seq.ts) left that
   * number in the link's queue only; it is delivered as it was, so this run's first score
   * takes the number after it instead of labelling a second, different score with it.
   */
  async #continueAfterQueuedSeq(queued: number | undefined): Promise<void> {
    const { seq, log } = this.#deps;
    if (queued === undefined || queued < seq.next) return;
    log.warn(`seq ${queued} was queued by the previous run, which ended (killed or crashed) before ${seq.file} counted it; scores go on from ${queued + 1}`);
    // In memory the number moves on even when the file cannot be written now; the next commit tries again.
    await seq.skipPast(queued).catch((err: unknown) => log.error(`${seq.file}: seq not saved: ${errorMessage(err)}`));
  }

  /**
   * Events the previous run left open (it was killed, or the power went, before it could end
   * them) are ended now, before any new frame: their `start` went out and consumers wait for
   * the `end`, and this run will never end them otherwise (its next event has another id).
   * The open-event file names the one it had recorded; the newest event in the link's queue
   * names one whose start was queued just before the kill, before the file recorded it.
   */
  async #endEventsLeftOpen(lastQueued: EventMessage | undefined): Promise<void> {
    const file = this.#deps.openEvent;
    if (!file) return;
    if (file.problem !== undefined) {
      // Said once: the unreadable file goes, rather than being warned about at every start.
      this.#deps.log.warn(file.problem);
      await this.#clearOpenEvent();
    }
    const left = file.left;
    if (left && lastQueued?.type === 'end' && lastQueued.id === left.id) {
      // Its end was queued; only removing the file was cut short.
      await this.#clearOpenEvent();
    } else if (left) {
      this.#deps.log.warn(`event ${left.id} was still open when the daemon last ended without ending it (killed or crashed); ending it now (peak ${left.peak_score.toFixed(4)}, ${left.frames} frames, last seen ${left.ts})`);
      // Unsent, it stays on disk and the next start tries again.
      if (await this.#publishEnd(left)) await this.#clearOpenEvent();
    }
    if (lastQueued?.type === 'start' && lastQueued.id !== left?.id) {
      // Nothing ended it: an end would be newer in the queue. Unsent, it is still the newest there next time.
      this.#deps.log.warn(`event ${lastQueued.id} was started by the previous run, which ended (killed or crashed) before ${file.file} recorded it; ending it now, as it stood at its start (peak ${lastQueued.peak_score.toFixed(4)}, ${lastQueued.frames} frames, ${lastQueued.ts})`);
      await this.#publishEnd(lastQueued);
    }
  }

  #publishEnd(event: { id: string; ts: string; peak_score: number; frames: number }): Promise<boolean> {
    return this.#publish('event', () => this.#deps.link.publishEvent(this.name, { id: event.id, type: 'end', ts: event.ts, peak_score: event.peak_score, frames: event.frames }));
  }

  /** Keeps the open event on disk (or removes it once none is open); never fails the frame. */
  async #keepOpenEvent(ts: string): Promise<void> {
    const file = this.#deps.openEvent;
    if (!file) return;
    const open = this.#tracker.openEvent;
    try {
      if (open) await file.save({ ...open, ts });
      else await file.clear();
    } catch (err) {
      this.#repeats.error(`open event not saved to ${file.file}: ${errorMessage(err)}`);
    }
  }

  async #clearOpenEvent(): Promise<void> {
    await this.#deps.openEvent?.clear().catch((err: unknown) => this.#repeats.error(`${this.#deps.openEvent?.file}: not removed: ${errorMessage(err)}`));
  }

  #startSource(): Promise<void> {
    return this.#deps.source.start(
      (frame) => this.#slot.put(frame),
      (status) => {
        this.#sourceStatus = status;
        // While inference is stuck that is the camera's state; the source's shows again after.
        if (!this.#stuck) this.#setStatus(status);
      },
    );
  }

  #setStatus(status: CameraStatus): void {
    this.#status = status;
    // The capture concern logs its own state changes; here they only go out on MQTT.
    const { state, message } = status;
    this.#deps.link.publishCameraStatus(this.name, message === undefined ? { state } : { state, message }).catch((err: unknown) => {
      this.#deps.log.warn(`camera status not published: ${errorMessage(err)}`);
    });
  }

  #checkStuck(): void {
    const since = this.#inferenceSince;
    if (this.#stuck || since === undefined) return;
    const seconds = (performance.now() - since) / 1000;
    if (seconds < this.#deps.stuckTimeoutS) return;
    this.#stuck = true;
    const message = `a frame has been in inference for ${seconds.toFixed(0)} s (inference.stuckTimeoutS ${this.#deps.stuckTimeoutS})`;
    this.#deps.log.error(`inference stuck: ${message}`);
    this.#setStatus({ camera: this.name, state: 'inference_stuck', message });
  }

  #inferenceDone(): void {
    this.#inferenceSince = undefined;
    if (!this.#stuck) return;
    this.#stuck = false;
    this.#deps.log.info('inference answers again');
    this.#setStatus(this.#sourceStatus);
  }

  /** Stops and starts the source (a new child process for live cameras); inference and seq go on. */
  restartSource(): Promise<CameraStatusReport> {
    const restart = this.#restartSource();
    this.#restarting = restart;
    return restart;
  }

  async #restartSource(): Promise<CameraStatusReport> {
    this.#refuseWhenStopped();
    this.#deps.log.info('restarting the source on request');
    await this.#deps.source.stop();
    // A stop that began meanwhile has the last word: the source stays stopped.
    this.#refuseWhenStopped();
    await this.#startSource();
    return this.status();
  }

  #refuseWhenStopped(): void {
    if (this.#stopped) throw new Error(`camera "${this.name}" is stopped; its source is not started again`);
  }

  /** Publishes the annotated JPEG of the newest scored frame on the snapshot topic. */
  async publishSnapshotNow(): Promise<{ seq: number; ts: string; bytes: number }> {
    const last = this.#lastScored;
    if (!last) throw new Error(`camera: "${this.name}" has not scored a frame yet`);
    const threshold = thresholdFor(this.name, last.detection.manifest.threshold, this.#deps.scoring());
    const jpeg = await this.#drawSnapshot(last.frame, last.detection, threshold);
    await this.#deps.link.publishSnapshot(this.name, jpeg);
    return { seq: last.seq, ts: new Date(last.frame.capturedAt).toISOString(), bytes: jpeg.length };
  }

  /**
   * Stops capture, lets the frames in inference finish and publish, then ends an open event.
   * A model that does not answer within inference.stuckTimeoutS is not waited for any longer:
   * its frames are abandoned (`abandoned` in the result), so that a hung model cannot hold the
   * daemon's stop up.
   */
  async stop(): Promise<{ abandoned: boolean }> {
    this.#stopped = true;
    clearInterval(this.#stuckTimer);
    await this.#restarting?.catch(() => undefined);
    await this.#deps.source.stop().catch((err: unknown) => this.#deps.log.warn(`source stop: ${errorMessage(err)}`));
    this.#slot.close();
    const abandoned = !(await this.#loopEnds(this.#deps.stuckTimeoutS * 1000));
    if (abandoned) {
      this.#abandoned = true;
      this.#deps.log.error(`stopping without the frames still in inference: the model did not answer within ${this.#deps.stuckTimeoutS} s (inference.stuckTimeoutS); they are not published`);
    }
    const end = this.#tracker.close(new Date().toISOString());
    // An end that was not queued stays on disk, so the next start sends it.
    if (end && (await this.#publish('event', () => this.#deps.link.publishEvent(this.name, end)))) await this.#clearOpenEvent();
    await this.#deps.openEvent?.close().catch((err: unknown) => this.#deps.log.warn(`closing the open event file: ${errorMessage(err)}`));
    await this.#deps.seq.close().catch((err: unknown) => this.#deps.log.warn(`closing the seq file: ${errorMessage(err)}`));
    // Last, after the event publish above, which can fail too: what was held back is said now.
    this.#repeats.flush();
    return { abandoned };
  }

  /** Whether the frame loop ended within `ms`. */
  async #loopEnds(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([(this.#loop ?? Promise.resolve()).then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  threshold(): { value: number; good_median: number } {
    return thresholdFor(this.name, this.#deps.detector.manifest.threshold, this.#deps.scoring());
  }

  status(): CameraStatusReport {
    return {
      state: this.#status.state,
      ...(this.#status.message ? { message: this.#status.message } : {}),
      frames: this.#scored,
      next_seq: this.#deps.seq.next,
      threshold: this.threshold().value,
      open_event: this.#tracker.openEventId ?? null,
    };
  }

  /** The per-camera block of the telemetry message (reading it restarts the fps window). */
  telemetry(): CameraTelemetry {
    const source = this.#deps.source.stats();
    return {
      fps: this.#rate.read(this.#scored),
      frames: this.#scored,
      anomalous: this.#anomalous,
      events: this.#events,
      latency_ms: this.#latency.percentiles(),
      // The connection's quality at a glance: a camera that keeps dropping out shows here
      // before anyone looks at its status history.
      capture: { restarts: source.restarts, stalls: source.stalls, restarts_last_hour: source.restartsLastHour, stalls_last_hour: source.stallsLastHour },
      drops: {
        /** Replaced in the slot because inference was busy (the newest frame won). */
        backpressure: this.#slot.dropped,
        /** Dropped by the source itself (unreadable file, truncated frame, over the fps cap). */
        source: source.dropped,
        decode_error: this.#decodeErrors,
        inference_error: this.#inferenceErrors,
        publish_error: this.#publishErrors,
      },
    };
  }

  /** The annotated JPEG of a scored frame; its pixels stay unreleased until it is drawn. */
  async #drawSnapshot(frame: Frame, detection: Detection, threshold: { value: number; good_median: number }): Promise<Buffer> {
    this.#drawing.set(frame, (this.#drawing.get(frame) ?? 0) + 1);
    try {
      return await this.#deps.detector.snapshot(frame, detection, { threshold });
    } finally {
      const left = this.#drawing.get(frame)! - 1;
      if (left > 0) this.#drawing.set(frame, left);
      else {
        this.#drawing.delete(frame);
        if (this.#releaseAfterDrawing.delete(frame)) frame.release?.();
      }
    }
  }

  #releaseWhenDrawn(frame: Frame): void {
    if (this.#drawing.has(frame)) this.#releaseAfterDrawing.add(frame);
    else frame.release?.();
  }

  async #publish(what: string, send: () => Promise<void>): Promise<boolean> {
    try {
      await send();
      return true;
    } catch (err) {
      this.#publishErrors += 1;
      this.#repeats.error(`${what} not published: ${errorMessage(err)}`);
      return false;
    }
  }

  /** The next frame from the slot, preprocessed; frames that cannot be decoded are counted and skipped. */
  async #nextPrepared(): Promise<{ frame: Frame; prepared: PreparedFrame } | undefined> {
    for (let frame = await this.#slot.take(); frame !== undefined; frame = await this.#slot.take()) {
      try {
        return { frame, prepared: await this.#deps.detector.prepare(frame) };
      } catch (err) {
        this.#countFailure(frame, err);
        frame.release?.();
      }
    }
    return undefined;
  }

  #countFailure(frame: Frame, err: unknown): void {
    if (err instanceof PreprocessError) {
      this.#decodeErrors += 1;
      this.#repeats.warn(`frame ${frame.index} skipped (${err.reason}): ${err.message}`);
    } else {
      this.#inferenceErrors += 1;
      this.#repeats.error(`frame ${frame.index} failed in inference: ${errorMessage(err)}`);
    }
  }

  /**
   * The next decodable frame, preprocessed and handed to the inference thread. Called while
   * earlier frames are still running there, so the thread's queue holds this one and it
   * starts the moment the previous run ends, not after a round trip to this thread.
   */
  async #nextSubmitted(): Promise<InFlight | undefined> {
    const item = await this.#nextPrepared();
    if (!item) return undefined;
    const inference = this.#deps.detector.infer(item.prepared).then(
      (detection) => ({ detection }),
      (error: unknown) => ({ error }),
    );
    return { frame: item.frame, inference };
  }

  async #run(): Promise<void> {
    let publishing: Promise<void> = Promise.resolve();
    // Submissions in frame order; each takes its frame from the slot once the one before it is
    // queued (the slot has one taker), and none follows a closed slot.
    const ahead: Array<Promise<InFlight | undefined>> = [this.#nextSubmitted()];
    const submitAfter = (previous: Promise<InFlight | undefined>) =>
      previous.then((item) => (item === undefined ? undefined : this.#nextSubmitted()));
    while (ahead.length < this.#deps.framesAhead) ahead.push(submitAfter(ahead[ahead.length - 1]!));
    for (let current = await ahead.shift()!; current !== undefined; current = await ahead.shift()!) {
      const { frame } = current;
      // The frame queued behind this one starts running when this one ends (stuck watch).
      this.#inferenceSince ??= performance.now();
      ahead.push(submitAfter(ahead.length > 0 ? ahead[ahead.length - 1]! : Promise.resolve(current)));
      const outcome = await current.inference;
      // stop() gave up on this frame: the seq file and the link may be closed by now.
      if (this.#abandoned) {
        frame.release?.();
        break;
      }
      this.#inferenceDone();
      // One publish at a time, in frame order; it overlaps the next frame's inference.
      await publishing;
      if ('error' in outcome) {
        this.#countFailure(frame, outcome.error);
        frame.release?.();
        continue;
      }
      publishing = this.#finish(frame, outcome.detection).catch((err: unknown) => {
        // Whatever went wrong with this frame (state dir unwritable, a bug) must not end the camera.
        this.#repeats.error(`frame ${frame.index}: ${errorMessage(err)}`);
      });
    }
    await publishing;
  }

  /** Decision, score message with its seq, events and snapshot for one detected frame. */
  async #finish(frame: Frame, detection: Detection): Promise<void> {
    const { link, seq, log } = this.#deps;
    const scoring = this.#deps.scoring();
    // The model that scored this frame, which is not the one in force for a frame that was in
    // flight when an update switched models: its score is in that model's units.
    const { manifest } = detection;
    const threshold = thresholdFor(this.name, manifest.threshold, scoring);
    const decision = decide(detection.score, threshold);
    const where = regionsOf(detection, decision, scoring.maxRegions);
    const ts = new Date(frame.capturedAt).toISOString();
    const latency = performance.now() - frame.capturedMono;
    const number = seq.next;
    const sent = await this.#publish('score', () =>
      link.publishScore(this.name, {
        ts,
        seq: number,
        score: decision.score,
        threshold: decision.threshold,
        normalized: decision.normalized,
        anomalous: decision.anomalous,
        model: { name: manifest.name, version: manifest.version },
        latency_ms: Math.round(latency * 10) / 10,
        ...where,
      }),
    );
    // A message the link refused keeps its number for the next one: seq never has gaps.
    if (!sent) {
      frame.release?.();
      return;
    }
    await seq.commit(number);
    this.#scored += 1;
    if (decision.anomalous) this.#anomalous += 1;
    const previous = this.#lastScored?.frame;
    this.#lastScored = { frame, detection, seq: number };
    if (previous !== undefined) this.#releaseWhenDrawn(previous);
    this.#latency.add(latency);

    this.#tracker.setOptions({ startFrames: scoring.startFrames, endFrames: scoring.endFrames });
    const event = this.#tracker.update({ seq: number, score: decision.score, anomalous: decision.anomalous, ts });
    if (!event) {
      // Only while an event is open is there anything to keep.
      if (this.#tracker.openEvent) await this.#keepOpenEvent(ts);
      return;
    }
    if (event.type === 'start') this.#events += 1;
    // A start names where this frame is anomalous, so that the log alone says where to look
    // (also with scoring.maxRegions 0, which only keeps the regions out of the messages).
    const strongest = event.type === 'start' ? (where.regions ?? regionsOf(detection, decision, 1).regions)?.[0] : undefined;
    const at = strongest ? ` at ${describeRegion(strongest)}` : '';
    log.info(`event ${event.id} ${event.type} (peak ${event.peak_score.toFixed(4)}, ${event.frames} frames)${at}`);
    // Kept after the message is queued, so that no file names an event that never started. A
    // kill in between leaves a start or end newer in the queue than the file, and the next
    // start reads both (#endEventsLeftOpen).
    if (await this.#publish('event', () => link.publishEvent(this.name, event))) await this.#keepOpenEvent(ts);
    if (event.type === 'start' && scoring.snapshotOnEvent) {
      try {
        const jpeg = await this.#drawSnapshot(frame, detection, threshold);
        await this.#publish('snapshot', () => link.publishSnapshot(this.name, jpeg));
      } catch (err) {
        log.error(`snapshot for event ${event.id} failed: ${errorMessage(err)}`);
      }
    }
  }
}
