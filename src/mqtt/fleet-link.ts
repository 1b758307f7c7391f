/**
 * The FleetLink: the daemon's one door to MQTT. Scores and events go through the on-disk
 * outbox (QoS 1, in order, nothing lost); retained state (availability, camera status,
 * snapshots, discovery) is remembered and re-published on every connect; commands are
 * parsed and answered by the CommandDispatcher.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions, IPublishPacket } from 'mqtt';
import { z } from 'zod';
import { CommandDispatcher } from './commands.js';
import type { MqttConfig } from './config.js';
import { Connection, errorText, type Log, type SubscriptionFilters } from './connection.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { discoveryMessages } from './homeassistant.js';
import type { CommandHandler, EventMessage, FleetLink, QueuedByLastRun, ScoreMessage } from './link.js';
import { RepeatLimiter } from '../util/repeat-log.js';
import { Outbox } from './outbox.js';
import { SparkplugNode } from './sparkplug.js';
import {
  CameraStatusPayloadSchema, DELIVERY, EventPayloadSchema, OtaStatusPayloadSchema, ScorePayloadSchema, TelemetryPayloadSchema,
  TopicLevelSchema, deviceTopics, type CommandReply, type DeviceTopics, type LinkStats, type OtaStatusPayload,
} from './topics.js';

/** The seq of a queued score message; other fields are not needed (z.object ignores them). */
const QueuedSeqSchema = z.object({ seq: ScorePayloadSchema.shape.seq });

/** A payload this daemon queued, read back; undefined for none or one another version wrote otherwise. */
function parseQueued<T>(payload: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (payload === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(payload));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface FleetLinkDeps {
  /** Folder for the outbox (unless mqtt.outbox.path is set) and the Sparkplug bdSeq. */
  stateDir: string;
  log?: Log;
  /** Cameras announced up front (discovery, Sparkplug DBIRTH); others are added on first publish. */
  cameras?: readonly string[];
  /** The loaded model, for discovery and Sparkplug births. */
  model?: () => { name: string; version: string } | undefined;
  /** The daemon's version, shown in discovery. */
  softwareVersion?: string;
  /** Longest wait in stop() for queued messages to be acknowledged (default 5 s). */
  stopTimeoutMs?: number;
}

/** What the daemon and its tests can see beyond the FleetLink contract. */
export interface FleetLinkHandle extends FleetLink {
  /** The broker URL in use (the embedded one when none is configured); set by start(). */
  readonly url: string;
  readonly topics: DeviceTopics;
  readonly connected: boolean;
  /** Why the link is not connected, worded for an operator; undefined while connected. */
  readonly lastError: string | undefined;
  stats(): LinkStats;
}

/** A host name made into one topic level. */
export function defaultDeviceName(): string {
  return hostname().replace(/[/#+\s]/g, '_').slice(0, 128) || 'device';
}

async function readSecret(path: string, key: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(`${key}: cannot read ${path}: ${errorText(err)}`);
  }
}

async function readPem(path: string, key: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`${key}: cannot read ${path}: ${errorText(err)}`);
  }
}

/**
 * The MQTT 5 Maximum Packet Size the daemon declares in CONNECT. The size check on commands runs
 * only after MQTT.js has read a whole PUBLISH into memory, so without it anyone allowed to
 * publish on a command topic could make the daemon buffer whatever the broker accepts (256 MB
 * with Mosquitto's defaults); a conforming broker drops a larger packet for this client instead
 * (one that sends it anyway makes MQTT.js close the session with 0x95, and we reconnect).
 * Four times mqtt.commands.maxPayloadBytes still lets a request that is merely too big through,
 * so that its sender gets the "over the limit" reply; 64 KiB more is room for the topic, the
 * response topic, correlation data and user properties. Everything subscribed to is a command
 * (cmd/+, Sparkplug NCMD/DCMD, bounded by maxPayloadBytes) or Home Assistant's few-byte status,
 * so nothing legitimate is larger. It bounds only what the broker sends: MQTT.js does not apply
 * it to our own publishes (snapshots are larger). At most 4 MiB + 64 KiB (maxPayloadBytes ≤ 1 MiB).
 */
