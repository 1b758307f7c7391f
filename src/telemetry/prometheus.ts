/**
 * A Prometheus text endpoint serving the same figures as the MQTT telemetry message: the
 * daemon hands every telemetry payload it publishes to update(), and a scrape renders the
 * latest one. Scrapes never measure anything themselves, so they cannot disturb windowed
 * figures (fps over the telemetry interval) or disagree with what MQTT subscribers saw.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '../util/log.js';

const num = z.number().nullable().optional();
const numbers = z.record(z.string(), z.number().nullable());

/** The parts of the telemetry payload exported; anything else in it is ignored, missing parts are skipped. */
const TelemetryShape = z.looseObject({
  uptime_s: num,
  cameras: z.record(z.string(), z.looseObject({
    fps: num,
    frames: num,
    anomalous: num,
    events: num,
    latency_ms: z.looseObject({ p50: num, p95: num, p99: num }).optional(),
    capture: z.looseObject({ restarts: num, stalls: num, restarts_last_hour: num, stalls_last_hour: num }).optional(),
    drops: numbers.optional(),
  })).optional(),
  link: z.looseObject({
    connected: z.boolean().optional(),
    reconnects: num,
    queue_depth: num,
    queue_dropped_scores: num,
    queue_sync_failures: num.optional(),
    queue_refused: num.optional(),
    queue_unsaved: num.optional(),
    queue_write_failures: num.optional(),
    published: num,
    commands: num,
    command_errors: num,
  }).optional(),
  process: z.looseObject({ rss_mb: num, heap_mb: num, cpu_percent: num }).optional(),
  model: z.looseObject({
    name: z.string().optional(),
    version: z.string().optional(),
    sha256: z.string().optional(),
    backend: z.string().optional(),
    reference_check: z.looseObject({ max_difference: num, ok: z.boolean().optional() }).optional(),
  }).optional(),
  board: z.looseObject({ name: z.string().optional(), temperature_c: numbers.optional(), power_mw: numbers.optional() }).optional(),
  system: z.looseObject({
    disk: z.looseObject({ free_bytes: num, total_bytes: num }).optional(),
    thermal_c: numbers.optional(),
    gpu_load_percent: num,
    runtime: z.looseObject({ node: z.string().optional(), onnxruntime: z.string().nullable().optional() }).optional(),
  }).optional(),
});

export class MetricsExporter {
  readonly registry = new Registry();
  #server: Server | undefined;
  readonly #g: Record<string, Gauge<string>>;
  #updates = 0;
  readonly #log: Pick<Logger, 'error'>;

