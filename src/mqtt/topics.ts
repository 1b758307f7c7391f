/**
 * The MQTT contract: every topic the device uses and the zod schema of every payload.
 * Outbound payloads are parsed before they leave (a bug upstream becomes a clear error, not
 * a malformed message in a fleet dashboard); inbound payloads are parsed, never cast.
 * docs/mqtt.md documents the same table for humans; keep both in step.
 */
import { z } from 'zod';
import { MAX_REGIONS } from '../postprocess/regions.js';

/** One topic level: no separators or wildcards, non-empty. Camera and command names obey it. */
export const TopicLevelSchema = z.string().regex(/^[^#+/\u0000]{1,128}$/, 'expected one MQTT topic level (1-128 characters, no / # +)');

export interface DeviceTopics {
  readonly base: string;
  readonly device: string;
  /** `<base>/<device>`: everything the device publishes or accepts lives below it (one ACL pattern). */
  readonly root: string;
  availability: string;
  telemetry: string;
  /** The model updater's state (retained): the last update's progress or outcome and the model in force. */
  ota: string;
  score(camera: string): string;
  event(camera: string): string;
  snapshot(camera: string): string;
  cameraStatus(camera: string): string;
  command(name: string): string;
  reply(name: string): string;
  /** Subscription filter for every command request. `+` is one level, so replies (one level deeper) never match. */
  commandFilter: string;
  /** The command name of a request topic, or undefined when the topic is not one (or the name is not a valid topic level). */
  commandName(topic: string): string | undefined;
}

export function deviceTopics(base: string, device: string): DeviceTopics {
  TopicLevelSchema.parse(base);
  TopicLevelSchema.parse(device);
  const root = `${base}/${device}`;
  const level = (kind: string, name: string): string => {
    const r = TopicLevelSchema.safeParse(name);
    if (!r.success) throw new Error(`${kind} name ${JSON.stringify(name)} cannot be used in a topic: ${r.error.issues[0]?.message}`);
    return name;
  };
  const cmdPrefix = `${root}/cmd/`;
  return {
    base,
    device,
    root,
    availability: `${root}/availability`,
    telemetry: `${root}/telemetry`,
    ota: `${root}/ota`,
    score: (camera) => `${root}/${level('camera', camera)}/score`,
    event: (camera) => `${root}/${level('camera', camera)}/event`,
    snapshot: (camera) => `${root}/${level('camera', camera)}/snapshot`,
    cameraStatus: (camera) => `${root}/${level('camera', camera)}/status`,
    command: (name) => `${cmdPrefix}${level('command', name)}`,
    reply: (name) => `${cmdPrefix}${level('command', name)}/reply`,
    commandFilter: `${cmdPrefix}+`,
    commandName(topic) {
      if (!topic.startsWith(cmdPrefix)) return undefined;
      // A name that cannot be a topic level has no reply topic either, so it is not a command.
      const name = topic.slice(cmdPrefix.length);
      return TopicLevelSchema.safeParse(name).success ? name : undefined;
    },
  };
}

/** QoS and retain flag of each topic kind; docs/mqtt.md lists the same. */
export const DELIVERY = {
  availability: { qos: 1, retain: true },
  score: { qos: 1, retain: false },
  event: { qos: 1, retain: false },
  snapshot: { qos: 1, retain: true },
  cameraStatus: { qos: 1, retain: true },
  telemetry: { qos: 0, retain: false },
  ota: { qos: 1, retain: true },
  reply: { qos: 1, retain: false },
} as const satisfies Record<string, { qos: 0 | 1; retain: boolean }>;

export const AvailabilitySchema = z.enum(['online', 'offline']);

const isoTime = z.iso.datetime({ offset: true });
const finite = z.number().refine(Number.isFinite, 'expected a finite number');

const fraction = z.number().min(0).max(1);

/** Where a frame is anomalous: a box in fractions of the frame (src/postprocess/regions.ts). */
export const RegionSchema = z.strictObject({
  x: fraction,
  y: fraction,
  w: fraction,
  h: fraction,
  peak: finite,
  cells: z.number().int().min(1),
});

export const ScorePayloadSchema = z.strictObject({
  ts: isoTime,
  seq: z.number().int().min(0),
  score: finite,
  threshold: finite,
  normalized: z.number().min(0).max(1),
  anomalous: z.boolean(),
  model: z.strictObject({ name: z.string().min(1), version: z.string().min(1) }),
  latency_ms: z.number().min(0),
  /** On anomalous frames only: where, the strongest area first. */
  regions: z.array(RegionSchema).min(1).max(MAX_REGIONS).optional(),
});

export const EventPayloadSchema = z.strictObject({
  id: z.string().min(1),
  type: z.enum(['start', 'end']),
  ts: isoTime,
  peak_score: finite,
  frames: z.number().int().min(0),
});

export const CameraStatusPayloadSchema = z.strictObject({
  state: z.string().min(1).max(64),
  message: z.string().max(1000).optional(),
  ts: isoTime,
});

const percentiles = z.strictObject({ p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() });

const count = z.number().int().min(0);

/** Open: the daemon may add per-camera figures; the ones named here are typed. */
export const CameraTelemetrySchema = z.looseObject({
  fps: z.number().min(0),
  frames: count,
  /** Scored frames at or over the threshold, and events started, since the daemon started. */
  anomalous: count,
  events: count,
  latency_ms: percentiles,
  /** The capture's restarts and stalls (no frame for stallTimeoutS), in all and within the last hour. */
  capture: z.strictObject({ restarts: count, stalls: count, restarts_last_hour: count, stalls_last_hour: count }),
  drops: z.record(z.string(), count),
});

export const LinkStatsSchema = z.strictObject({
  connected: z.boolean(),
  reconnects: z.number().int().min(0),
  queue_depth: z.number().int().min(0),
  queue_dropped_scores: z.number().int().min(0),
  /** Timed fdatasyncs of the outbox that failed (I/O errors): queued messages may not survive a power cut. */
  queue_sync_failures: z.number().int().min(0),
  /** Messages the broker refused for good (PUBACK not authorized, topic or payload invalid), taken off the queue. */
  queue_refused: z.number().int().min(0),
  /** Queued messages the disk refused (full): kept in memory only, lost if the daemon stops before there is room. */
  queue_unsaved: z.number().int().min(0),
  /** Outbox records the disk refused since start. */
  queue_write_failures: z.number().int().min(0),
  published: z.number().int().min(0),
  commands: z.number().int().min(0),
  command_errors: z.number().int().min(0),
});

/** Telemetry is open at the top level (the daemon and later issues add sections), typed where it is known. */
export const TelemetryPayloadSchema = z.looseObject({
  ts: isoTime,
  uptime_s: z.number().min(0),
  cameras: z.record(z.string(), CameraTelemetrySchema).optional(),
  link: LinkStatsSchema.optional(),
});

/**
 * Ids are echoed back so a requester can match replies; bounded so a reply cannot be inflated.
 * No control characters (a newline in an id logged as `update <id> failed` would forge a log
 * line) nor unpaired surrogates (not encodable as UTF-8): other unicode is fine.
 */
export const CommandIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}\p{Cs}]*$/u, 'expected no control characters or unpaired surrogates');

