/**
 * What the daemon and the CLI use: a bundle opened on a backend, turning frames into an
 * image score and a full-resolution anomaly map, with the manifest's pre- and
 * post-processing around the backend.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BundleError, MANIFEST_FILE, loadBundle } from '../bundle/load.js';
import type { InputSpec, Manifest, PostprocessSpec } from '../bundle/manifest.js';
import type { Frame } from '../capture/frame.js';
import { checkPostprocessSpec, postprocessMap, renderSnapshot, type FloatMap, type SnapshotOptions, type SnapshotOverlay } from '../postprocess/index.js';
import { preprocessFrame } from '../preprocess/index.js';
import type { BackendCapabilities, BackendOptions, InferenceBackend, LoadedBundle } from './backend.js';
import { OnnxruntimeBackend } from './onnxruntime-backend.js';

export interface DetectionTimings {
  preprocessMs: number;
  /** The session's own run time (inside the worker or addon). */
  runMs: number;
  /** Run including the hop to the inference thread and back. */
  inferenceMs: number;
  postprocessMs: number;
}

export interface Detection {
  /** The bundle whose model scored this frame (the one in force may have changed since: OTA). */
  manifest: Manifest;
  /** Image score, in the model's raw units (compare with the manifest's threshold). */
  score: number;
  /**
   * The model's own low-resolution map (output.width × output.height). The full-size map is
   * drawn from it on demand (`Detector.fullMap`): only snapshots and exports look at it.
   */
  lowRes: FloatMap;
  /** Preprocess + inference + postprocess of this frame. */
  latencyMs: number;
  timings: DetectionTimings;
}

/** A frame turned into the model's input tensor, waiting for `infer`. */
export interface PreparedFrame {
  tensor: Float32Array;
  startedMono: number;
  preprocessMs: number;
}

/**
 * A frame → the model's input tensor, as the manifest's `input` says; throws PreprocessError
 * for a bad frame. `out`, when given, is a spare tensor of the right size to write into (a
 * preprocessor may still return a new one).
 */
export type Preprocessor = (frame: Frame, input: InputSpec, out?: Float32Array) => Promise<Float32Array>;

/** Low-resolution model map → image score, and full-size map, as the manifest's `postprocess` says. */
export interface Postprocessor {
  /** The image score: what every frame needs. */
  score(lowRes: FloatMap, spec: PostprocessSpec): Promise<number>;
  /** The upsampled, smoothed map with its score: for snapshots and exports. */
  map(lowRes: FloatMap, spec: PostprocessSpec): Promise<{ map: FloatMap; score: number }>;
}

/** The TypeScript post-processing (src/postprocess), on the calling thread. */
const jsPostprocessor: Postprocessor = {
  score: async (lowRes, spec) => postprocessMap(lowRes, spec).score,
  map: async (lowRes, spec) => postprocessMap(lowRes, spec),
};

export interface DetectorOptions {
  bundleDir: string;
  backend?: Partial<BackendOptions>;
  /** Backend to load the bundle on; defaults to onnxruntime-node. The native addon plugs in here. */
  createBackend?: () => InferenceBackend;
  /** Frame → input tensor; defaults to sharp and TypeScript. The native kernels plug in here. */
  preprocessor?: Preprocessor;
  /** Post-processing of each map; defaults to the TypeScript one. The native kernels plug in here. */
  postprocessor?: Postprocessor;
  /** Draws event snapshots' overlays; without it sharp does. The native kernel plugs in here. */
  overlay?: SnapshotOverlay;
}

export const DEFAULT_BACKEND_OPTIONS: BackendOptions = { providers: ['cpu'], threads: 0, precision: 'int8' };

/**
 * Input tensors kept for reuse: enough for the frames a camera keeps queued ahead plus the one
 * running, for a few cameras. Beyond it a returned tensor is left to the garbage collector.
 */
const SPARE_INPUTS = 8;

export class Detector {
  /**
   * Input tensors back from the backend, written over by the next frames. Without them every
   * frame allocated a 0.6 MB tensor (224²), and that churn through the C library's malloc
   * arenas let the daemon's resident size creep (docs/bench.md, memory).
   */
  readonly #spareInputs: Float32Array[] = [];

  private constructor(
    readonly bundle: LoadedBundle,
    private readonly backend: InferenceBackend,
    private readonly preprocessor: Preprocessor,
    private readonly postprocessor: Postprocessor,
    private readonly overlay: SnapshotOverlay | undefined,
  ) {}

  get manifest(): Manifest {
    return this.bundle.manifest;
  }

