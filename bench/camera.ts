/**
 * A live camera: the real daemon (`moead-edge run`, a child process) on a `file` camera that
 * ffmpeg decodes to raw 1280×720 rgb24 at 30 fps, the path USB, CSI and RTSP cameras take and
 * the folder source of the other benchmarks does not. Figure: the daemon's CPU time per
 * scored frame, every thread of it (/proc/PID/task/TID/schedstat), against the CPU time of one
 * bare session.run of the same model and threads in this process, measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processThreadIds, threadCpuTimes } from '../src/util/threads.js';
import { tempDir } from '../test/harness/tmp.js';
import { openBareSession, type BareSession } from './bare.js';
import type { BenchContext } from './context.js';
import { startDaemon } from './daemon-child.js';
import { unavailable, type BenchResult } from './report.js';
import { sleep } from './rig.js';
import { round } from './stats.js';

const WIDTH = 1280;
const HEIGHT = 720;
const FPS = 30;

export type CameraData = {
  width: number;
  height: number;
  fps: number;
  seconds: number;
  framesScored: number;
  daemonCpuMsPerFrame: number;
  daemonCorePercent: number;
  decoderCorePercent: number | null;
  bareCpuMsPerRun: number;
  /** The same bare runs started 1/fps apart, as the camera's frames arrive. */
  pacedCpuMsPerRun: number;
  /** The daemon's main (JavaScript) thread, per scored frame. */
  mainThreadCpuMsPerFrame: number;
};

/**
 * CPU time (ms) per bare run: back to back, or each started `everyMs` after the one before, as
 * a camera's frames arrive. A run after an idle gap finds colder caches (and, in a VM, a vCPU
 * that the host may have descheduled), so it costs more than one of a back-to-back loop.
 */
async function bareCpuPerRun(bare: BareSession, minMs: number, everyMs = 0): Promise<number> {
  const from = process.cpuUsage();
  const start = performance.now();
  let runs = 0;
  while (runs < 50 || performance.now() - start < minMs) {
    const began = performance.now();
    await bare.time({ warmup: 0, minIterations: 1, minMs: 0 });
    runs += 1;
    if (everyMs > 0) await sleep(Math.max(0, everyMs - (performance.now() - began)));
  }
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000 / runs;
}

/** CPU time (ns) of every thread of a process now; a thread that ends meanwhile counts 0. */
export function processCpuNs(pid: number): number {
  return processThreadIds(pid).reduce((sum, tid) => sum + (threadCpuTimes(tid, pid)?.runNs ?? 0), 0);
}

/** The first child of `pid` whose command name is `comm`. */
export function childNamed(pid: number, comm: string): number | undefined {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children.find((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').trim() === comm;
    } catch {
      return false;
    }
  });
}

