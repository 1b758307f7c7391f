/**
 * Memory: the real daemon (`moead-edge run`, a child process) with one folder camera
 * publishing to Mosquitto; its resident set size sampled from /proc/PID/status for the
 * whole run. Growth = RSS at the end over the steady state early in the run; the baseline
 * is the smallest memory budget among the board profiles.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BoardProfileSchema, BOARDS_DIR, listBoards } from '../src/config/board.js';
import { allocatorFromMaps } from '../src/util/allocator.js';
import { tempDir } from '../test/harness/tmp.js';
import type { BenchContext } from './context.js';
import { startDaemon } from './daemon-child.js';
import type { BenchResult } from './report.js';
import { sleep } from './rig.js';
import { median, round } from './stats.js';

export const GROWTH_GOAL_PERCENT = 5;

export type MemoryData = {
  minutes: number;
  fps: number;
  framesScored: number;
  steadyRssMb: number;
  endRssMb: number;
  growthPercent: number;
  peakRssMb: number;
  /** Least-squares slope of RSS over the second half of the run, MiB per hour (a leak shows here; warm-up does not). */
  lateTrendMbPerHour: number;
  smallestBoard: { name: string; memoryBudgetMb: number } | null;
  /** The daemon's malloc, read from its /proc/PID/maps. */
  allocator: string;
  samples: Array<[number, number]>;
};

/** VmRSS and VmHWM (peak) of a process, in MiB. */
export async function readRss(pid: number): Promise<{ rssMb: number; peakMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) / 1024;
  };
  return { rssMb: kb('VmRSS'), peakMb: kb('VmHWM') };
}

async function smallestBoard(): Promise<{ name: string; memoryBudgetMb: number } | null> {
  let best: { name: string; memoryBudgetMb: number } | null = null;
  for (const name of await listBoards()) {
    const board = BoardProfileSchema.parse(JSON.parse(await readFile(join(BOARDS_DIR, `${name}.json`), 'utf8')));
    if (!best || board.memoryBudgetMb < best.memoryBudgetMb) best = { name: board.name, memoryBudgetMb: board.memoryBudgetMb };
  }
  return best;
}

/** Least-squares slope (value per second) of the samples whose time (s) is at least `from`. */
export function trendPerSecond(samples: ReadonlyArray<[number, number]>, from: number): number {
  const late = samples.filter(([t]) => t >= from);
  if (late.length < 2) return 0;
  const mt = late.reduce((s, [t]) => s + t, 0) / late.length;
  const mv = late.reduce((s, [, v]) => s + v, 0) / late.length;
  const cov = late.reduce((s, [t, v]) => s + (t - mt) * (v - mv), 0);
  const varT = late.reduce((s, [t]) => s + (t - mt) ** 2, 0);
  return varT > 0 ? cov / varT : 0;
}

/** Median of the samples whose time (s) lies in [from, to). */
function windowMedian(samples: ReadonlyArray<[number, number]>, from: number, to: number): number {
  return median(samples.filter(([t]) => t >= from && t < to).map(([, v]) => v));
}

