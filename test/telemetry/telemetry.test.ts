import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, writeFile } from 'node:fs/promises';
import { Server } from 'node:http';
import { test } from 'node:test';
import { collectSystem, MetricsExporter } from '../../src/telemetry/index.js';
import { withTempDir } from '../harness/index.js';

/** A fake sysfs/procfs tree laid out as on a Jetson Orin. */
async function jetsonTree(root: string): Promise<void> {
  const zones = [['CPU-therm', '45500'], ['GPU-therm', '43250'], ['CPU-therm', '46000']];
  for (const [i, [type, temp]] of zones.entries()) {
    await mkdir(`${root}/sys/class/thermal/thermal_zone${i}`, { recursive: true });
    await writeFile(`${root}/sys/class/thermal/thermal_zone${i}/type`, `${type}\n`);
    await writeFile(`${root}/sys/class/thermal/thermal_zone${i}/temp`, `${temp}\n`);
  }
  await mkdir(`${root}/sys/class/thermal/cooling_device0`, { recursive: true });
  await mkdir(`${root}/sys/devices/platform/17000000.ga10b`, { recursive: true });
  await writeFile(`${root}/sys/devices/platform/17000000.ga10b/load`, '734\n');
  await mkdir(`${root}/proc/device-tree`, { recursive: true });
  await writeFile(`${root}/proc/device-tree/model`, 'NVIDIA Jetson Orin Nano Developer Kit\0');
}

test('system figures: thermal zones found by type, Jetson GPU load, board model, disk, versions', () =>
  withTempDir(async (dir) => {
    await jetsonTree(dir.path);
    const s = await collectSystem(dir.path, { sys: `${dir.file('sys')}`, proc: `${dir.file('proc')}` });
    assert.deepEqual(s.thermal_c, { 'CPU-therm': 45.5, 'GPU-therm': 43.3, 'CPU-therm_2': 46 });
    assert.equal(s.gpu_load_percent, 73.4);
    assert.equal(s.board_model, 'NVIDIA Jetson Orin Nano Developer Kit');
    assert.ok(s.disk.free_bytes! > 0 && s.disk.total_bytes! >= s.disk.free_bytes!);
    assert.equal(s.runtime.node, process.versions.node);
    assert.match(s.runtime.onnxruntime ?? '', /^\d+\.\d+\.\d+/);
  }));

test('a machine without the sensors reports nulls, not errors', () =>
  withTempDir(async (dir) => {
    const s = await collectSystem(dir.file('missing'), { sys: dir.file('nosys'), proc: dir.file('noproc') });
    assert.deepEqual(s.thermal_c, {});
    assert.equal(s.gpu_load_percent, null);
    assert.equal(s.board_model, null);
    assert.equal(s.disk.free_bytes, null);
  }));

const quiet = { error: (): void => undefined };

const payload = {
  ts: new Date().toISOString(),
  uptime_s: 42.5,
  cameras: {
    cam1: {
      fps: 2.5,
      frames: 100,
      anomalous: 12,
      events: 3,
      latency_ms: { p50: 30, p95: 45.5, p99: null },
      capture: { restarts: 5, stalls: 2, restarts_last_hour: 1, stalls_last_hour: 0 },
      drops: { backpressure: 3, source: 0 },
    },
  },
  link: { connected: true, reconnects: 2, queue_depth: 7, queue_dropped_scores: 1, queue_sync_failures: 0, published: 99, commands: 4, command_errors: 1 },
  process: { rss_mb: 120, heap_mb: 30, cpu_percent: 55.5 },
  model: { name: 'moead-mnv2-synth', version: '1.0.0', backend: 'onnxruntime', reference_check: { frames: 4, max_difference: 0.0415, ok: false } },
  board: { name: 'generic-x86', temperature_c: { soc: 50 }, power_mw: { vdd_in: 4200 } },
  system: { disk: { free_bytes: 1e9, total_bytes: 2e9 }, thermal_c: { 'GPU-therm': 43.3 }, gpu_load_percent: 73.4, runtime: { node: '20.0.0', onnxruntime: '1.30.0' } },
};

