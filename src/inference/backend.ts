/**
 * The inference-backend contract. onnxruntime-node (`onnxruntime`) and the native
 * TensorRT/CPU addon (`native`) both implement it; the daemon never knows which it has.
 */
import type { Manifest } from '../bundle/manifest.js';

export type BackendName = 'onnxruntime' | 'native';
export type ExecutionProvider = 'cpu' | 'cuda' | 'tensorrt';

export interface BackendOptions {
  /** Providers to try, in order of preference; `cpu` is always the last resort. */
  providers: ExecutionProvider[];
  /** Intra-op threads for CPU execution (0 = library default). */
  threads: number;
  /** Whether idle intra-op threads spin for work (default false: src/inference/onnxruntime-options.ts). */
  spinning?: boolean;
  /** Precision the board asks for on GPU providers; CPU runs the bundle as shipped. */
  precision: 'int8' | 'fp16' | 'fp32';
  /** Folder for TensorRT engine and timing caches. */
  cacheDir?: string;
}

/** A bundle folder whose manifest has been parsed and whose model file was checked. */
export interface LoadedBundle {
  dir: string;
  manifest: Manifest;
  /** Absolute path of the model file the manifest names. */
  modelPath: string;
}

export interface BackendCapabilities {
  backend: BackendName;
  /** Providers actually in use after load, in the order the session uses them. */
  providers: ExecutionProvider[];
  /** Largest batch one `run` accepts. */
  maxBatch: number;
  /** Library versions, e.g. { onnxruntime: '1.30.0' } or { tensorrt: '10.3.0' }. */
  versions: Record<string, string>;
}

export interface InferenceResult {
  /** Low-resolution anomaly maps, batch × output.height × output.width, row-major. */
  maps: Float32Array;
  batch: number;
  /**
   * The input array, free for the caller to write its next batch into. A backend that moved
   * the input off-thread (detaching the caller's array) hands it back here; one that only
   * read it leaves this out, and the caller's own array is free again.
   */
  input?: Float32Array;
  /** Time spent in the session's run call, and in total including the hop off-thread. */
  timings: { runMs: number; totalMs: number };
}

export interface InferenceBackend {
  readonly name: BackendName;
  /** Opens a session on the bundle's model; call once before `run`. */
  load(bundle: LoadedBundle, options: BackendOptions): Promise<void>;
  /**
   * Runs `batch` preprocessed images (batch × 3 × H × W float32, NCHW as the manifest's
   * input spec says). Never blocks the event loop.
   */
  run(input: Float32Array, batch: number): Promise<InferenceResult>;
  capabilities(): BackendCapabilities;
  /**
   * Linux TIDs of the threads that run inference, when the backend owns dedicated ones
   * (the daemon runs every other thread at a lower priority). Undefined when unknown, or when
   * inference shares threads with other work, as on libuv's pool.
   */
  inferenceThreadIds?(): readonly number[] | undefined;
  /**
   * Why the backend can run nothing any more (its inference thread died), else undefined.
   * Every later `run` fails at once; only opening the model again recovers. Undefined after
   * `dispose` (a closed backend is not a broken one).
   */
  failure?(): string | undefined;
  dispose(): Promise<void>;
}
