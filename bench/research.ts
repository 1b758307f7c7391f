/**
 * Against the research code: the bundle's PyTorch checkpoint scored by the Python toolchain
 * in eager FP32 (how the paper's code runs), on the same images with the same threads, by
 * bench/research_eager.py in its own process. Our side is the daemon as measured by the
 * pipeline benchmark (throughput) and the memory benchmark (peak RSS of `moead-edge run`).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { TRAINING_DIR, VENV_PYTHON } from '../src/toolchain/python-env.js';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import type { BenchContext } from './context.js';
import type { MemoryData } from './memory.js';
import type { PipelineData } from './pipeline.js';
import { unavailable, type BenchResult, type Row } from './report.js';
import { formatRatio, round } from './stats.js';

/** Names the toolchain gives a trained model file, looked for in the bundle in this order. */
export const CHECKPOINT_FILES = ['checkpoint.pt', 'model.pt'] as const;
const SCRIPT = join(PACKAGE_ROOT, 'bench', 'research_eager.py');

const EagerReportSchema = z.object({
  fps: z.number().positive(),
  frames: z.number().int().positive(),
  seconds: z.number().positive(),
  median_ms: z.number().positive(),
  peak_rss_mb: z.number().positive(),
  rss_after_load_mb: z.number().positive(),
  threads: z.number().int().positive(),
  torch: z.string(),
  python: z.string(),
});
type EagerReport = z.infer<typeof EagerReportSchema>;

function runEager(args: string[]): Promise<EagerReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(VENV_PYTHON, [SCRIPT, ...args], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, PYTHONPATH: TRAINING_DIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', (err) => reject(new Error(`${VENV_PYTHON}: ${err.message}`)));
    child.once('close', (code) => {
      if (code !== 0) {
        reject(new Error(`bench/research_eager.py exited with ${code}:\n${stderr.split('\n').slice(-12).join('\n')}`));
        return;
      }
      const lastLine = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(EagerReportSchema.parse(JSON.parse(lastLine)));
      } catch (err) {
        reject(new Error(`bench/research_eager.py printed no valid report (${err instanceof Error ? err.message : String(err)}): ${lastLine.slice(0, 300)}`));
      }
    });
  });
}

export async function runResearch(ctx: BenchContext, pipeline: PipelineData | undefined, memory: MemoryData | undefined): Promise<BenchResult> {
  const { options, bundle, imageFiles } = ctx;
  const name = 'research';
  const checkpoint = CHECKPOINT_FILES.map((f) => join(bundle.dir, f)).find((p) => existsSync(p));
  if (!checkpoint) {
    return unavailable(name, 'daemon vs PyTorch eager FP32', `needs the PyTorch checkpoint the bundle was exported from as ${join(bundle.dir, CHECKPOINT_FILES[0])} (the toolchain's model file: {config, reconstruction}); this bundle has none`);
  }
  if (!existsSync(VENV_PYTHON)) {
    return unavailable(name, 'daemon vs PyTorch eager FP32', `needs the toolchain's Python environment (${VENV_PYTHON}); \`npm test\` or \`moead-edge train\` creates it`);
  }
  const eager = await runEager([
    '--checkpoint', checkpoint,
    '--manifest', join(bundle.dir, 'manifest.json'),
    '--threads', String(options.threads),
    '--seconds', String(options.seconds),
    ...imageFiles,
  ]);
  const rows: Row[] = [];
  if (pipeline) {
    const ratio = pipeline.pipelineFps / eager.fps;
    rows.push({
      bench: name,
      figure: `throughput: daemon pipeline vs PyTorch eager FP32 (${options.threads} threads)`,
      value: `${pipeline.pipelineFps.toFixed(1)} fps`,
      baseline: `eager ${eager.fps.toFixed(2)} fps`,
      ratio: formatRatio(ratio),
    });
  }
  if (memory) {
    rows.push({
      bench: name,
      figure: 'peak RSS: daemon vs PyTorch eager',
      value: `${memory.peakRssMb.toFixed(0)} MiB`,
      baseline: `eager ${eager.peak_rss_mb.toFixed(0)} MiB`,
      ratio: formatRatio(memory.peakRssMb / eager.peak_rss_mb),
    });
  }
  return {
    name,
    rows,
    notes: [
      `Eager side: ${CHECKPOINT_FILES.find((f) => checkpoint.endsWith(f))} in PyTorch ${eager.torch} (Python ${eager.python}), torch threads ${eager.threads}, PIL decode + resize + normalize, model forward under no_grad, the toolchain's post-processing; ${eager.frames} frames in ${eager.seconds.toFixed(0)} s (median ${eager.median_ms.toFixed(1)} ms/frame). It does not publish anything; the daemon's figure includes MQTT.`,
      'Daemon side: throughput from the pipeline benchmark, peak RSS (VmHWM) of `moead-edge run` from the memory benchmark; eager peak RSS is the Python process\'s ru_maxrss. Throughput ratio: higher is better for the daemon; RSS ratio: lower is better.',
    ],
    data: {
      checkpoint,
      eager: { fps: round(eager.fps, 3), medianMs: round(eager.median_ms), peakRssMb: round(eager.peak_rss_mb, 1), torch: eager.torch, threads: eager.threads },
      ...(pipeline ? { throughputRatio: round(pipeline.pipelineFps / eager.fps, 2) } : {}),
      ...(memory ? { rssRatio: round(memory.peakRssMb / eager.peak_rss_mb, 3) } : {}),
    },
  };
}