export function maxIncomingPacketBytes(maxPayloadBytes: number): number {
  return 4 * maxPayloadBytes + 65_536;
}

/** MQTT.js options from the config: credentials and TLS material read from their files. */
export async function clientOptions(config: MqttConfig, clientId: string, will: IClientOptions['will']): Promise<IClientOptions> {
  const opts: IClientOptions = {
    clientId,
    protocolVersion: config.protocolVersion,
    keepalive: config.keepaliveS,
    clean: config.cleanSession,
    connectTimeout: 10_000,
    will,
    // The outbox, not MQTT.js, keeps what must survive a disconnect.
    queueQoSZero: false,
    resubscribe: false,
  };
  // MQTT 3.1.1 has no such property: there the broker's own limit is the only bound.
  if (config.protocolVersion === 5) opts.properties = { maximumPacketSize: maxIncomingPacketBytes(config.commands.maxPayloadBytes) };
  const username = config.usernameFile ? await readSecret(config.usernameFile, 'mqtt.usernameFile') : config.username;
  const password = config.passwordFile ? await readSecret(config.passwordFile, 'mqtt.passwordFile') : config.password;
  if (username !== undefined) opts.username = username;
  if (password !== undefined) opts.password = password;
  const tls = config.tls;
  if (tls) {
    if (tls.ca) opts.ca = await readPem(tls.ca, 'mqtt.tls.ca');
    if (tls.cert) opts.cert = await readPem(tls.cert, 'mqtt.tls.cert');
    if (tls.key) opts.key = await readPem(tls.key, 'mqtt.tls.key');
    opts.rejectUnauthorized = tls.rejectUnauthorized;
    if (tls.servername) opts.servername = tls.servername;
  }
  return opts;
}

const noLog: Log = () => undefined;

/**
 * PUBACK reason codes that mean the broker will never take this message on this topic: not
 * authorized (0x87), topic name invalid (0x90), payload format invalid (0x99). The others
 * (0x80 unspecified, 0x83 implementation specific, 0x97 quota exceeded) may pass later.
 */
const FINAL_REFUSALS: ReadonlySet<number> = new Set([0x87, 0x90, 0x99]);

/** The MQTT 5 reason code MQTT.js attaches to a refused publish, if the error is one. */
function reasonCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && code >= 0x80 ? code : undefined;
}