export async function runCamera(ctx: BenchContext): Promise<BenchResult> {
  const { options, bundle, tensors } = ctx;
  const figure = `daemon CPU per scored frame, ${WIDTH}x${HEIGHT} rgb24 camera @ ${FPS} fps`;
  const dir = await tempDir('moead-bench-camera-');
  try {
    const clip = dir.file('testsrc.mp4');
    const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${WIDTH}x${HEIGHT}:rate=${FPS}`, '-t', '10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', clip], { encoding: 'utf8' });
    if (made.error || made.status !== 0) return unavailable('camera', figure, `no test clip: ffmpeg ${made.error ? 'is missing (apt-get install ffmpeg)' : `failed: ${made.stderr.trim()}`}`);

    // The baseline first, in this process, with nothing else running.
    const { input, output } = bundle.manifest;
    const bare = await openBareSession(bundle.modelPath, options.threads, input.name, output.name, tensors, input);
    let bareCpuMsPerRun: number;
    let pacedCpuMsPerRun: number;
    try {
      await bare.time({ warmup: 20, minIterations: 1, minMs: 0 });
      const minMs = options.quick ? 2000 : 5000;
      bareCpuMsPerRun = await bareCpuPerRun(bare, minMs);
      pacedCpuMsPerRun = await bareCpuPerRun(bare, minMs, 1000 / FPS);
    } finally {
      await bare.release();
    }

    const daemon = await startDaemon(ctx, dir, 'bench-camera', { type: 'file', path: clip, width: WIDTH, height: HEIGHT, fps: FPS, loop: true });
    const { child } = daemon;
    const seconds = options.quick ? 8 : options.seconds;
    let daemonNs: number;
    let mainNs: number;
    let decoderNs: number | undefined;
    let frames: number;
    try {
      const pid = child.proc.pid;
      if (pid === undefined) throw new Error('could not start the daemon (no pid)');
      for (const until = performance.now() + 60_000; daemon.scores() === 0; await sleep(100)) {
        if (performance.now() > until || child.proc.exitCode !== null) throw new Error(`no score from the daemon:\n${child.output().split('\n').slice(-15).join('\n')}`);
      }
      await sleep(5000); // start-up done: the clip plays at its own rate from here
      const decoder = childNamed(pid, 'ffmpeg');
      const mainCpuNs = () => threadCpuTimes(pid, pid)?.runNs ?? 0;
      const daemonFrom = processCpuNs(pid);
      const mainFrom = mainCpuNs();
      const decoderFrom = decoder === undefined ? undefined : processCpuNs(decoder);
      const scoredFrom = daemon.scores();
      await sleep(seconds * 1000);
      daemonNs = processCpuNs(pid) - daemonFrom;
      mainNs = mainCpuNs() - mainFrom;
      decoderNs = decoder === undefined || decoderFrom === undefined ? undefined : processCpuNs(decoder) - decoderFrom;
      frames = daemon.scores() - scoredFrom;
    } finally {
      await daemon.stop();
    }
    if (frames === 0) throw new Error(`the daemon scored no frame in ${seconds} s:\n${child.output()}`);
    const perFrameMs = daemonNs / 1e6 / frames;
    const data: CameraData = {
      width: WIDTH,
      height: HEIGHT,
      fps: FPS,
      seconds,
      framesScored: frames,
      daemonCpuMsPerFrame: round(perFrameMs, 2),
      daemonCorePercent: round((daemonNs / 1e9 / seconds) * 100, 1),
      decoderCorePercent: decoderNs === undefined ? null : round((decoderNs / 1e9 / seconds) * 100, 1),
      bareCpuMsPerRun: round(bareCpuMsPerRun, 2),
      pacedCpuMsPerRun: round(pacedCpuMsPerRun, 2),
      mainThreadCpuMsPerFrame: round(mainNs / 1e6 / frames, 2),
    };
    return {
      name: 'camera',
      rows: [
        { bench: 'camera', figure, value: `${perFrameMs.toFixed(2)} ms`, baseline: `bare session.run ${bareCpuMsPerRun.toFixed(2)} ms CPU`, ratio: `${(perFrameMs / bareCpuMsPerRun).toFixed(2)}× run` },
        { bench: 'camera', figure: `bare session.run CPU, one run every ${(1000 / FPS).toFixed(1)} ms (the camera's pace)`, value: `${pacedCpuMsPerRun.toFixed(2)} ms`, baseline: `back to back ${bareCpuMsPerRun.toFixed(2)} ms`, ratio: `${(pacedCpuMsPerRun / bareCpuMsPerRun).toFixed(2)}×` },
        { bench: 'camera', figure: 'daemon CPU per scored frame, main (JavaScript) thread', value: `${data.mainThreadCpuMsPerFrame.toFixed(2)} ms`, baseline: `whole daemon ${perFrameMs.toFixed(2)} ms` },
        { bench: 'camera', figure: `daemon CPU, that camera (${(frames / seconds).toFixed(1)} scores/s)`, value: `${data.daemonCorePercent} % of a core`, ...(data.decoderCorePercent === null ? {} : { baseline: `ffmpeg decoding it ${data.decoderCorePercent} %` }) },
      ],
      notes: [
        `\`moead-edge run\` child process on a \`file\` camera (an H.264 testsrc clip made here, ${WIDTH}x${HEIGHT}, ${FPS} fps, looped; ffmpeg decodes and writes rgb24 to the daemon's FIFO). CPU = every thread's time on a core (/proc/PID/task/*/schedstat) over ${seconds} s after the first score and 5 s more; per frame = over the scores a subscriber received meanwhile (${frames}). ffmpeg is its own process and not in the daemon's figure.`,
        `Baseline: the CPU time of one bare session.run of the same model with ${options.threads} intra-op thread(s) in this process (user + system time over the runs), so the ratio is what the whole daemon spends per frame (capture, preprocessing, inference, publishing, housekeeping) in model runs.`,
        `Paced: the same bare runs, each started ${(1000 / FPS).toFixed(1)} ms after the one before as the camera's frames come, nothing else running: a run after an idle gap finds colder caches (and, in a VM, a vCPU the host may have descheduled), so part of the daemon's figure is the camera's pace rather than the daemon. Main thread: the daemon's JavaScript thread (decision, publishing, the outbox, capture's reads); the rest is the inference worker, libuv's pool (pre- and post-processing in the addon, file syncs) and V8's helpers.`,
      ],
      data,
    };
  } finally {
    await dir.remove();
  }
}