  /** Loads and checks the bundle, then opens it on the backend. */
  static async open(options: DetectorOptions): Promise<Detector> {
    const bundle = await loadBundle(options.bundleDir);
    try {
      checkPostprocessSpec(bundle.manifest.postprocess);
    } catch (err) {
      throw new BundleError(join(bundle.dir, MANIFEST_FILE), err instanceof Error ? err.message : String(err));
    }
    const backend = options.createBackend?.() ?? new OnnxruntimeBackend();
    await backend.load(bundle, { ...DEFAULT_BACKEND_OPTIONS, ...options.backend });
    return new Detector(bundle, backend, options.preprocessor ?? preprocessFrame, options.postprocessor ?? jsPostprocessor, options.overlay);
  }

  /** Scores one frame. Throws PreprocessError for frames that cannot be decoded. */
  async detect(frame: Frame): Promise<Detection> {
    return this.infer(await this.prepare(frame));
  }

  /**
   * The first half of `detect`: decode, resize and normalize. Split out so a caller can
   * prepare the next frame while the inference thread runs this one.
   */
  async prepare(frame: Frame): Promise<PreparedFrame> {
    const startedMono = performance.now();
    const spare = this.#spareInputs.pop();
    let tensor: Float32Array;
    try {
      tensor = await this.preprocessor(frame, this.manifest.input, spare);
    } catch (err) {
      if (spare) this.#keepSpare(spare);
      throw err;
    }
    if (spare && tensor !== spare) this.#keepSpare(spare);
    return { tensor, startedMono, preprocessMs: performance.now() - startedMono };
  }

  /** The second half of `detect`: the backend run and the score from its map. */
  async infer(prepared: PreparedFrame): Promise<Detection> {
    const { output, postprocess } = this.manifest;
    const t1 = performance.now();
    const result = await this.backend.run(prepared.tensor, 1);
    // A backend that moved the tensor away hands one back; otherwise the frame's own is free.
    this.#keepSpare(result.input ?? prepared.tensor);
    const t2 = performance.now();
    const lowRes = { data: result.maps, width: output.width, height: output.height };
    const score = await this.postprocessor.score(lowRes, postprocess);
    // A NaN or infinite map value has no meaning as a score; published it would read as
    // "not anomalous". The frame fails instead, counted as an inference error.
    if (!Number.isFinite(score)) throw new Error(`the model's anomaly map holds non-finite values (score ${score}); the frame is not scored`);
    const t3 = performance.now();
    return {
      manifest: this.manifest,
      score,
      lowRes,
      latencyMs: prepared.preprocessMs + (t3 - t1),
      timings: { preprocessMs: prepared.preprocessMs, runMs: result.timings.runMs, inferenceMs: t2 - t1, postprocessMs: t3 - t2 },
    };
  }

  /**
   * JPEG of the frame with the detection's map blended over it. Colours use the manifest's
   * threshold unless the caller passes the one in force (a config or remote override).
   */
  async snapshot(frame: Frame, detection: Detection, options: SnapshotOptions & { threshold?: { value: number; good_median: number } } = {}): Promise<Buffer> {
    return renderSnapshot(frame, await this.fullMap(detection), options.threshold ?? this.manifest.threshold, options, this.overlay);
  }

  /** The detection's map upsampled and smoothed as its own bundle's manifest says (the input size). */
  async fullMap(detection: Detection): Promise<FloatMap> {
    return (await this.postprocessor.map(detection.lowRes, detection.manifest.postprocess)).map;
  }

  #keepSpare(tensor: Float32Array): void {
    const { width, height } = this.manifest.input;
    // Detached (moved to another thread) or another size: not reusable here.
    if (tensor.length !== 3 * width * height || this.#spareInputs.length >= SPARE_INPUTS) return;
    if (!this.#spareInputs.includes(tensor)) this.#spareInputs.push(tensor);
  }

  capabilities(): BackendCapabilities {
    return this.backend.capabilities();
  }

  /** Linux TIDs of the threads running the model, when the backend has dedicated ones. */
  inferenceThreadIds(): readonly number[] | undefined {
    return this.backend.inferenceThreadIds?.();
  }

  /** Why this model can run no frame any more (its inference worker died), else undefined. */
  failure(): string | undefined {
    return this.backend.failure?.();
  }

  /** What the backend could not do as asked (GPU providers dropped, subnormals not flushed), for the daemon's log. */
  providerNotes(): readonly string[] {
    return this.backend instanceof OnnxruntimeBackend ? this.backend.providerNotes() : [];
  }

  close(): Promise<void> {
    return this.backend.dispose();
  }
}

export function openDetector(options: DetectorOptions): Promise<Detector> {
  return Detector.open(options);
}
