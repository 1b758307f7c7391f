/**
 * Native CPU pre/post-processing against the daemon's JavaScript path (sharp + src/preprocess,
 * src/postprocess) on the same frames, as a speed ratio measured in one run. With a CUDA build
 * of the addon on a GPU (MOEAD_NATIVE_PATH), the CUDA kernels get their own rows.
 *
 * Frames: each bench image is made into a 1280×720 rgb24 camera frame once (sharp, outside the
 * timing), so both sides start from the raw pixels a camera delivers and shrink them to the
 * model input. Maps: one seeded low-resolution map of the model's output size.
 */
import { extname } from 'node:path';
import sharp from 'sharp';
import type { InputSpec, PostprocessSpec } from '../src/bundle/manifest.js';
import type { InferenceBackend } from '../src/inference/backend.js';
import { OnnxruntimeBackend } from '../src/inference/onnxruntime-backend.js';
import { NativeBackend } from '../src/native/native-backend.js';
import type { Frame } from '../src/capture/frame.js';
import { loadNative, nativeOps, normalizeSpecOf, postprocessPlanOf, probeNative, type NativeOps } from '../src/native/binding.js';
import { nativePreprocessor } from '../src/native/preprocessor.js';
import { frameFromFile } from '../src/inference/index.js';
import { postprocessMap, renderSnapshot, type FloatMap } from '../src/postprocess/index.js';
import { nativePostprocessor } from '../src/native/postprocessor.js';
import { preprocessFrame } from '../src/preprocess/index.js';
import type { BenchContext } from './context.js';
import { unavailable, type BenchResult, type Row } from './report.js';
import { formatRatio, median, round, timeLoop } from './stats.js';

const CAMERA = { width: 1280, height: 720 };

type CameraFrame = Frame & { format: 'rgb24' };

async function cameraFrames(files: readonly string[]): Promise<CameraFrame[]> {
  return Promise.all(
    files.map(async (file, index) => {
      const data = await sharp(file).removeAlpha().resize(CAMERA.width, CAMERA.height, { fit: 'fill' }).raw().toBuffer();
      return { camera: 'bench', index, capturedAt: Date.now(), capturedMono: 0, format: 'rgb24' as const, ...CAMERA, data, origin: file };
    }),
  );
}

/** "PNG", or the extensions present ("PNG, JPEG"), for the row's name. */
function describeImages(files: readonly string[]): string {
  const kinds = new Set(files.slice(0, 8).map((f) => (extname(f).slice(1) || 'no extension').toUpperCase().replace('JPG', 'JPEG')));
  return [...kinds].sort().join(', ');
}

function seededMap(width: number, height: number): Float32Array {
  let s = 12345;
  return Float32Array.from({ length: width * height }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s / 0x7fffffff) * 2;
  });
}

/** Largest |a - b| over two tensors, to say how far the two paths' outputs are apart. */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return worst;
}

interface Pair {
  jsMs: number;
  nativeMs: number;
  /** Process CPU time (all threads) per call: steadier than wall time on a shared machine. */
  jsCpuMs: number;
  nativeCpuMs: number;
}

async function timed(fn: () => Promise<unknown>, seconds: number): Promise<{ ms: number; cpuMs: number }> {
  const loop = { warmup: 3, minIterations: 10, minMs: (seconds * 1000) / 4 };
  const before = process.cpuUsage();
  const samples = await timeLoop(fn, loop);
  const cpu = process.cpuUsage(before);
  return { ms: median(samples), cpuMs: (cpu.user + cpu.system) / 1000 / (samples.length + loop.warmup) };
}

async function timePair(js: () => Promise<unknown>, native: () => Promise<unknown>, seconds: number): Promise<Pair> {
  const a = await timed(js, seconds);
  const b = await timed(native, seconds);
  return { jsMs: a.ms, nativeMs: b.ms, jsCpuMs: a.cpuMs, nativeCpuMs: b.cpuMs };
}

