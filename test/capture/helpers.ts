/** Shared pieces of the capture tests: real clips made by ffmpeg, a frame collector, child lookup. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CameraConfigSchema, createFrameSource, type CaptureStats, type FrameSourceDeps } from '../../src/capture/index.js';
import type { Frame, FrameSource, SourceStatus } from '../../src/capture/frame.js';
import { errorMessage } from '../../src/util/log.js';

export const FIXTURES = fileURLToPath(new URL('../../../test/capture/fixtures/', import.meta.url));
export const FAKE_LAUNCHER = join(FIXTURES, 'fake-launcher.mjs');
chmodSync(FAKE_LAUNCHER, 0o755);
/** A launcher wrapper that does not exec: its grandchild holds the pipes (fixtures/wrapper-launcher.sh). */
export const WRAPPER_LAUNCHER = join(FIXTURES, 'wrapper-launcher.sh');
chmodSync(WRAPPER_LAUNCHER, 0o755);
/** A camera in a Node process of its own (fixtures/camera-process.mjs). */
export const CAMERA_PROCESS = join(FIXTURES, 'camera-process.mjs');

const clipDir = join(tmpdir(), `moead-capture-clips-${process.pid}`);
process.once('exit', () => rmSync(clipDir, { recursive: true, force: true }));

/** A testsrc clip of size w×h at `rate` fps made by ffmpeg once per process; `output`: the arguments after the input. */
function testsrcClip(name: string, width: number, height: number, rate: number, output: string[]): string {
  mkdirSync(clipDir, { recursive: true });
  const file = join(clipDir, `testsrc-${width}x${height}-${rate}-${name}`);
  if (!existsSync(file)) {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${width}x${height}:rate=${rate}`, ...output, file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ffmpeg could not make ${file}: ${r.stderr}`);
  }
  return file;
}

/** An H.264 testsrc clip (made once per process): `seconds` long at `rate` fps, size w×h. */
export function testClip(width: number, height: number, rate: number, seconds: number): string {
  return testsrcClip(`${seconds}.mp4`, width, height, rate, ['-t', String(seconds), '-c:v', 'libx264', '-g', String(rate), '-bf', '0', '-pix_fmt', 'yuv420p']);
}

/** An MJPEG-in-AVI testsrc clip, decodable by GStreamer's base and good plugins alone (no libav). */
export function mjpegClip(width: number, height: number, rate: number, frames: number): string {
  return testsrcClip(`${frames}.avi`, width, height, rate, ['-frames:v', String(frames), '-c:v', 'mjpeg', '-q:v', '3']);
}

/**
 * An uncompressed YUV 4:4:4 testsrc clip (y4m, GStreamer's y4mdec): no decoder of its own
 * and no chroma to upsample, so GStreamer's frames differ from ffmpeg's by colour conversion rounding alone.
 */
export function y4mClip(width: number, height: number, rate: number, frames: number): string {
  return testsrcClip(`${frames}.y4m`, width, height, rate, ['-frames:v', String(frames), '-pix_fmt', 'yuv444p', '-f', 'yuv4mpegpipe']);
}

/** ffmpeg's own rgb24 decode of the first frame of a clip, through extra filters. */
export function referenceFrame(file: string, filters: string): Buffer {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, ...(filters ? ['-vf', filters] : []),
    '-frames:v', '1', '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'], { maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`reference decode failed: ${r.stderr.toString()}`);
  return r.stdout;
}

export interface Running {
  source: FrameSource;
  frames: Frame[];
  statuses: SourceStatus[];
  logs: string[];
  stats(): CaptureStats;
  /** Resolves once `cond` holds; fails with what was seen after `timeoutMs`. */
  until(cond: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startCamera(config: Record<string, unknown>, deps: FrameSourceDeps = {}): Promise<Running> {
  const logs: string[] = [];
  const source = createFrameSource(CameraConfigSchema.parse({ name: 'cam', ...config }), {
    ...deps,
    log: (level, message) => logs.push(`${level} ${message}`),
  });
  const frames: Frame[] = [];
  const statuses: SourceStatus[] = [];
  await source.start((f) => frames.push(f), (s) => statuses.push(s));
  const stats = (): CaptureStats => source.stats() as CaptureStats;
  return {
    source, frames, statuses, logs, stats,
    async until(cond, what, timeoutMs = 8000) {
      try {
        await waitUntil(cond, what, timeoutMs);
      } catch (err) {
        await source.stop();
        throw new Error(`${errorMessage(err)}: ${frames.length} frames, stats ${JSON.stringify(stats())}, statuses ${JSON.stringify(statuses)}, logs ${JSON.stringify(logs.slice(-5))}`);
      }
    },
    stop: () => source.stop(),
  };
}

/** Resolves once `cond` holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether the process has ended (a zombie nobody reaped yet has ended too). */
export function processGone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Pids of this process's children whose command name is `comm`. */
export function childrenNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && m[1] === comm && Number(m[2]) === process.pid) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The loopback RTSP server (gst-rtsp-server through system python3-gi), resolved once it listens. */
export async function startRtspServer(port: number, clip: string): Promise<ChildProcess> {
  const child = spawn('/usr/bin/python3', [join(FIXTURES, 'rtsp_server.py'), String(port), clip], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`RTSP server did not start: ${err}`)), 8000);
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`RTSP server exited (${code}): ${err}`));
    });
  });
  return child;
}

export function rtspServerAvailable(): string | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer"], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'needs python3-gi and gir1.2-gst-rtsp-server-1.0 (apt)';
}

export function gstElementsMissing(...elements: string[]): string | undefined {
  const missing = elements.filter((e) => spawnSync('gst-inspect-1.0', ['--exists', e]).status !== 0);
  return missing.length ? `GStreamer elements missing: ${missing.join(', ')}` : undefined;
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
