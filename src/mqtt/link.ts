/**
 * What the daemon needs from its MQTT link. The topic layout and payload schemas live in
 * topics.ts; this interface is how the rest of the daemon publishes and takes commands.
 */
import type { AnomalyRegion } from '../postprocess/regions.js';
import type { OtaStatusPayload } from './topics.js';

export interface ScoreMessage {
  ts: string;
  seq: number;
  score: number;
  threshold: number;
  normalized: number;
  anomalous: boolean;
  model: { name: string; version: string };
  latency_ms: number;
  regions?: AnomalyRegion[];
}

export interface EventMessage {
  id: string;
  type: 'start' | 'end';
  ts: string;
  peak_score: number;
  frames: number;
}

export interface QueuedByLastRun {
  seq: number | undefined;
  event: EventMessage | undefined;
}

/** A command handler gets the parsed request and returns the reply's `result`; throwing sends `{ok:false, error}`. */
export type CommandHandler = (request: { id: string } & Record<string, unknown>) => Promise<unknown>;

export interface FleetLink {
  start(): Promise<void>;
  /** Publishes `online` after everything else is started. */
  announceOnline(): Promise<void>;
  publishScore(camera: string, message: ScoreMessage): Promise<void>;
  /**
   * The newest score's seq and the newest event for `camera` that the queue's files held at
   * start, delivered or not (undefined when none, or before start). A previous run killed just
   * after queueing one of them left it only there, before its seq or open event was saved.
   */
  queuedByLastRun(camera: string): QueuedByLastRun;
  publishEvent(camera: string, message: EventMessage): Promise<void>;
  publishSnapshot(camera: string, jpeg: Buffer): Promise<void>;
  publishCameraStatus(camera: string, status: { state: string; message?: string }): Promise<void>;
  publishTelemetry(payload: Record<string, unknown>): Promise<void>;
  /** The model updater's state, retained on `<root>/ota`. */
  publishOtaStatus(status: Omit<OtaStatusPayload, 'ts'>): Promise<void>;
  /** Another model is in force: what describes the device (discovery, Sparkplug births) is sent again. */
  modelChanged(): Promise<void>;
  onCommand(name: string, handler: CommandHandler): void;
  /** Delivers what is in flight, publishes `offline`, disconnects. */
  stop(): Promise<void>;
}
