/**
 * Bookkeeping shared by every frame source: counters with their reasons, and a status
 * callback that fires only when the state or its message changes (so a retained MQTT
 * status is not republished on every retry).
 */
import { performance } from 'node:perf_hooks';
import type { FrameSourceStats, SourceState, SourceStatus } from './frame.js';

export type DropReason = 'fps_cap' | 'truncated' | 'unreadable';
export type RestartReason = 'exit' | 'stall' | 'spawn_error';

export interface CaptureStats extends FrameSourceStats {
  state: SourceState;
  drops: Record<DropReason, number>;
  restartReasons: Record<RestartReason, number>;
  /** Last failure, already redacted. */
  lastError?: string;
}

const HOUR_MS = 3_600_000;
/** Restart times kept for the hourly figures; beyond this a camera is flapping and the exact count stops mattering. */
const HOURLY_KEEP = 10_000;

export type CaptureLogLevel = 'debug' | 'info' | 'warn' | 'error';
/** The daemon's logger, reduced to what capture needs. Messages never hold credentials. */
export type CaptureLog = (level: CaptureLogLevel, message: string) => void;

export class SourceReporter {
  private readonly counters: CaptureStats = {
    frames: 0,
    dropped: 0,
    restarts: 0,
    stalls: 0,
    state: 'stopped',
    drops: { fps_cap: 0, truncated: 0, unreadable: 0 },
    restartReasons: { exit: 0, stall: 0, spawn_error: 0 },
    restartsLastHour: 0,
    stallsLastHour: 0,
  };
  private readonly recentRestarts: { at: number; stall: boolean }[] = [];
  private onStatus: ((status: SourceStatus) => void) | undefined;
  private lastMessage: string | undefined;

  constructor(
    readonly camera: string,
    private readonly log: CaptureLog,
  ) {}

  /** A source's start: attaches the listener, then reports `disabled` (false: do not start)
   *  or `starting` (true). */
  begin(onStatus: (status: SourceStatus) => void, enabled: boolean): boolean {
    this.onStatus = onStatus;
    if (!enabled) {
      this.status('disabled', 'enabled: false in the config');
      return false;
    }
    this.status('starting');
    return true;
  }

  get state(): SourceState {
    return this.counters.state;
  }

  status(state: SourceState, message?: string): void {
    if (state === this.counters.state && message === this.lastMessage) return;
    this.counters.state = state;
    this.lastMessage = message;
    const level: CaptureLogLevel = state === 'no_frames' || state === 'decode_error' ? 'warn' : 'info';
    this.log(level, `camera ${this.camera}: ${state}${message ? ` (${message})` : ''}`);
    const status: SourceStatus = { camera: this.camera, state };
    if (message !== undefined) status.message = message;
    this.onStatus?.(status);
  }

  frame(): number {
    return this.counters.frames++;
  }

  drop(reason: DropReason, detail?: string): void {
    this.counters.dropped++;
    this.counters.drops[reason]++;
    // fps-cap skips are routine; everything else is worth a line.
    if (reason !== 'fps_cap') this.log('warn', `camera ${this.camera}: dropped a frame (${reason}${detail ? `: ${detail}` : ''})`);
  }

  restart(reason: RestartReason, detail: string): void {
    this.counters.restarts++;
    this.counters.restartReasons[reason]++;
    if (reason === 'stall') this.counters.stalls++;
    this.recentRestarts.push({ at: performance.now(), stall: reason === 'stall' });
    if (this.recentRestarts.length > HOURLY_KEEP) this.recentRestarts.shift();
    this.counters.lastError = detail;
    this.log('warn', `camera ${this.camera}: restarting (${reason}: ${detail})`);
  }

  error(detail: string): void {
    this.counters.lastError = detail;
  }

  snapshot(): CaptureStats {
    const since = performance.now() - HOUR_MS;
    while (this.recentRestarts.length > 0 && this.recentRestarts[0]!.at < since) this.recentRestarts.shift();
    this.counters.restartsLastHour = this.recentRestarts.length;
    this.counters.stallsLastHour = this.recentRestarts.filter((r) => r.stall).length;
    return structuredClone(this.counters);
  }
}

export const silentLog: CaptureLog = () => {};
