/**
 * The daemon's config file: one strict zod schema composed from the sections each concern
 * owns (cameras, inference, mqtt) plus the daemon's own (scoring, telemetry, log, board,
 * state). Every key has a default that works out of the box, so an empty file (or none)
 * runs the sample frames through the shipped bundle and publishes to an embedded broker.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { CameraConfigSchema } from '../capture/config.js';
import { InferenceConfigSchema } from '../inference/config.js';
import { MqttConfigSchema } from '../mqtt/config.js';
import { OtaConfigSchema } from '../ota/config.js';
import { DEFAULT_MAX_REGIONS, MAX_REGIONS } from '../postprocess/regions.js';
import { PrometheusConfigSchema } from '../telemetry/config.js';
import { LOG_LEVELS } from '../util/log.js';
import { osText } from '../util/os-text.js';
import { BoardNameSchema, DEFAULT_BOARD } from './board.js';

const threshold = z.number().refine(Number.isFinite, 'expected a finite number').refine((v) => v > 0, 'expected a threshold > 0 (raw score units)');
const cameraName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'expected a camera name [a-zA-Z0-9_-]');

export const ScoringConfigSchema = z.strictObject({
  /** Decision threshold in the model's raw score units for every camera; absent: the bundle manifest's. */
  threshold: threshold.optional(),
  /** Per-camera thresholds; win over `threshold`. */
  cameraThresholds: z.record(cameraName, threshold).default({}),
  /** An event starts after this many consecutive frames over the threshold. */
  startFrames: z.number().int().min(1).max(10_000).default(2),
  /** An open event ends after this many consecutive frames under the threshold. */
  endFrames: z.number().int().min(1).max(10_000).default(3),
  /** Publish a JPEG with the heatmap blended over the frame when an event starts. */
  snapshotOnEvent: z.boolean().default(true),
  /** Anomalous frames' score messages name at most this many areas where they are anomalous (0: none). */
  maxRegions: z.number().int().min(0).max(MAX_REGIONS).default(DEFAULT_MAX_REGIONS),
});
export type ScoringConfig = z.infer<typeof ScoringConfigSchema>;

export const TelemetryConfigSchema = z.strictObject({
  /** Seconds between telemetry messages. */
  intervalS: z.number().min(1).max(86_400).default(10),
  /** A Prometheus /metrics endpoint serving the same figures (the telemetry concern owns this part). */
  prometheus: PrometheusConfigSchema.prefault({}),
});

export const DEFAULT_STATE_DIR = join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'moead-edge');

/** What `cameras:` is when the file does not say: the shipped sample frames at 2 fps. */
export const DEFAULT_CAMERAS = [{ type: 'folder', name: 'samples', path: 'samples/frames', fps: 2 }] as const;

export const ConfigSchema = z
  .strictObject({
    /** Config format version, for migrations when the format changes. */
    version: z.literal(1).default(1),
    /** Board profile in boards/ (generic-x86, jetson-orin-nano, ...). */
    board: BoardNameSchema.default(DEFAULT_BOARD),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** Folder for what must survive a restart: score sequence numbers, the MQTT outbox. */
    stateDir: osText.default(DEFAULT_STATE_DIR),
    cameras: z.array(CameraConfigSchema).min(1).prefault(() => DEFAULT_CAMERAS.map((c) => ({ ...c }))),
    inference: InferenceConfigSchema.prefault({}),
    mqtt: MqttConfigSchema.prefault({}),
    scoring: ScoringConfigSchema.prefault({}),
    telemetry: TelemetryConfigSchema.prefault({}),
    ota: OtaConfigSchema.prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.cameras.forEach((camera, i) => {
      const first = seen.get(camera.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['cameras', i, 'name'], message: `expected a unique camera name, cameras[${first}] is also "${camera.name}"` });
      }
      seen.set(camera.name, i);
    });
    for (const name of Object.keys(config.scoring.cameraThresholds)) {
      if (!seen.has(name)) {
        ctx.addIssue({ code: 'custom', path: ['scoring', 'cameraThresholds', name], message: `expected the name of a configured camera (${[...seen.keys()].join(', ')})` });
      }
    }
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