/** A wall-time and a CPU-time row for one native-vs-JS pair. */
function pairRows(figure: string, device: string, p: Pair): Row[] {
  return [
    { bench: 'native', figure: `${figure} (${device})`, value: `${round(p.nativeMs, 3)} ms`, baseline: `JS ${round(p.jsMs, 3)} ms`, ratio: formatRatio(p.jsMs / p.nativeMs) },
    { bench: 'native', figure: `${figure} (${device}), CPU time`, value: `${round(p.nativeCpuMs, 3)} ms`, baseline: `JS ${round(p.jsCpuMs, 3)} ms`, ratio: formatRatio(p.jsCpuMs / p.nativeCpuMs) },
  ];
}

/**
 * The daemon's whole preprocessing of the bench images as they sit on disk (encoded files):
 * sharp + TypeScript against the native preprocessor (PNGs decoded without sharp).
 */
async function encodedPair(ctx: BenchContext, input: InputSpec): Promise<Pair | undefined> {
  const { preprocessor } = nativePreprocessor();
  if (!preprocessor) return undefined;
  const files = await Promise.all(ctx.imageFiles.slice(0, 8).map((file) => frameFromFile(file)));
  let next = 0;
  const file = (): Frame => files[next++ % files.length]!;
  return timePair(() => preprocessFrame(file(), input), () => preprocessor(file(), input), ctx.options.seconds);
}

/**
 * An event snapshot (JPEG of the frame with the heatmap over it) of the bench images with a
 * map of the post-processing's size: sharp draws the overlay on one side, the native kernel on
 * the other (src/postprocess/snapshot.ts); decode and JPEG are sharp's on both.
 */
async function snapshotPair(ctx: BenchContext, map: FloatMap): Promise<Pair | undefined> {
  const { overlay } = nativePostprocessor();
  if (!overlay) return undefined;
  const files = await Promise.all(ctx.imageFiles.slice(0, 8).map((file) => frameFromFile(file)));
  const threshold = ctx.bundle.manifest.threshold;
  let next = 0;
  const file = (): Frame => files[next++ % files.length]!;
  return timePair(() => renderSnapshot(file(), map, threshold), () => renderSnapshot(file(), map, threshold, {}, overlay), ctx.options.seconds);
}

/** TensorRT INT8 and FP16 engines against onnxruntime (CPU) on the bench tensors, batch 1. */
async function engineRows(ctx: BenchContext, data: Record<string, unknown>): Promise<Row[]> {
  const loop = { warmup: 5, minIterations: 20, minMs: (ctx.options.seconds * 1000) / 4 };
  let next = 0;
  const time = async (backend: InferenceBackend): Promise<number> =>
    median(await timeLoop(() => backend.run(ctx.tensors[next++ % ctx.tensors.length]!, 1), loop));
  const ort = new OnnxruntimeBackend();
  await ort.load(ctx.bundle, { providers: ['cpu'], threads: ctx.options.threads, precision: 'int8' });
  const ortMs = await time(ort);
  await ort.dispose();
  const rows: Row[] = [];
  const engines: Record<string, number | string> = { onnxruntimeCpuMs: ortMs };
  for (const precision of ['int8', 'fp16'] as const) {
    const trt = new NativeBackend();
    try {
      await trt.load(ctx.bundle, { providers: ['tensorrt'], threads: 0, precision });
      const ms = await time(trt);
      engines[precision] = ms;
      rows.push({ bench: 'native', figure: `TensorRT ${precision} run, batch 1`, value: `${round(ms, 3)} ms`, baseline: `onnxruntime CPU ${round(ortMs, 3)} ms`, ratio: formatRatio(ortMs / ms) });
    } catch (err) {
      engines[precision] = err instanceof Error ? err.message : String(err);
      rows.push({ bench: 'native', figure: `TensorRT ${precision} run, batch 1`, value: 'not measured' });
    } finally {
      await trt.dispose();
    }
  }
  data.engines = engines;
  return rows;
}

