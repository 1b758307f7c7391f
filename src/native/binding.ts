/**
 * The one loader of the native addon (native/, built by scripts/build-native.mjs) and its
 * typed wrappers. Nothing else in the daemon requires the .node file.
 *
 * Every kernel call validates its arguments in C++ (a wrong size or format is a thrown
 * TypeError or RangeError naming the argument), runs on the libuv thread pool, and reads and
 * writes the caller's Buffers and typed arrays in place: do not modify them until the
 * promise settles. `sdNotify` (src/util/sd-notify.ts) and `flushDenormals` are the synchronous calls.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { InputSpec, PostprocessSpec } from '../bundle/manifest.js';
import type { PixelFormat } from '../capture/frame.js';
import { normalizedRange } from '../postprocess/normalize.js';

/** Raw formats the kernels read (the capture contract's names, `encoded` excluded). */
export type RawPixelFormat = Exclude<PixelFormat, 'encoded'>;
export const RAW_PIXEL_FORMATS: readonly RawPixelFormat[] = ['rgb24', 'bgr24', 'rgba', 'gray', 'yuyv', 'nv12'];

export type NativeCapability = 'cpu' | 'cuda' | 'tensorrt';

/** The manifest's input section as the kernels take it. */
export interface NormalizeSpec {
  width: number;
  height: number;
  color: 'RGB' | 'BGR';
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** The manifest's postprocess section, flattened: kernel 0 means a plain max. */
export interface PostprocessPlan {
  width: number;
  height: number;
  alignCorners: boolean;
  sigma: number;
  kernel: number;
}

/**
 * Colour scale of a heatmap. low = threshold.good_median and high = 2 * threshold.value -
 * good_median colour each pixel by the same normalized score the daemon publishes.
 */
export interface HeatmapSpec {
  /** Map value drawn as the coolest colour; so are NaN and -Infinity. */
  low: number;
  /** Map value drawn as the hottest colour; so is +Infinity. */
  high: number;
  /** Weight of the colour over the frame, 0..1. */
  alpha: number;
}

export interface PostprocessResult {
  /** The upsampled, blurred map (plan.height × plan.width). */
  map: Float32Array;
  score: number;
}

type PreprocessFn = (
  frame: Uint8Array, format: RawPixelFormat, width: number, height: number, spec: NormalizeSpec, out?: Float32Array,
) => Promise<Float32Array>;
type PreprocessPngFn = (
  scanlines: Uint8Array, channels: 1 | 3 | 4, width: number, height: number, spec: NormalizeSpec, out?: Float32Array,
) => Promise<Float32Array>;
/** withMap false: the score alone, and `map` is null (the full-size map is never handed over). */
type PostprocessFn = (map: Float32Array, width: number, height: number, plan: PostprocessPlan, withMap?: boolean) => Promise<{ map: Float32Array | null; score: number }>;
type HeatmapFn = (rgb: Uint8Array, map: Float32Array, width: number, height: number, spec: HeatmapSpec) => Promise<Buffer>;
type OverlayFn = (
  rgb: Uint8Array, width: number, height: number, map: Float32Array, mapWidth: number, mapHeight: number, spec: { low: number; high: number },
) => Promise<Buffer>;

export interface EngineOptions {
  onnxPath: string;
  /** Hex sha256 of the ONNX file, part of the engine cache key. */
  sha256: string;
  precision: 'int8' | 'fp16' | 'fp32';
  cacheDir: string;
  maxBatch: number;
  /** DLA core to build for, -1 for the GPU alone. */
  dlaCore: number;
  inputName: string;
  outputName: string;
}

/** A TensorRT engine (native/tensorrt), present when the addon was built with TensorRT. */
export interface NativeEngine {
  run(input: Float32Array, batch: number): Promise<{ output: Float32Array; runMs: number }>;
  info(): {
    tensorrt: string;
    computeCapability: string;
    engineFile: string;
    fromCache: boolean;
    /** [maxBatch, C, H, W] */
    inputShape: number[];
    /** One image's output, batch dimension dropped: [1, h, w]. */
    outputShape: number[];
  };
  dispose(): void;
}

/** The addon's exports, as native/src/addon.cc registers them. */
export interface NativeAddon {
  capabilities(): NativeCapability[];
  build: { cuda: boolean; tensorrt: string | false; asan: boolean };
  preprocess: PreprocessFn;
  preprocessPng: PreprocessPngFn;
  postprocess: PostprocessFn;
  heatmap: HeatmapFn;
  /** An event snapshot's overlay composited over the frame (image_ops.h, SnapshotOverlay); map no larger than the frame. */
  overlay: OverlayFn;
  /**
   * One datagram to a service manager's notification socket ("/path" or "@abstract"). A plain
   * function: callers hold it apart from the addon object, as sd-notify's transport.
   */
  sdNotify: (socket: string, message: string) => void;
  /**
   * Subnormal floats as zero on the calling thread from now on (native/src/float_env.cc);
   * false on a CPU without such a mode.
   */
  flushDenormals(): boolean;
  cudaPreprocess?: PreprocessFn;
  cudaPostprocess?: PostprocessFn;
  cudaHeatmap?: HeatmapFn;
  cudaDeviceCount?: () => number;
  createEngine?: (options: EngineOptions, onProgress?: (message: string) => void) => Promise<NativeEngine>;
}

export class NativeLoadError extends Error {
  override readonly name = 'NativeLoadError';
}

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Where the addon is looked for: MOEAD_NATIVE_PATH, else the release build. */
export function nativeAddonPath(): string {
  return process.env.MOEAD_NATIVE_PATH ?? `${repoRoot}build/native/Release/moead_native.node`;
}

let cached: NativeAddon | undefined;

/** Loads the addon once; throws NativeLoadError with what to do when it cannot. */
export function loadNative(path = nativeAddonPath()): NativeAddon {
  if (cached && path === nativeAddonPath()) return cached;
  if (!existsSync(path)) {
    throw new NativeLoadError(
      `native addon not found at ${path}.\n` +
        'Build it with `node scripts/build-native.mjs` (npm ci does this unless MOEAD_SKIP_NATIVE=1); it needs ' +
        'a C++17 compiler and cmake. Or point MOEAD_NATIVE_PATH at a built moead_native.node.',
    );
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const hint = /GLIBCXX|CXXABI/.test(reason)
      ? 'The addon was built against a newer C++ runtime than this system has: rebuild it here.'
      : /libcudart|libnvinfer|libnvonnxparser/.test(reason)
        ? 'A CUDA or TensorRT library it was linked against is missing: add its folder to LD_LIBRARY_PATH, or rebuild with WITH_CUDA=OFF.'
        : /invalid ELF|wrong ELF class/.test(reason)
          ? 'The file was built for another architecture: rebuild it on this machine.'
          : 'Rebuild it with `node scripts/build-native.mjs`.';
    throw new NativeLoadError(`could not load the native addon ${path}: ${reason}\n${hint}`);
  }
  const addon = mod as Partial<NativeAddon>;
  for (const fn of ['capabilities', 'preprocess', 'preprocessPng', 'postprocess', 'heatmap', 'flushDenormals'] as const) {
    if (typeof addon[fn] !== 'function') {
      throw new NativeLoadError(`${path} is not this project's addon (no ${fn} function): rebuild it`);
    }
  }
  const loaded = addon as NativeAddon;
  if (path === nativeAddonPath()) cached = loaded;
  return loaded;
}

/** Whether the addon loads here, and with which capabilities; never throws. */
export function probeNative(): { available: true; capabilities: NativeCapability[] } | { available: false; reason: string } {
  try {
    return { available: true, capabilities: loadNative().capabilities() };
  } catch (err) {
    return { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

export function normalizeSpecOf(input: InputSpec): NormalizeSpec {
  return { width: input.width, height: input.height, color: input.color, scale: input.scale, mean: input.mean, std: input.std };
}

export function postprocessPlanOf(spec: PostprocessSpec): PostprocessPlan {
  return {
    width: spec.upsample.width,
    height: spec.upsample.height,
    alignCorners: spec.upsample.align_corners,
    sigma: spec.blur_sigma,
    kernel: spec.score.method === 'max' ? 0 : spec.score.kernel,
  };
}

/** The pre/post-processing kernels of one device. */
export interface NativeOps {
  readonly device: 'cpu' | 'cuda';
  /** Camera frame → resized, normalized float32 CHW; writes into `out` when given (e.g. one slot of a batch). */
  preprocess(frame: { data: Uint8Array; format: RawPixelFormat; width: number; height: number }, input: NormalizeSpec, out?: Float32Array): Promise<Float32Array>;
  /** Low-resolution model map → upsampled, blurred map and image score. */
  postprocess(map: Float32Array, width: number, height: number, plan: PostprocessPlan): Promise<PostprocessResult>;
  /** The image score alone, without a full-size map for the caller (what every frame needs). */
  score(map: Float32Array, width: number, height: number, plan: PostprocessPlan): Promise<number>;
  /** RGB frame + same-size map → RGB frame with the coloured map blended over it. */
  heatmap(rgb: Uint8Array, map: Float32Array, width: number, height: number, spec: HeatmapSpec): Promise<Buffer>;
}

/**
 * Runs a native call so that its error, thrown synchronously or from the worker thread,
 * carries the caller's stack rather than an empty native one.
 */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  const site = new Error();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && site.stack) err.stack = `${err.name}: ${err.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
    throw err;
  }
}

export function nativeOps(device: 'cpu' | 'cuda' = 'cpu', addon: NativeAddon = loadNative()): NativeOps {
  const pre = device === 'cpu' ? addon.preprocess : addon.cudaPreprocess;
  const post = device === 'cpu' ? addon.postprocess : addon.cudaPostprocess;
  const heat = device === 'cpu' ? addon.heatmap : addon.cudaHeatmap;
  if (!pre || !post || !heat) throw new NativeLoadError('this native addon was built without CUDA (build.cuda is false)');
  if (device === 'cuda' && !addon.capabilities().includes('cuda')) throw new NativeLoadError('no CUDA device is available');
  return {
    device,
    preprocess: (frame, input, out) => call(() => pre(frame.data, frame.format, frame.width, frame.height, input, out)),
    postprocess: (map, width, height, plan) =>
      call(async () => {
        const result = await post(map, width, height, plan, true);
        if (!result.map) throw new Error('the native postprocess returned no map');
        return { map: result.map, score: result.score };
      }),
    score: (map, width, height, plan) => call(async () => (await post(map, width, height, plan, false)).score),
    heatmap: (rgb, map, width, height, spec) => call(() => heat(rgb, map, width, height, spec)),
  };
}

/** An 8-bit, non-interlaced PNG's inflated IDAT: a filter byte per row, then the row's samples. */
export interface PngScanlines {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 gray, 3 RGB, 4 RGBA (alpha dropped, as for rgba frames). */
  channels: 1 | 3 | 4;
}

/**
 * PNG scanlines → unfiltered in place on the libuv pool, then the CPU preprocess of the
 * matching raw format. `scanlines.data` is scratch once the promise settles.
 */
export function nativePngPreprocess(addon: NativeAddon = loadNative()): (scanlines: PngScanlines, input: NormalizeSpec, out?: Float32Array) => Promise<Float32Array> {
  return (png, input, out) => call(() => addon.preprocessPng(png.data, png.channels, png.width, png.height, input, out));
}

/**
 * An event snapshot's overlay on the libuv pool: the map coloured with its per-pixel opacity,
 * enlarged to the frame and composited over `rgb` (width × height × 3). Colours use the
 * published normalization (normalizedRange: the good median at 0, twice the threshold's distance at 1).
 */
export function nativeSnapshotOverlay(addon: NativeAddon = loadNative()): (rgb: Uint8Array, width: number, height: number, map: FloatMapView, threshold: { value: number; good_median: number }) => Promise<Buffer> {
  return (rgb, width, height, map, threshold) => {
    return call(() => addon.overlay(rgb, width, height, map.data, map.width, map.height, normalizedRange(threshold)));
  };
}

/** A float map and its size (the post-processing's FloatMap, without importing it here). */
export interface FloatMapView {
  data: Float32Array;
  width: number;
  height: number;
}
