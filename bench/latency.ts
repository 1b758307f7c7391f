/**
 * Capture → publish latency at a fixed frame rate below saturation (half the pipeline's
 * measured maximum): the real folder source timestamps each frame, the subscriber on the
 * broker timestamps the score's arrival. The baseline is the bare session.run time alone.
 */
import type { BenchContext } from './context.js';
import type { BenchResult } from './report.js';
import { sleep, type Rig } from './rig.js';
import { median, round, spread } from './stats.js';

/** The folder source's own cap. */
const MAX_SOURCE_FPS = 120;

export async function runLatency(ctx: BenchContext, rig: Rig, maxFps: number, bareMsPerFrame: number): Promise<BenchResult> {
  const { options, imageDir } = ctx;
  const fps = Math.min(MAX_SOURCE_FPS, Math.max(1, Math.round(maxFps / 2)));
  const camera = await rig.folder('bench-latency', imageDir, fps);
  await sleep(2000);
  const from = performance.now();
  await sleep(options.seconds * 1000);
  const to = performance.now();
  await camera.stop();
  const samples = camera.arrivals.filter((a) => a.at >= from && a.at < to).map((a) => a.latencyMs);
  const s = spread(samples);
  const achieved = (samples.length * 1000) / (to - from);
  const row = (figure: string, value: number) => ({
    bench: 'latency',
    figure,
    value: `${value.toFixed(1)} ms`,
    baseline: `bare run ${bareMsPerFrame.toFixed(1)} ms`,
    ratio: `${(value / bareMsPerFrame).toFixed(2)}× run`,
  });
  return {
    name: 'latency',
    rows: [row(`capture→publish p50 @ ${fps} fps`, s.p50), row('capture→publish p95', s.p95), row('capture→publish p99', s.p99)],
    notes: [
      `Folder source at ${fps} fps (half of the ${maxFps.toFixed(1)} fps maximum, capped at ${MAX_SOURCE_FPS}); ${s.n} frames in ${((to - from) / 1000).toFixed(0)} s (${achieved.toFixed(1)} fps arrived).`,
      'Latency = frame timestamped by the source → score message received by a subscriber on the broker (QoS 1, through the outbox); same process, monotonic clock.',
    ],
    data: { fps, frames: s.n, achievedFps: round(achieved), p50: round(s.p50), p95: round(s.p95), p99: round(s.p99), max: round(s.max), bareRunMs: round(bareMsPerFrame), medianMs: round(median(samples)) },
  };
}
