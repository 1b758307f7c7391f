/**
 * Quantization: the bundle's INT8 model against the FP32 export it was made from
 * (manifest.fp32_model), bare sessions with the same threads on the same tensors, windows
 * alternated; and the accuracy change the toolchain recorded for both in manifest.metrics.
 */
import { join } from 'node:path';
import { verifyBundleFile } from '../src/bundle/load.js';
import { bareFigure, openBareSession } from './bare.js';
import type { BenchContext } from './context.js';
import { unavailable, type BenchResult, type Row } from './report.js';
import { formatRatio, median, round } from './stats.js';

export const SPEEDUP_GOAL = 2;
export const AUROC_DROP_GOAL = 0.01;

export async function runQuantization(ctx: BenchContext): Promise<BenchResult> {
  const { options, bundle, tensors } = ctx;
  const { manifest } = bundle;
  if (!manifest.fp32_model) {
    return unavailable('quantization', 'INT8 vs FP32 speed', `${join(bundle.dir, 'manifest.json')} has no fp32_model; the toolchain keeps the FP32 export in the bundle for this figure`);
  }
  const fp32Path = await verifyBundleFile(bundle.dir, manifest.fp32_model, join(bundle.dir, 'manifest.json'));
  const { input, output } = manifest;
  const open = (path: string) => openBareSession(path, options.threads, input.name, output.name, tensors, input);
  const int8 = await open(bundle.modelPath);
  const fp32 = await open(fp32Path);
  const rounds = options.quick ? 2 : 3;
  const windowMs = Math.max(2000, (options.seconds * 1000) / rounds);
  const perRound: Array<{ int8Fps: number; fp32Fps: number }> = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const warmup = r === 0 ? 10 : 3;
      const time = async (session: typeof int8) => bareFigure(await session.time({ warmup, minIterations: 20, minMs: windowMs })).fps;
      // Order flipped every round (ABBA), as in the pipeline row: this host's speed drifts over
      // seconds, and a fixed order would hand one model the same side of every drift.
      if (r % 2 === 0) {
        const int8Fps = await time(int8);
        perRound.push({ int8Fps, fp32Fps: await time(fp32) });
      } else {
        const fp32Fps = await time(fp32);
        perRound.push({ int8Fps: await time(int8), fp32Fps });
      }
    }
  } finally {
    await int8.release();
    await fp32.release();
  }
  const int8Fps = median(perRound.map((r) => r.int8Fps));
  const fp32Fps = median(perRound.map((r) => r.fp32Fps));
  const speedup = median(perRound.map((r) => r.int8Fps / r.fp32Fps));
  const rows: Row[] = [
    {
      bench: 'quantization',
      figure: `INT8 speed (${manifest.model.precision} ${manifest.model.file}, ${options.threads} threads)`,
      value: `${int8Fps.toFixed(1)} fps (${(1000 / int8Fps).toFixed(2)} ms)`,
      baseline: `FP32 ${fp32Fps.toFixed(1)} fps (${(1000 / fp32Fps).toFixed(2)} ms)`,
      ratio: formatRatio(speedup),
      goal: `≥ ${SPEEDUP_GOAL}×`,
      met: speedup >= SPEEDUP_GOAL,
    },
  ];
  const notes = [`${rounds} rounds of ${(windowMs / 1000).toFixed(0)} s per model, INT8 first in even rounds and FP32 first in odd ones; speed-up = median of per-round ratios.`];
  const { fp32: fp32Metrics, int8: int8Metrics, split, test_images: testImages } = manifest.metrics;
  let accuracy: Record<string, number> | undefined;
  if (fp32Metrics && int8Metrics) {
    accuracy = {
      fp32ImageAuroc: fp32Metrics.image_auroc,
      int8ImageAuroc: int8Metrics.image_auroc,
      imageAurocChange: round(int8Metrics.image_auroc - fp32Metrics.image_auroc, 4),
      fp32PixelAuroc: fp32Metrics.pixel_auroc,
      int8PixelAuroc: int8Metrics.pixel_auroc,
      pixelAurocChange: round(int8Metrics.pixel_auroc - fp32Metrics.pixel_auroc, 4),
    };
    for (const [label, key] of [['image', 'image_auroc'], ['pixel', 'pixel_auroc']] as const) {
      const change = int8Metrics[key] - fp32Metrics[key];
      rows.push({
        bench: 'quantization',
        figure: `${label} AUROC, INT8 (toolchain, ${split}, ${testImages} images)`,
        value: int8Metrics[key].toFixed(4),
        baseline: `FP32 ${fp32Metrics[key].toFixed(4)}`,
        ratio: `${change >= 0 ? '+' : ''}${change.toFixed(4)}`,
        goal: `drop ≤ ${AUROC_DROP_GOAL}`,
        met: -change <= AUROC_DROP_GOAL,
      });
    }
    notes.push('AUROC figures are the toolchain\'s evaluation recorded in manifest.metrics (not re-measured here).');
  } else {
    notes.push(`manifest.metrics lacks ${fp32Metrics ? 'int8' : 'fp32'} metrics: AUROC change not reported.`);
  }
  const cpu = manifest.metrics.cpu_speed;
  if (cpu) notes.push(`The toolchain measured ${cpu.ratio.toFixed(2)}× (${cpu.fp32_ms} → ${cpu.int8_ms} ms, ${cpu.threads} threads) on "${cpu.cpu}" when it built the bundle.`);
  return {
    name: 'quantization',
    rows,
    notes,
    data: {
      threads: options.threads,
      int8Fps: round(int8Fps),
      fp32Fps: round(fp32Fps),
      speedup: round(speedup, 3),
      rounds: perRound.map((r) => ({ int8Fps: round(r.int8Fps), fp32Fps: round(r.fp32Fps) })),
      ...(accuracy ? { accuracy } : {}),
      ...(cpu ? { toolchainCpuSpeed: cpu } : {}),
    },
  };
}
