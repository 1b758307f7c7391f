/** The `mqtt:` section of the config. The mqtt folder owns this schema. */
import { z } from 'zod';
import { osText } from '../util/os-text.js';

const topicLevel = z.string().regex(/^[^#+/]+$/, 'expected one topic level without / # +');

export const TlsConfigSchema = z.strictObject({
  /** PEM file of the CA that signed the broker's certificate (absent: the system CAs). */
  ca: osText.optional(),
  /** PEM client certificate and key for mutual TLS. */
  cert: osText.optional(),
  key: osText.optional(),
  /** Only for lab brokers with self-signed certificates; never turn off in a fleet. */
  rejectUnauthorized: z.boolean().default(true),
  /** Name to check the broker certificate against when it differs from the URL's host. */
  servername: z.string().min(1).optional(),
}).refine((t) => (t.cert === undefined) === (t.key === undefined), {
  message: 'cert and key come together (mutual TLS needs both)',
  path: ['key'],
});

export const OutboxConfigSchema = z.strictObject({
  /** Folder of the on-disk queue; absent: <state dir>/outbox. */
  path: osText.optional(),
  /** Most messages kept while the broker is away; past it the oldest scores are dropped (events are kept). */
  maxMessages: z.number().int().min(10).max(10_000_000).default(100_000),
  /** A segment file is closed and a new one started past this size. */
  segmentBytes: z.number().int().min(4096).max(1 << 30).default(4 << 20),
  /** Longest time a queued message may sit in the page cache before fdatasync (0 = sync every write). */
  fsyncMs: z.number().int().min(0).max(60_000).default(1000),
  /** QoS 1 messages awaiting PUBACK at once. */
  inflight: z.number().int().min(1).max(1000).default(32),
});

export const MqttConfigSchema = z.strictObject({
  /** Broker URL (mqtt://, mqtts://, ws://, wss://). Absent: the daemon starts an embedded broker on loopback. */
  url: z.string().url().optional(),
  /** First topic level: <base>/<device>/... */
  base: topicLevel.default('moead'),
  /** Second topic level; defaults to the host name. */
  device: topicLevel.optional(),
  /** Port of the embedded broker when no url is given (0 = any free port). */
  embeddedPort: z.number().int().min(0).max(65535).default(1883),
  /** MQTT protocol: 5, or 4 for MQTT 3.1.1 brokers. */
  protocolVersion: z.union([z.literal(5), z.literal(4)]).default(5),
  /** Client id; absent: moead-<device>. */
  clientId: z.string().min(1).max(128).optional(),
  keepaliveS: z.number().int().min(5).max(65535).default(30),
  /** false keeps the broker-side session (subscriptions, QoS 1 deliveries to us) across reconnects. */
  cleanSession: z.boolean().default(true),
  username: z.string().optional(),
  /** File holding the user name (e.g. a container secret); wins over `username`. */
  usernameFile: osText.optional(),
  password: z.string().optional(),
  /** File holding the password; wins over `password`. Trailing newline is ignored. */
  passwordFile: osText.optional(),
  tls: TlsConfigSchema.optional(),
  /** Reconnect delay: uniform in [0, min(maxMs, minMs·2^attempt)] ("full jitter"). */
  backoff: z.strictObject({
    minMs: z.number().int().min(10).default(500),
    maxMs: z.number().int().min(100).default(60_000),
  }).refine((b) => b.maxMs >= b.minMs, { message: 'maxMs must be >= minMs', path: ['maxMs'] }).default({ minMs: 500, maxMs: 60_000 }),
  outbox: OutboxConfigSchema.default(OutboxConfigSchema.parse({})),
  commands: z.strictObject({
    /** Command names accepted; absent: every registered command. */
    allow: z.array(z.string().min(1)).optional(),
    /** Requests larger than this get an error reply without being parsed. */
    maxPayloadBytes: z.number().int().min(64).max(1 << 20).default(16_384),
    /** A handler running longer than this is answered with a timeout error. */
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  }).default({ maxPayloadBytes: 16_384, timeoutMs: 30_000 }),
  homeassistant: z.strictObject({
    enabled: z.boolean().default(false),
    /** Discovery prefix Home Assistant listens on. */
    prefix: topicLevel.default('homeassistant'),
  }).default({ enabled: false, prefix: 'homeassistant' }),
  sparkplug: z.strictObject({
    enabled: z.boolean().default(false),
    groupId: topicLevel.default('moead'),
  }).default({ enabled: false, groupId: 'moead' }),
});
export type MqttConfig = z.infer<typeof MqttConfigSchema>;
export type TlsConfig = z.infer<typeof TlsConfigSchema>;