  /** `log` gets what goes wrong with the endpoint after it started listening. */
  constructor(log: Pick<Logger, 'error'>) {
    this.#log = log;
    const gauge = (name: string, help: string, labelNames: string[] = []): Gauge<string> =>
      new Gauge({ name, help, labelNames, registers: [this.registry] });
    this.#g = {
      uptime: gauge('moead_uptime_seconds', 'Seconds since the daemon started'),
      fps: gauge('moead_camera_fps', 'Frames scored per second over the last telemetry interval', ['camera']),
      frames: gauge('moead_camera_frames_scored', 'Frames scored since start', ['camera']),
      anomalous: gauge('moead_camera_frames_anomalous', 'Frames scored at or over the threshold since start', ['camera']),
      events: gauge('moead_camera_events', 'Anomaly events started since start', ['camera']),
      restarts: gauge('moead_camera_capture_restarts', 'Capture restarts (child exited, could not start, or stalled) since start, and within the last hour', ['camera', 'window']),
      stalls: gauge('moead_camera_capture_stalls', 'Capture stalls (no frame for stallTimeoutS) since start, and within the last hour', ['camera', 'window']),
      latency: gauge('moead_camera_latency_ms', 'Capture to publish latency percentile over recent frames', ['camera', 'quantile']),
      drops: gauge('moead_camera_drops', 'Frames dropped since start, by reason', ['camera', 'reason']),
      connected: gauge('moead_mqtt_connected', '1 while the MQTT session is up'),
      reconnects: gauge('moead_mqtt_reconnects', 'MQTT reconnects since start'),
      queueDepth: gauge('moead_mqtt_queue_depth', 'Messages waiting in the on-disk outbox'),
      queueDropped: gauge('moead_mqtt_queue_dropped_scores', 'Scores dropped because the outbox was full'),
      queueSyncFailures: gauge('moead_mqtt_queue_sync_failures', 'Outbox fdatasyncs that failed (queued messages may not survive a power cut)'),
      queueUnsaved: gauge('moead_mqtt_queue_unsaved', 'Queued messages the disk refused (full), held in memory only'),
      queueWriteFailures: gauge('moead_mqtt_queue_write_failures', 'Outbox records the disk refused since start'),
      queueRefused: gauge('moead_mqtt_queue_refused', 'Queued messages the broker refused for good (not authorized, invalid topic or payload)'),
      published: gauge('moead_mqtt_published', 'Messages acknowledged by the broker since start'),
      commands: gauge('moead_mqtt_commands', 'Commands handled since start'),
      commandErrors: gauge('moead_mqtt_command_errors', 'Commands answered with an error since start'),
      rss: gauge('moead_process_rss_bytes', 'Resident memory of the daemon'),
      heap: gauge('moead_process_heap_bytes', 'V8 heap in use'),
      cpu: gauge('moead_process_cpu_percent', 'CPU use of the daemon in percent of one core'),
      temperature: gauge('moead_temperature_celsius', 'Temperature per thermal zone', ['zone']),
      power: gauge('moead_power_milliwatts', 'Power per rail', ['rail']),
      gpu: gauge('moead_gpu_load_percent', 'GPU load (Jetson)'),
      diskFree: gauge('moead_disk_free_bytes', 'Free space under the state folder'),
      diskTotal: gauge('moead_disk_total_bytes', 'Size of the filesystem holding the state folder'),
      model: gauge('moead_model_info', 'The model in use (value 1)', ['name', 'version', 'sha256', 'backend']),
      // Labelled by the model, so that a model never checked (one an update brought) has no series
      // rather than an unlabelled gauge's 0, which would read as a failed check.
      referenceOk: gauge('moead_model_reference_ok', "1 when the model's reference frames scored on this device as its manifest says at start, else 0", ['sha256']),
      referenceDifference: gauge('moead_model_reference_max_difference', "Largest difference from the manifest's score over the reference frames at start", ['sha256']),
      runtime: gauge('moead_runtime_info', 'Runtime versions (value 1)', ['node', 'onnxruntime', 'board']),
      telemetryAge: gauge('moead_telemetry_updates', 'Telemetry payloads received by the exporter'),
    };
  }

  /** Takes the telemetry payload the daemon just published. Throws naming the field when it is malformed. */
  update(payload: unknown): void {
    const parsed = TelemetryShape.safeParse(payload);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new Error(`telemetry payload: ${i?.path.join('.') || '(root)'}: ${i?.message}`);
    }
    const t = parsed.data;
    const g = this.#g;
    // Labels of cameras, zones or rails that disappeared must not linger from an older payload.
    for (const gauge of Object.values(g)) gauge.reset();
    const set = (gauge: Gauge<string>, value: number | null | undefined, labels: Record<string, string> = {}): void => {
      if (value !== null && value !== undefined) gauge.set(labels, value);
    };
    set(g.uptime!, t.uptime_s);
    for (const [camera, c] of Object.entries(t.cameras ?? {})) {
      set(g.fps!, c.fps, { camera });
      set(g.frames!, c.frames, { camera });
      set(g.anomalous!, c.anomalous, { camera });
      set(g.events!, c.events, { camera });
      set(g.restarts!, c.capture?.restarts, { camera, window: 'total' });
      set(g.restarts!, c.capture?.restarts_last_hour, { camera, window: 'last_hour' });
      set(g.stalls!, c.capture?.stalls, { camera, window: 'total' });
      set(g.stalls!, c.capture?.stalls_last_hour, { camera, window: 'last_hour' });
      for (const [q, v] of [['0.5', c.latency_ms?.p50], ['0.95', c.latency_ms?.p95], ['0.99', c.latency_ms?.p99]] as const) set(g.latency!, v, { camera, quantile: q });
      for (const [reason, v] of Object.entries(c.drops ?? {})) set(g.drops!, v, { camera, reason });
    }
    if (t.link) {
      if (t.link.connected !== undefined) g.connected!.set(t.link.connected ? 1 : 0);
      set(g.reconnects!, t.link.reconnects);
      set(g.queueDepth!, t.link.queue_depth);
      set(g.queueDropped!, t.link.queue_dropped_scores);
      set(g.queueSyncFailures!, t.link.queue_sync_failures);
      set(g.queueRefused!, t.link.queue_refused);
      set(g.queueUnsaved!, t.link.queue_unsaved);
      set(g.queueWriteFailures!, t.link.queue_write_failures);
      set(g.published!, t.link.published);
      set(g.commands!, t.link.commands);
      set(g.commandErrors!, t.link.command_errors);
    }
    const mb = (v: number | null | undefined): number | undefined => (v === null || v === undefined ? undefined : v * 1048576);
    set(g.rss!, mb(t.process?.rss_mb));
    set(g.heap!, mb(t.process?.heap_mb));
    set(g.cpu!, t.process?.cpu_percent);
    const zones = { ...t.system?.thermal_c, ...t.board?.temperature_c };
    for (const [zone, v] of Object.entries(zones)) set(g.temperature!, v, { zone });
    for (const [rail, v] of Object.entries(t.board?.power_mw ?? {})) set(g.power!, v, { rail });
    set(g.gpu!, t.system?.gpu_load_percent);
    set(g.diskFree!, t.system?.disk?.free_bytes);
    set(g.diskTotal!, t.system?.disk?.total_bytes);
    const check = t.model?.reference_check;
    const checked = { sha256: t.model?.sha256 ?? '' };
    set(g.referenceOk!, check?.ok === undefined ? undefined : Number(check.ok), checked);
    set(g.referenceDifference!, check?.max_difference, checked);
    if (t.model?.name) {
      g.model!.set({ name: t.model.name, version: t.model.version ?? '', sha256: t.model.sha256 ?? '', backend: t.model.backend ?? '' }, 1);
    }
    if (t.system?.runtime?.node) {
      g.runtime!.set({ node: t.system.runtime.node, onnxruntime: t.system.runtime.onnxruntime ?? '', board: t.board?.name ?? '' }, 1);
    }
    this.#updates += 1;
    g.telemetryAge!.set(this.#updates);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves GET /metrics on host:port (0 = a free port); resolves with the URL. */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
        return;
      }
      this.render().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      const refuse = (err: NodeJS.ErrnoException): void =>
        reject(new Error(`telemetry.prometheus: cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'port in use' : err.message}`));
      server.once('error', refuse);
      server.listen(port, host, () => {
        server.off('error', refuse);
        resolve();
      });
    });
    this.#server = server;
    const addr = server.address() as AddressInfo;
    const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/metrics`;
    // An error now (a failed accept) leaves the server listening; with no listener Node would
    // throw it and end the daemon over its metrics endpoint.
    server.on('error', (err: NodeJS.ErrnoException) => this.#log.error(`telemetry.prometheus: the endpoint ${url} failed: ${err.message}; scrapes may fail until it recovers`));
    return url;
  }

  close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
