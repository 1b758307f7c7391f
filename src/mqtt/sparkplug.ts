/**
 * The optional Sparkplug B profile: the daemon is an edge node, each camera a device.
 * It runs its own MQTT session because Sparkplug needs its own last will (NDEATH carrying
 * bdSeq) while the main session's will is the `offline` availability message.
 *
 * Topics: spBv1.0/<group>/{NBIRTH,NDEATH,NCMD}/<node> and spBv1.0/<group>/{DBIRTH,DDATA,DCMD}/<node>/<camera>.
 * bdSeq counts sessions (0-255, persisted, so a host can tie an NDEATH to its NBIRTH across
 * restarts); seq counts messages of one session (0 in NBIRTH, then 1..255, 0, ...).
 * Scores go out as DDATA at QoS 0 as the spec asks; the JSON score topic is the lossless path.
 * No DDATA or late DBIRTH goes out before the session's births are out (the spec's order): a
 * score meanwhile is only remembered, and the DBIRTH carries it. Births run one at a time.
 *
 * Commands: NCMD `Node Control/Rebirth` and `Node Control/Reload Config`; DCMD `threshold`
 * (a Double), `Device Control/Snapshot` and `Device Control/Restart` (Booleans, true).
 * Except for rebirth they go through the same dispatcher as the JSON command topics (size,
 * allow-list, schema, handler); Sparkplug has no replies, so outcomes are logged. The size
 * limit is checked on the raw payload, before it is decoded.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import { Connection, errorText, type Log } from './connection.js';
import { decodePayload, encodePayload, type Metric } from './sparkplug-payload.js';
import type { CommandReply, ScorePayload } from './topics.js';

export interface SparkplugOptions {
  url: string;
  clientOptions: IClientOptions;
  backoff: { minMs: number; maxMs: number };
  groupId: string;
  nodeId: string;
  stateDir: string;
  log: Log;
  cameras: () => string[];
  model: () => { name: string; version: string } | undefined;
  /** Runs a daemon command as the JSON command topics would. */
  command: (name: string, request: { id: string } & Record<string, unknown>) => Promise<CommandReply>;
  /** The error that refuses (and counts) a raw command payload over mqtt.commands.maxPayloadBytes; undefined when it fits. */
  refuseOversize: (bytes: number) => string | undefined;
}

export const REBIRTH = 'Node Control/Rebirth';
const RELOAD_CONFIG = 'Node Control/Reload Config';
const SNAPSHOT = 'Device Control/Snapshot';
const RESTART = 'Device Control/Restart';
const THRESHOLD = 'threshold';

export class SparkplugNode {
  readonly #o: SparkplugOptions;
  readonly #conn: Connection;
  readonly #last = new Map<string, ScorePayload>();
  readonly #bdSeqFile: string;
  #bdSeq: number;
  #commandsRun = 0;
  #seq = 0;
  /** NBIRTH and every known camera's DBIRTH are out in this session. */
  #born = false;
  /** Counts lost sessions, so a birth pass of an old session never marks a new one born. */
  #sessionsLost = 0;
  #birthChain: Promise<void> = Promise.resolve();