export async function runMemory(ctx: BenchContext, fps: number, progress: (line: string) => void): Promise<BenchResult & { data: MemoryData }> {
  const { options, imageDir } = ctx;
  const durationS = options.memoryMinutes * 60;
  // Steady state: after start-up allocations settle, inside the first minute.
  const steady: [number, number] = [Math.min(30, durationS / 4), Math.min(60, durationS / 2)];
  const endWindowS = Math.min(60, durationS / 4);
  const dir = await tempDir('moead-bench-memory-');
  const camera = 'bench-memory';
  const daemon = await startDaemon(ctx, dir, camera, { type: 'folder', path: imageDir, fps });
  const { child, firstScore: started } = daemon;
  const samples: Array<[number, number]> = [];
  let peakMb = 0;
  let allocator = 'unknown';
  try {
    const pid = child.proc.pid;
    if (pid === undefined) throw new Error('could not start the daemon (no pid)');
    const exited = child.exited.then((s) => {
      throw new Error(`the daemon exited during the memory run (code ${s.code}, signal ${s.signal}):\n${child.output().split('\n').slice(-15).join('\n')}`);
    });
    // Marked handled now: the stop in `finally` makes it reject after the run, on purpose.
    exited.catch(() => undefined);
    await Promise.race([started, exited, sleep(60_000).then(() => Promise.reject(new Error(`no score from the daemon within 60 s:\n${child.output()}`)))]);
    allocator = allocatorFromMaps(await readFile(`/proc/${pid}/maps`, 'utf8'));
    const t0 = performance.now();
    const every = options.quick ? 1000 : 2000;
    let lastProgress = 0;
    for (let elapsed = 0; elapsed < durationS * 1000; elapsed = performance.now() - t0) {
      const rss = await Promise.race([readRss(pid), exited]);
      samples.push([round(elapsed / 1000, 1), round(rss.rssMb, 1)]);
      peakMb = rss.peakMb;
      if (elapsed - lastProgress >= 60_000) {
        lastProgress = elapsed;
        progress(`memory: ${(elapsed / 60_000).toFixed(0)} min, RSS ${rss.rssMb.toFixed(0)} MiB, ${daemon.scores()} scores`);
      }
      await Promise.race([sleep(every), exited]);
    }
  } finally {
    await daemon.stop();
    await dir.remove();
  }
  const scored = daemon.scores();
  const steadyMb = windowMedian(samples, steady[0], steady[1]);
  const endMb = windowMedian(samples, durationS - endWindowS, Number.POSITIVE_INFINITY);
  const growth = ((endMb - steadyMb) / steadyMb) * 100;
  const lateTrend = trendPerSecond(samples, durationS / 2) * 3600;
  const board = await smallestBoard();
  const data: MemoryData = {
    minutes: options.memoryMinutes,
    fps,
    framesScored: scored,
    steadyRssMb: round(steadyMb, 1),
    endRssMb: round(endMb, 1),
    growthPercent: round(growth, 2),
    peakRssMb: round(peakMb, 1),
    lateTrendMbPerHour: round(lateTrend, 1),
    smallestBoard: board,
    allocator,
    samples,
  };
  return {
    name: 'memory',
    rows: [
      {
        bench: 'memory',
        figure: `daemon RSS, 1 camera @ ${fps} fps (peak)`,
        value: `${peakMb.toFixed(0)} MiB`,
        ...(board ? { baseline: `budget ${board.memoryBudgetMb} MiB (${board.name})`, ratio: `${((peakMb / board.memoryBudgetMb) * 100).toFixed(0)} % of budget`, goal: 'within budget', met: peakMb <= board.memoryBudgetMb } : {}),
      },
      {
        bench: 'memory',
        figure: `RSS growth over ${options.memoryMinutes} min`,
        value: `${growth >= 0 ? '+' : ''}${growth.toFixed(2)} %`,
        baseline: `steady ${steadyMb.toFixed(0)} MiB → end ${endMb.toFixed(0)} MiB`,
        goal: `< ${GROWTH_GOAL_PERCENT} %`,
        met: growth < GROWTH_GOAL_PERCENT,
      },
      // A slope over a minute or two says nothing about hours.
      ...(options.memoryMinutes >= 4
        ? [{ bench: 'memory', figure: 'RSS trend, second half of the run', value: `${lateTrend >= 0 ? '+' : ''}${lateTrend.toFixed(1)} MiB/h`, baseline: `${((lateTrend / steadyMb) * 100).toFixed(2)} % of steady per hour` }]
        : []),
    ],
    notes: [
      `\`moead-edge run\` child process (malloc: ${allocator}; MOEAD_MALLOC=jemalloc to compare), folder camera asked for ${fps} fps, ${scored} scores received (${(scored / durationS).toFixed(1)} fps); VmRSS sampled every ${options.quick ? 1 : 2} s. Steady state = median RSS over ${steady[0]}–${steady[1]} s after the first score, end = median over the last ${endWindowS} s; peak = VmHWM. Trend = least-squares slope over the second half (from ${(durationS / 2).toFixed(0)} s): growth that continues after start-up shows there, start-up growth does not.`,
      ...(options.memoryMinutes < 10 ? [`Run of ${options.memoryMinutes} min (the goal is stated for 10 min: run without --quick for it).`] : []),
      ...(board ? [] : [`no board profile in ${BOARDS_DIR}: RSS not compared with a budget`]),
    ],
    data,
  };
}