/** Topics come from the network: a log line shows at most the first 200 characters. */
function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}… (${text.length} characters)` : text;
}

export class MqttFleetLink implements FleetLinkHandle {
  readonly topics: DeviceTopics;
  readonly #config: MqttConfig;
  readonly #deps: FleetLinkDeps;
  readonly #log: Log;
  readonly #commands: CommandDispatcher;
  readonly #cameras = new Set<string>();
  readonly #cameraStatus = new Map<string, string>();
  #otaStatus: string | undefined;
  readonly #snapshots = new Map<string, Buffer>();
  readonly #drainWaiters = new Set<() => void>();
  /**
   * Replies of commands that finished while the link was down, sent after the next connect.
   * Requests only come in while connected and the dispatcher bounds how many wait, so few can pile up.
   */
  readonly #heldReplies: Array<{ name: string; body: string; request: IPublishPacket }> = [];
  #url = '';
  #broker: EmbeddedBroker | undefined;
  #outbox: Outbox | undefined;
  #outboxDir = '';
  /** Set while the outbox's disk refuses puts (said once when it starts, once when it ends). */
  #diskRefusing = false;
  /** A disk that keeps filling and freeing must not flood the journal either. */
  readonly #diskLog = new RepeatLimiter({ warn: (m) => this.#log('warn', m), error: (m) => this.#log('error', m) });
  #conn: Connection | undefined;
  #sparkplug: SparkplugNode | undefined;
  #announced = false;
  #published = 0;
  #stopped = false;

  constructor(config: MqttConfig, deps: FleetLinkDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#log = deps.log ?? noLog;
    this.topics = deviceTopics(config.base, config.device ?? defaultDeviceName());
    this.#commands = new CommandDispatcher(config.commands);
    for (const c of deps.cameras ?? []) this.#addCamera(c);
  }

  get url(): string {
    return this.#url;
  }

  get connected(): boolean {
    return this.#conn?.connected ?? false;
  }

  get lastError(): string | undefined {
    return this.#conn?.lastError;
  }

  stats(): LinkStats {
    const box = this.#outbox?.stats();
    return {
      connected: this.connected,
      reconnects: this.#conn?.reconnects ?? 0,
      queue_depth: box?.depth ?? 0,
      queue_dropped_scores: box?.droppedScores ?? 0,
      queue_sync_failures: box?.syncFailures ?? 0,
      queue_refused: box?.refused ?? 0,
      queue_unsaved: box?.unsaved ?? 0,
      queue_write_failures: box?.writeFailures ?? 0,
      published: this.#published,
      commands: this.#commands.handled,
      command_errors: this.#commands.errors,
    };
  }

  async start(): Promise<void> {
    const cfg = this.#config;
    const clientId = cfg.clientId ?? `moead-${this.topics.device}`;
    const will = { topic: this.topics.availability, payload: Buffer.from('offline'), qos: DELIVERY.availability.qos, retain: true };
    // Everything that can fail on bad config is checked before a broker or file is touched.
    const options = await clientOptions(cfg, clientId, will);
    // aedes speaks MQTT 3.1.1 only, so there are no MQTT 5 properties to declare either.
    if (!cfg.url) {
      options.protocolVersion = 4;
      delete options.properties;
    }
    this.#outboxDir = cfg.outbox.path ?? join(this.#deps.stateDir, 'outbox');
    this.#outbox = Outbox.open(this.#outboxDir, cfg.outbox);
    if (cfg.url) {
      this.#url = cfg.url;
    } else {
      this.#broker = await startEmbeddedBroker(cfg.embeddedPort);
      this.#url = this.#broker.url;
      this.#log('info', `mqtt: no mqtt.url configured; embedded broker listening on ${this.#url}`);
    }
    const conn = new Connection({ url: this.#url, client: options, backoff: cfg.backoff, log: this.#log, configPath: 'mqtt' });
    this.#conn = conn;
    conn.onConnected((client) => {
      const filters: SubscriptionFilters = { [this.topics.commandFilter]: { qos: 1 } };
      if (cfg.homeassistant.enabled) filters[`${cfg.homeassistant.prefix}/status`] = { qos: 1 };
      return conn.subscribe(client, filters, 'commands');
    });
    conn.onConnected(() => this.#sendHeldReplies());
    conn.onConnected(() => this.#republishRetained());
    conn.onConnected(() => this.#pump());
    conn.onDisconnected(() => this.#outbox?.releaseInflight());
    conn.onMessage((topic, payload, packet) => this.#onMessage(topic, payload, packet));
    if (cfg.sparkplug.enabled) {
      this.#sparkplug = new SparkplugNode({
        url: this.#url, clientOptions: { ...options, clientId: `${clientId}-spb`, will: undefined },
        backoff: cfg.backoff, groupId: cfg.sparkplug.groupId, nodeId: this.topics.device,
        stateDir: this.#deps.stateDir, log: this.#log, cameras: () => [...this.#cameras], model: () => this.#deps.model?.(),
        command: (name, request) => this.#commands.dispatch(name, Buffer.from(JSON.stringify(request))),
        refuseOversize: (bytes) => {
          const error = this.#commands.oversize(bytes);
          if (error !== undefined) this.#commands.refuse(error);
          return error;
        },
      });
    }
    await Promise.all([conn.start(), this.#sparkplug?.start()]);
  }

  async announceOnline(): Promise<void> {
    this.#announced = true;
    if (this.connected) await this.#publishRetainedAvailability('online');
  }

  async publishScore(camera: string, message: ScoreMessage): Promise<void> {
    const body = ScorePayloadSchema.parse(message);
    this.#addCamera(camera);
    this.#enqueue('score', this.topics.score(camera), JSON.stringify(body));
    this.#sparkplug?.score(camera, body);
  }

  queuedByLastRun(camera: string): QueuedByLastRun {
    const seq = parseQueued(this.#outbox?.lastPutAtOpen(this.topics.score(camera)), QueuedSeqSchema)?.seq;
    return { seq, event: parseQueued(this.#outbox?.lastPutAtOpen(this.topics.event(camera)), EventPayloadSchema) };
  }

  async publishEvent(camera: string, message: EventMessage): Promise<void> {
    const body = EventPayloadSchema.parse(message);
    this.#addCamera(camera);
    this.#enqueue('event', this.topics.event(camera), JSON.stringify(body));
  }

  async publishSnapshot(camera: string, jpeg: Buffer): Promise<void> {
    this.#addCamera(camera);
    // Only the newest matters: kept in memory and re-published retained on every connect.
    this.#snapshots.set(camera, jpeg);
    await this.#publishIfConnected(this.topics.snapshot(camera), jpeg, DELIVERY.snapshot);
  }

  async publishCameraStatus(camera: string, status: { state: string; message?: string }): Promise<void> {
    this.#addCamera(camera);
    const body = JSON.stringify(CameraStatusPayloadSchema.parse({ ...status, ts: new Date().toISOString() }));
    this.#cameraStatus.set(camera, body);
    await this.#publishIfConnected(this.topics.cameraStatus(camera), body, DELIVERY.cameraStatus);
  }

  async publishOtaStatus(status: Omit<OtaStatusPayload, 'ts'>): Promise<void> {
    const body = JSON.stringify(OtaStatusPayloadSchema.parse({ ...status, ts: new Date().toISOString() }));
    // Kept like camera states: the newest one is re-published on every connect.
    this.#otaStatus = body;
    await this.#publishIfConnected(this.topics.ota, body, DELIVERY.ota);
  }

  async modelChanged(): Promise<void> {
    await Promise.all([this.#config.homeassistant.enabled ? this.#publishDiscovery() : undefined, this.#sparkplug?.rebirth()]);
  }

  async publishTelemetry(payload: Record<string, unknown>): Promise<void> {
    const body = TelemetryPayloadSchema.parse({ ts: new Date().toISOString(), ...payload, link: this.stats() });
    // Telemetry is a snapshot of now: sent when connected, never queued (the next one supersedes it).
    await this.#publishIfConnected(this.topics.telemetry, JSON.stringify(body), DELIVERY.telemetry);
  }

  onCommand(name: string, handler: CommandHandler): void {
    TopicLevelSchema.parse(name);
    this.#commands.register(name, handler);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const conn = this.#conn;
    if (conn?.connected) await this.#drain(this.#deps.stopTimeoutMs ?? 5000);
    await this.#sparkplug?.stop();
    await conn?.stop(async (client) => {
      await client.publishAsync(this.topics.availability, 'offline', DELIVERY.availability);
    });
    if (this.#outbox && this.#outbox.unsaved > 0) this.#log('error', `mqtt: ${this.#outbox.unsaved} queued messages are lost at stop: the disk of ${this.#outboxDir} refused them (${this.#outbox.diskError ?? 'write failed'})`);
    this.#outbox?.close();
    this.#diskLog.flush();
    await this.#broker?.close();
    if (this.#heldReplies.length > 0) {
      this.#log('warn', `mqtt: ${this.#heldReplies.length} command replies never sent (the link was down until stop): ${this.#heldReplies.map((r) => this.topics.reply(r.name)).join(', ')}`);
      this.#heldReplies.length = 0;
    }
  }

  // ---- internals ----------------------------------------------------------------------

  #addCamera(camera: string): void {
    if (this.#cameras.has(camera)) return;
    this.topics.score(camera); // throws a clear error for a name that cannot be a topic level
    this.#cameras.add(camera);
    if (this.connected && this.#config.homeassistant.enabled) void this.#publishDiscovery();
    this.#sparkplug?.addCamera(camera);
  }

  #enqueue(kind: 'score' | 'event', topic: string, payload: string): void {
    if (!this.#outbox) throw new Error('the MQTT link is not started');
    if (this.#stopped) throw new Error(`the MQTT link is stopped; ${kind} for ${topic} not accepted`);
    this.#outbox.put(kind, topic, payload);
    this.#checkDisk();
    this.#pump();
  }

  /** Says when the outbox's disk starts refusing puts (full) and when it takes them again. */
  #checkDisk(): void {
    const box = this.#outbox;
    if (!box) return;
    const error = box.diskError;
    if (error !== undefined && !this.#diskRefusing) {
      this.#diskRefusing = true;
      this.#diskLog.error(`mqtt: the outbox cannot write to ${this.#outboxDir} (${error}); scores and events are still sent, but queued in memory only (lost if the daemon stops) until the disk takes writes again (telemetry: queue_unsaved)`);
    } else if (error === undefined && this.#diskRefusing && box.unsaved === 0) {
      this.#diskRefusing = false;
      this.#log('info', `mqtt: the outbox writes to ${this.#outboxDir} again; the messages held in memory are saved`);
    }
  }

  /** Hands queued messages to the live session, keeping at most outbox.inflight unacknowledged. */
  #pump(): void {
    const conn = this.#conn;
    const box = this.#outbox;
    if (!conn?.connected || !box) return;
    const room = this.#config.outbox.inflight - box.inflight;
    if (room <= 0) return;
    for (const m of box.take(room)) {
      conn.publish(m.topic, m.payload, { qos: 1, retain: false }).then(() => {
        // An ack from an abandoned session still means the broker has it.
        box.ack(m.id);
        this.#published += 1;
        if (box.size === 0) for (const w of this.#drainWaiters) w();
        this.#pump();
      }, (err: unknown) => {
        const code = reasonCode(err);
        // Not acknowledged (the session went away): it stays queued and is sent after the next connect.
        if (code === undefined) return;
        const final = FINAL_REFUSALS.has(code);
        box.refuse(m.id, final);
        this.#log(final ? 'error' : 'warn', `mqtt: the broker refused the ${m.kind} on ${m.topic} (reason code 0x${code.toString(16)}: ${errorText(err)}); ${final ? 'dropped from the queue and counted as queue_refused' : 'kept queued, sent again after the next connect'}`);
        this.#pump();
      });
    }
  }

  async #drain(timeoutMs: number): Promise<void> {
    if (!this.#outbox || this.#outbox.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#drainWaiters.add(done);
    });
    this.#drainWaiters.clear();
    if (this.#outbox.size > 0) this.#log('warn', `mqtt: ${this.#outbox.size} messages still queued at stop; they are sent after the next start`);
  }

  async #publishIfConnected(topic: string, payload: string | Buffer, delivery: { qos: 0 | 1; retain: boolean }): Promise<void> {
    if (!this.#conn?.connected) return;
    try {
      await this.#conn.publish(topic, payload, delivery);
      this.#published += 1;
    } catch (err) {
      // Retained state is re-published on the next connect; telemetry is superseded by the next one.
      this.#log('warn', `mqtt: publishing ${topic} failed: ${errorText(err)}`);
    }
  }

  async #publishRetainedAvailability(state: 'online' | 'offline'): Promise<void> {
    await this.#publishIfConnected(this.topics.availability, state, DELIVERY.availability);
  }

  async #republishRetained(): Promise<void> {
    const jobs: Array<Promise<void>> = [];
    for (const [camera, body] of this.#cameraStatus) jobs.push(this.#publishIfConnected(this.topics.cameraStatus(camera), body, DELIVERY.cameraStatus));
    if (this.#otaStatus !== undefined) jobs.push(this.#publishIfConnected(this.topics.ota, this.#otaStatus, DELIVERY.ota));
    for (const [camera, jpeg] of this.#snapshots) jobs.push(this.#publishIfConnected(this.topics.snapshot(camera), jpeg, DELIVERY.snapshot));
    if (this.#config.homeassistant.enabled) jobs.push(this.#publishDiscovery());
    await Promise.all(jobs);
    // `online` last, so a watcher that sees it also finds the state it describes.
    if (this.#announced) await this.#publishRetainedAvailability('online');
  }

  async #publishDiscovery(): Promise<void> {
    const messages = discoveryMessages({
      prefix: this.#config.homeassistant.prefix,
      topics: this.topics,
      cameras: [...this.#cameras],
      model: this.#deps.model?.(),
      softwareVersion: this.#deps.softwareVersion ?? '0.0.0',
    });
    await Promise.all(messages.map((m) => this.#publishIfConnected(m.topic, m.payload, { qos: 1, retain: true })));
  }

  #onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const ha = this.#config.homeassistant;
    if (ha.enabled && topic === `${ha.prefix}/status`) {
      if (payload.toString('utf8').trim() === 'online') void this.#publishDiscovery();
      return;
    }
    const name = this.topics.commandName(topic);
    if (name === undefined) {
      this.#log('warn', `mqtt: ignored a message on ${clip(topic)}: the level after cmd/ is not a command name (1-128 characters, no + or #)`);
      return;
    }
    if (packet.retain) {
      // A retained request would run again on every connect and every restart.
      const reply = this.#commands.refuse(`retained requests are refused: a retained ${name} would run again on every reconnect; clear it with an empty retained message on ${topic}`);
      void this.#reply(name, reply, packet).catch((err: unknown) => this.#log('error', `mqtt: replying to ${name}: ${errorText(err)}`));
      return;
    }
    void this.#commands.dispatch(name, payload)
      .then((reply) => this.#reply(name, reply, packet))
      .catch((err: unknown) => this.#log('error', `mqtt: command ${name}: ${errorText(err)}`));
  }

  async #reply(name: string, reply: CommandReply, request: IPublishPacket): Promise<void> {
    if (!reply.ok) this.#log('warn', `mqtt: command ${name} refused: ${reply.error}`);
    await this.#sendReply(name, JSON.stringify(reply), request);
  }

  async #sendHeldReplies(): Promise<void> {
    for (const r of this.#heldReplies.splice(0)) await this.#sendReply(r.name, r.body, r.request);
  }

  async #sendReply(name: string, body: string, request: IPublishPacket): Promise<void> {
    if (!this.#conn?.connected) {
      if (this.#stopped) {
        this.#log('warn', `mqtt: command ${name} finished after the link stopped; its reply to ${this.topics.reply(name)} is not sent`);
        return;
      }
      // The requester is still waiting: a late reply (it carries the request id) beats none.
      this.#heldReplies.push({ name, body, request });
      this.#log('warn', `mqtt: command ${name} finished while the link was down; its reply to ${this.topics.reply(name)} is sent after the next connect`);
      return;
    }
    await this.#publishIfConnected(this.topics.reply(name), body, DELIVERY.reply);
    const responseTopic = request.properties?.responseTopic;
    if (responseTopic && !/[#+]/.test(responseTopic) && this.#conn?.connected) {
      const correlationData = request.properties?.correlationData;
      try {
        await this.#conn.publish(responseTopic, body, { qos: 1, retain: false, properties: correlationData ? { correlationData } : {} });
      } catch (err) {
        this.#log('warn', `mqtt: reply to response topic ${responseTopic} failed: ${errorText(err)}`);
      }
    }
  }
}