test('the Prometheus endpoint serves the figures of the last telemetry payload', async () => {
  const exporter = new MetricsExporter(quiet);
  exporter.update(payload);
  const url = await exporter.listen('127.0.0.1', 0);
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    for (const line of [
      'moead_uptime_seconds 42.5',
      'moead_camera_fps{camera="cam1"} 2.5',
      'moead_camera_latency_ms{camera="cam1",quantile="0.95"} 45.5',
      'moead_camera_drops{camera="cam1",reason="backpressure"} 3',
      'moead_camera_frames_anomalous{camera="cam1"} 12',
      'moead_camera_events{camera="cam1"} 3',
      'moead_camera_capture_restarts{camera="cam1",window="total"} 5',
      'moead_camera_capture_restarts{camera="cam1",window="last_hour"} 1',
      'moead_camera_capture_stalls{camera="cam1",window="total"} 2',
      'moead_camera_capture_stalls{camera="cam1",window="last_hour"} 0',
      'moead_mqtt_connected 1',
      'moead_mqtt_queue_depth 7',
      'moead_mqtt_reconnects 2',
      'moead_process_rss_bytes 125829120',
      'moead_temperature_celsius{zone="GPU-therm"} 43.3',
      'moead_temperature_celsius{zone="soc"} 50',
      'moead_power_milliwatts{rail="vdd_in"} 4200',
      'moead_gpu_load_percent 73.4',
      'moead_model_info{name="moead-mnv2-synth",version="1.0.0",sha256="",backend="onnxruntime"} 1',
      'moead_model_reference_ok{sha256=""} 0',
      'moead_model_reference_max_difference{sha256=""} 0.0415',
    ]) assert.ok(text.includes(line), `missing "${line}" in:\n${text}`);
    assert.ok(!text.includes('quantile="0.99"'), 'an unknown percentile is left out, not exported as 0');

    // A later payload without the camera removes its series; one without a reference check (a model an update brought), its gauges.
    exporter.update({ ...payload, cameras: {}, model: { name: 'moead-mnv2-synth', version: '2.0.0', backend: 'onnxruntime' } });
    const later = await (await fetch(url)).text();
    assert.ok(!later.includes('camera="cam1"'));
    assert.ok(!/^moead_model_reference_(ok|max_difference)\{/m.test(later), later);
    assert.equal((await fetch(url.replace('/metrics', '/other'))).status, 404);
  } finally {
    await exporter.close();
  }
});

test('EXPECTED FAILURE - a malformed payload is refused naming the field', () => {
  const exporter = new MetricsExporter(quiet);
  assert.throws(() => exporter.update({ ...payload, uptime_s: 'long' }), /telemetry payload: uptime_s:/);
});

test('EXPECTED FAILURE - a port in use is reported with the config key', async () => {
  const a = new MetricsExporter(quiet);
  const url = await a.listen('127.0.0.1', 0);
  const port = Number(new URL(url).port);
  try {
    await assert.rejects(new MetricsExporter(quiet).listen('127.0.0.1', port), /telemetry\.prometheus: cannot listen on 127\.0\.0\.1:\d+: port in use/);
  } finally {
    await a.close();
  }
});

test('EXPECTED FAILURE - an error on the listening endpoint is logged, and neither ends the process nor stops the scrapes', async () => {
  // Not provoked for real: the likely cause, an accept failing for want of descriptors (EMFILE),
  // is absorbed by libuv, which accepts and closes the connection without reporting it. So the
  // event is emitted on the exporter's own server, found through Node's HTTP diagnostics channel.
  const logs: string[] = [];
  const exporter = new MetricsExporter({ error: (line) => logs.push(line) });
  exporter.update(payload);
  const url = await exporter.listen('127.0.0.1', 0);
  let server: Server | undefined;
  const grab = (message: unknown): void => {
    const s = (message as { server?: unknown }).server;
    if (s instanceof Server) server = s;
  };
  subscribe('http.server.request.start', grab);
  try {
    await (await fetch(url)).text();
    assert.ok(server, 'the endpoint\'s server seen on the diagnostics channel');
    // Twice: a listener kept from listen() would take the first and leave the second unhandled.
    for (const code of ['ENOBUFS', 'ENOMEM']) server.emit('error', Object.assign(new Error(`accept ${code}`), { code, syscall: 'accept' }));
    assert.deepEqual(logs, [
      `telemetry.prometheus: the endpoint ${url} failed: accept ENOBUFS; scrapes may fail until it recovers`,
      `telemetry.prometheus: the endpoint ${url} failed: accept ENOMEM; scrapes may fail until it recovers`,
    ]);
    assert.equal((await fetch(url)).status, 200);
  } finally {
    unsubscribe('http.server.request.start', grab);
    await exporter.close();
  }
});