  constructor(o: SparkplugOptions) {
    this.#o = o;
    this.#bdSeqFile = join(o.stateDir, 'sparkplug-bdseq');
    this.#bdSeq = readBdSeq(this.#bdSeqFile);
    this.#conn = new Connection({
      url: o.url,
      client: { ...o.clientOptions, clean: true },
      backoff: o.backoff,
      log: o.log,
      configPath: 'mqtt',
      perAttempt: () => {
        // Each session gets the next bdSeq, stored before the broker can know of it.
        this.#bdSeq = (this.#bdSeq + 1) % 256;
        writeBdSeq(this.#bdSeqFile, this.#bdSeq);
        return { will: { topic: this.topic('NDEATH'), payload: this.#death(), qos: 1, retain: false } };
      },
    });
    this.#conn.onConnected((client) => this.#conn.subscribe(client, { [this.topic('NCMD')]: { qos: 0 }, [`${this.topic('DCMD')}/+`]: { qos: 0 } }, 'Sparkplug commands'));
    this.#conn.onConnected(() => this.#birth());
    this.#conn.onDisconnected(() => {
      this.#born = false;
      this.#sessionsLost += 1;
    });
    this.#conn.onMessage((topic, payload) => this.#onCommand(topic, payload));
  }

  topic(type: 'NBIRTH' | 'NDEATH' | 'NCMD' | 'DBIRTH' | 'DDATA' | 'DCMD', device?: string): string {
    const t = `spBv1.0/${this.#o.groupId}/${type}/${this.#o.nodeId}`;
    return device === undefined ? t : `${t}/${device}`;
  }

  get bdSeq(): number {
    return this.#bdSeq;
  }

  start(): Promise<void> {
    return this.#conn.start();
  }

  /** NBIRTH and DBIRTHs again, as a host's rebirth request gets them (the model changed). */
  async rebirth(): Promise<void> {
    if (this.#conn.connected) await this.#birth();
  }

  /** A camera seen for the first time after NBIRTH gets its DBIRTH now. */
  addCamera(camera: string): void {
    // While births are under way, the birth pass picks the camera up.
    if (this.#born) void this.#publish(this.topic('DBIRTH', camera), this.#deviceMetrics(camera));
  }

  score(camera: string, s: ScorePayload): void {
    this.#last.set(camera, s);
    if (!this.#born) return;
    const ts = Date.parse(s.ts);
    void this.#publish(this.topic('DDATA', camera), scoreMetrics(s).map((m) => ({ ...m, timestamp: ts })));
  }

  /** Publishes NDEATH (a clean leave never fires the will) and closes the session. */
  async stop(): Promise<void> {
    await this.#conn.stop(async (client) => {
      await client.publishAsync(this.topic('NDEATH'), this.#death(), { qos: 1, retain: false });
    });
  }

  #death(): Buffer {
    return encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.#bdSeq }] });
  }

  #birth(): Promise<void> {
    this.#born = false;
    const next = this.#birthChain.then(() => this.#sendBirths());
    this.#birthChain = next.catch(() => undefined);
    return next;
  }

  async #sendBirths(): Promise<void> {
    this.#born = false;
    if (!this.#conn.connected) return;
    const session = this.#sessionsLost;
    this.#seq = 0;
    const model = this.#o.model();
    await this.#publish(this.topic('NBIRTH'), [
      { name: 'bdSeq', type: 'UInt64', value: this.#bdSeq },
      { name: REBIRTH, type: 'Boolean', value: false },
      { name: RELOAD_CONFIG, type: 'Boolean', value: false },
      { name: 'Properties/model name', type: 'String', value: model?.name ?? null },
      { name: 'Properties/model version', type: 'String', value: model?.version ?? null },
    ], true);
    const born = new Set<string>();
    // Cameras seen while the DBIRTHs go out get theirs in the next pass.
    for (let todo = this.#o.cameras(); todo.length > 0; todo = this.#o.cameras().filter((c) => !born.has(c))) {
      for (const camera of todo) {
        born.add(camera);
        await this.#publish(this.topic('DBIRTH', camera), this.#deviceMetrics(camera));
      }
    }
    this.#born = this.#conn.connected && session === this.#sessionsLost;
  }

  #deviceMetrics(camera: string): Metric[] {
    const s = this.#last.get(camera);
    const model = this.#o.model();
    return [
      ...scoreMetrics(s),
      { name: 'model/name', type: 'String', value: s?.model.name ?? model?.name ?? null },
      { name: 'model/version', type: 'String', value: s?.model.version ?? model?.version ?? null },
      { name: SNAPSHOT, type: 'Boolean', value: false },
      { name: RESTART, type: 'Boolean', value: false },
    ];
  }

  async #publish(topic: string, metrics: Metric[], birth = false): Promise<void> {
    // NBIRTH always carries seq 0; every later message of the session counts on, wrapping at 256.
    const seq = birth ? 0 : (this.#seq = (this.#seq + 1) % 256);
    try {
      await this.#conn.publish(topic, encodePayload({ timestamp: Date.now(), metrics, seq }), { qos: 0, retain: false });
    } catch (err) {
      this.#o.log('warn', `sparkplug: publishing ${topic} failed: ${errorText(err)}`);
    }
  }

  #onCommand(topic: string, payload: Buffer): void {
    const devicePrefix = `${this.topic('DCMD')}/`;
    const camera = topic.startsWith(devicePrefix) ? topic.slice(devicePrefix.length) : undefined;
    // The limit applies to the bytes received: decoding an oversized payload first would already
    // spend the memory and CPU the limit is there to bound.
    const oversize = this.#o.refuseOversize(payload.length);
    if (oversize !== undefined) {
      this.#o.log('warn', `sparkplug: ${topic}: command refused, not decoded: ${oversize}`);
      return;
    }
    let metrics: Metric[];
    try {
      metrics = decodePayload(payload).metrics;
    } catch (err) {
      this.#o.log('warn', `sparkplug: ignoring malformed command on ${topic}: ${errorText(err)}`);
      return;
    }
    for (const m of metrics) {
      const request = camera === undefined ? this.#nodeCommand(m) : this.#deviceCommand(camera, m);
      if (request === undefined) {
        this.#o.log('warn', `sparkplug: ${topic}: metric ${JSON.stringify(m.name)} (${m.type} ${String(m.value)}) is not a command here; ignored`);
      } else if (request !== 'rebirth') {
        void this.#run(topic, request.name, request.body);
      }
    }
  }

  #nodeCommand(m: Metric): 'rebirth' | { name: string; body: Record<string, unknown> } | undefined {
    if (m.name === REBIRTH && m.value === true) {
      void this.#birth();
      return 'rebirth';
    }
    if (m.name === RELOAD_CONFIG && m.value === true) return { name: 'reload-config', body: {} };
    return undefined;
  }

  #deviceCommand(camera: string, m: Metric): { name: string; body: Record<string, unknown> } | undefined {
    // The value goes to the command's own schema unconverted, so a wrong type is refused there.
    if (m.name === THRESHOLD) {
      return { name: 'set-threshold', body: { camera, threshold: typeof m.value === 'bigint' ? Number(m.value) : m.value } };
    }
    if (m.name === SNAPSHOT && m.value === true) return { name: 'snapshot', body: { camera } };
    if (m.name === RESTART && m.value === true) return { name: 'restart-camera', body: { camera } };
    return undefined;
  }

  async #run(topic: string, name: string, body: Record<string, unknown>): Promise<void> {
    this.#commandsRun += 1;
    const reply = await this.#o.command(name, { id: `sparkplug-${this.#commandsRun}`, ...body });
    if (reply.ok) this.#o.log('info', `sparkplug: ${topic}: ${name} done`);
    else this.#o.log('warn', `sparkplug: ${topic}: ${name} refused: ${reply.error}`);
  }
}