export async function benchNative(ctx: BenchContext): Promise<BenchResult> {
  const probe = probeNative();
  if (!probe.available) return unavailable('native', 'native vs JS pre/post-processing', probe.reason);
  const { manifest } = ctx.bundle;
  const input = manifest.input;
  const post: PostprocessSpec = manifest.postprocess;
  const frames = await cameraFrames(ctx.imageFiles.slice(0, 8));
  const lowRes = seededMap(manifest.output.width, manifest.output.height);
  const normalize = normalizeSpecOf(input);
  const plan = postprocessPlanOf(post);
  let next = 0;
  const frame = (): CameraFrame => frames[next++ % frames.length]!;

  const devices: NativeOps[] = [nativeOps('cpu')];
  if (probe.capabilities.includes('cuda')) devices.push(nativeOps('cuda'));
  const rows: Row[] = [];
  const data: Record<string, unknown> = { camera: CAMERA, frames: frames.length, build: loadNative().build };
  for (const ops of devices) {
    const out = new Float32Array(3 * input.width * input.height);
    const pre = await timePair(
      () => preprocessFrame(frame(), input),
      () => ops.preprocess(frame(), normalize, out),
      ctx.options.seconds,
    );
    const postPair = await timePair(
      async () => postprocessMap({ data: lowRes, width: manifest.output.width, height: manifest.output.height }, post),
      () => ops.postprocess(lowRes, manifest.output.width, manifest.output.height, plan),
      ctx.options.seconds,
    );
    rows.push(...pairRows(`preprocess ${CAMERA.width}x${CAMERA.height} rgb24`, ops.device, pre), ...pairRows('postprocess map', ops.device, postPair));
    // How far apart the two paths' outputs are on the first frame (sharp's shrink vs the addon's).
    const f0 = frames[0]!;
    const jsTensor = await preprocessFrame(f0, input);
    const nativeTensor = await ops.preprocess(f0, normalize);
    const jsMap = postprocessMap({ data: lowRes, width: manifest.output.width, height: manifest.output.height }, post);
    const nativeMap = await ops.postprocess(lowRes, manifest.output.width, manifest.output.height, plan);
    data[ops.device] = {
      preprocess: { ...pre, speedup: pre.jsMs / pre.nativeMs, cpuRatio: pre.jsCpuMs / pre.nativeCpuMs, maxAbsDiff: maxAbsDiff(jsTensor, nativeTensor) },
      postprocess: {
        ...postPair,
        speedup: postPair.jsMs / postPair.nativeMs,
        cpuRatio: postPair.jsCpuMs / postPair.nativeCpuMs,
        maxAbsDiff: maxAbsDiff(jsMap.map.data, nativeMap.map),
        scoreDiff: Math.abs(jsMap.score - nativeMap.score),
      },
    };
  }
  const encoded = await encodedPair(ctx, input);
  if (encoded) {
    rows.push(...pairRows(`decode + preprocess of the bench images (${describeImages(ctx.imageFiles)})`, 'cpu', encoded));
    data.encoded = { ...encoded, speedup: encoded.jsMs / encoded.nativeMs, cpuRatio: encoded.jsCpuMs / encoded.nativeCpuMs };
  }
  const fullMap = postprocessMap({ data: lowRes, width: manifest.output.width, height: manifest.output.height }, post).map;
  const snapshot = await snapshotPair(ctx, fullMap);
  if (snapshot) {
    rows.push(...pairRows(`event snapshot of the bench images, ${fullMap.width}x${fullMap.height} map`, 'cpu', snapshot));
    data.snapshot = { ...snapshot, speedup: snapshot.jsMs / snapshot.nativeMs, cpuRatio: snapshot.jsCpuMs / snapshot.nativeCpuMs };
  }
  if (probe.capabilities.includes('tensorrt')) rows.push(...(await engineRows(ctx, data)));
  return {
    name: 'native',
    rows,
    notes: [
      `Ratio = JS time / native time, medians of timed loops, on ${frames.length} ${CAMERA.width}x${CAMERA.height} rgb24 frames made from the bench images.`,
      'JS preprocess shrinks in sharp (libvips) and normalizes in JS; the addon does both in one pass with torch-style antialiased bilinear, so the tensors differ by up to maxAbsDiff (in --json).',
      'Native calls run on the libuv pool (4 threads by default); one call at a time is timed. sharp also spreads one resize over several threads, so wall time favours it where cores are free; the CPU-time rows count every thread.',
      'Decode + preprocess: the bench images as files, through the daemon\'s two preprocessors (src/preprocess with sharp; src/native/preprocessor.ts, which decodes 8-bit PNGs itself and hands other formats to sharp).',
      'Event snapshot: decode, heatmap overlay and JPEG of each bench image; the overlay drawn by sharp (colour in JS, resize, composite) or by the addon in one pass (src/native/postprocessor.ts).',
    ],
    data,
  };
}