const modelId = z.strictObject({ name: z.string().min(1), version: z.string().min(1) });

/** Longest `message` on the ota topic; the updater shortens longer ones. */
export const OTA_MESSAGE_MAX = 2000;

/** Steps of an update, in order, then how it ended; `active` is also the state after start-up. */
export const OTA_STATES = ['downloading', 'verifying', 'validating', 'switching', 'probation', 'active', 'failed', 'rolled_back'] as const;

export const OtaStatusPayloadSchema = z.strictObject({
  state: z.enum(OTA_STATES),
  /** The `update-model`/`rollback-model` command's id this status belongs to; null for start-up and automatic steps. */
  request: CommandIdSchema.nullable(),
  /** The model in force now. */
  running: modelId,
  /** The model the update brings, once its manifest is read. */
  target: modelId.nullable(),
  /** Bytes downloaded of the update's total, while downloading. */
  progress: z.strictObject({ bytes: z.number().int().min(0), total: z.number().int().min(0) }).optional(),
  /** Why it failed or rolled back, or what this step is doing. */
  message: z.string().max(OTA_MESSAGE_MAX).optional(),
  ts: isoTime,
});
export type OtaStatusPayload = z.infer<typeof OtaStatusPayloadSchema>;

// ---- commands -------------------------------------------------------------------------

export const CommandRequestSchema = z.looseObject({ id: CommandIdSchema });

const cameraField = TopicLevelSchema;

/**
 * Request schemas of the commands the daemon is known to register. A command registered
 * without one here is checked against CommandRequestSchema only and must parse its fields.
 */
export const COMMAND_SCHEMAS = {
  status: z.strictObject({ id: CommandIdSchema }),
  'set-threshold': z.strictObject({
    id: CommandIdSchema,
    /** Absent: every camera. */
    camera: cameraField.optional(),
    threshold: z.number().refine(Number.isFinite, 'expected a finite number').refine((v) => v > 0, 'expected a threshold > 0'),
    /** true writes the new threshold to the config file too. */
    persist: z.boolean().optional(),
  }),
  snapshot: z.strictObject({ id: CommandIdSchema, camera: cameraField }),
  'restart-camera': z.strictObject({ id: CommandIdSchema, camera: cameraField }),
  'reload-config': z.strictObject({ id: CommandIdSchema }),
  'update-model': z.strictObject({
    id: CommandIdSchema,
    /** http(s) URL of the bundle folder: manifest.json, manifest.sig and the files they name are fetched from under it. */
    url: z.string().min(1).max(2048),
    /** When given, the manifest's version must be this one (guards against a stale server or cache). */
    version: z.string().min(1).max(64).optional(),
    /** true installs an older version of the running model (refused otherwise, as a likely mistake or replay). */
    downgrade: z.boolean().optional(),
  }),
  'rollback-model': z.strictObject({ id: CommandIdSchema }),
} as const;
export type KnownCommand = keyof typeof COMMAND_SCHEMAS;

export const CommandReplySchema = z.union([
  z.strictObject({ id: CommandIdSchema, ok: z.literal(true), result: z.unknown() }),
  z.strictObject({ id: CommandIdSchema.nullable(), ok: z.literal(false), error: z.string().min(1) }),
]);
export type CommandReply = z.infer<typeof CommandReplySchema>;

export type ScorePayload = z.infer<typeof ScorePayloadSchema>;
export type EventPayload = z.infer<typeof EventPayloadSchema>;
export type CameraStatusPayload = z.infer<typeof CameraStatusPayloadSchema>;
export type TelemetryPayload = z.infer<typeof TelemetryPayloadSchema>;
export type LinkStats = z.infer<typeof LinkStatsSchema>;
export type CameraTelemetry = z.infer<typeof CameraTelemetrySchema>;