function readBdSeq(file: string): number {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n >= 0 && n < 256 ? n : 255;
  } catch {
    // No file yet: the first session becomes bdSeq 0.
    return 255;
  }
}

function writeBdSeq(file: string, n: number): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(`${file}.tmp`, String(n));
  renameSync(`${file}.tmp`, file);
}

/**
 * One score as device metrics: the DDATA of each score, and the DBIRTH's with the camera's
 * last score (all null before the first). Sparkplug metrics are scalars, so of the JSON
 * message's `regions` they carry the count (0 on a frame under the threshold) and the
 * strongest one's box and peak (null without one): a SCADA host can alarm on the count and
 * show where, where a list would need a DataSet few hosts display.
 */
function scoreMetrics(s: ScorePayload | undefined): Metric[] {
  const strongest = s?.regions?.[0];
  return [
    { name: 'score', type: 'Double', value: s?.score ?? null },
    { name: 'normalized', type: 'Double', value: s?.normalized ?? null },
    { name: 'anomalous', type: 'Boolean', value: s?.anomalous ?? null },
    { name: 'threshold', type: 'Double', value: s?.threshold ?? null },
    { name: 'latency_ms', type: 'Double', value: s?.latency_ms ?? null },
    { name: 'seq', type: 'UInt64', value: s?.seq ?? null },
    { name: 'regions', type: 'UInt32', value: s ? (s.regions?.length ?? 0) : null },
    ...(['x', 'y', 'w', 'h', 'peak'] as const).map((key): Metric => ({ name: `region/${key}`, type: 'Double', value: strongest?.[key] ?? null })),
  ];
}
