/**
 * InferenceBackend `native`: the bundle's ONNX model as a TensorRT engine (native/tensorrt),
 * built once per model, TensorRT version, GPU and precision and then loaded from the cache.
 * It refuses to load, with the reason, where the addon has no TensorRT or no GPU answers; the
 * daemon then falls back to the onnxruntime backend.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sha256File } from '../bundle/load.js';
import type { BackendCapabilities, BackendOptions, InferenceBackend, InferenceResult, LoadedBundle } from '../inference/backend.js';
import { loadNative, type NativeAddon, type NativeEngine } from './binding.js';

export interface NativeBackendOptions {
  /** Largest batch the engine is built for (its optimization profile runs 1..maxBatch). */
  maxBatch?: number;
  /** DLA core for boards that have one (Xavier, Orin AGX/NX); -1 or absent: GPU only. */
  dlaCore?: number;
  /** Progress lines of a long engine build. */
  onProgress?: (message: string) => void;
  /** The addon to use (tests); defaults to loadNative(). */
  addon?: NativeAddon;
}

/**
 * Engine runs handed to the addon at once: one running and one waiting on the engine's lock, so
 * the next starts the moment the first ends. Each call holds a libuv pool thread (4 by default)
 * until it returns, and decoding, file I/O and post-processing need that pool too: each camera
 * keeps inference.framesAhead frames queued behind the one running, so without this bound one
 * camera would hold three pool threads and two cameras all four.
 */
export const ENGINE_CALLS_IN_FLIGHT = 2;

export class NativeBackendUnavailable extends Error {
  override readonly name = 'NativeBackendUnavailable';
}

/** Default engine cache folder when the board profile names none. */
export function defaultEngineCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'moead-edge', 'engines');
}

export class NativeBackend implements InferenceBackend {
  readonly name = 'native' as const;
  readonly #options: NativeBackendOptions;
  #engine: NativeEngine | undefined;
  #caps: BackendCapabilities | undefined;
  #inputSize = 0;
  #outputSize = 0;
  #callsInFlight = 0;
  /** Runs waiting for a free call, in arrival order. */
  #waiting: Array<() => void> = [];

  constructor(options: NativeBackendOptions = {}) {
    this.#options = options;
  }

  async load(bundle: LoadedBundle, options: BackendOptions): Promise<void> {
    if (this.#engine) throw new Error('NativeBackend.load called twice; create a new backend per model');
    const addon = this.#options.addon ?? loadNative();
    const caps = addon.capabilities();
    if (!caps.includes('tensorrt') || !addon.createEngine) {
      throw new NativeBackendUnavailable(
        `the native backend needs TensorRT, but this addon's capabilities are [${caps.join(', ')}] ` +
          `(built with cuda: ${addon.build.cuda}, tensorrt: ${addon.build.tensorrt}; a GPU must also be present). ` +
          'Use the onnxruntime backend, or rebuild the addon where the CUDA toolkit and TensorRT SDK are installed.',
      );
    }
    const { manifest } = bundle;
    // fp32 runs the unquantized export where the bundle has one; int8 and fp16 build from the
    // Q/DQ model (fp16 lets the layers between Q/DQ pairs run in half precision).
    const fp32 = options.precision === 'fp32' && manifest.fp32_model ? join(bundle.dir, manifest.fp32_model.file) : undefined;
    const onnxPath = fp32 ?? bundle.modelPath;
    const maxBatch = this.#options.maxBatch ?? 4;
    const engine = await addon.createEngine(
      {
        onnxPath,
        // Hashed here rather than taken from the manifest, since it keys the engine cache.
        sha256: await sha256File(onnxPath),
        precision: options.precision,
        cacheDir: options.cacheDir ?? defaultEngineCacheDir(),
        maxBatch,
        dlaCore: this.#options.dlaCore ?? -1,
        inputName: manifest.input.name,
        outputName: manifest.output.name,
      },
      this.#options.onProgress,
    );
    const info = engine.info();
    const [, c, h, w] = info.inputShape;
    const [, oh, ow] = info.outputShape;
    if (c !== 3 || h !== manifest.input.height || w !== manifest.input.width) {
      engine.dispose();
      throw new Error(`${onnxPath}: input is ${info.inputShape.join('x')}, the manifest says batch x 3 x ${manifest.input.height} x ${manifest.input.width}`);
    }
    if (oh !== manifest.output.height || ow !== manifest.output.width) {
      engine.dispose();
      throw new Error(`${onnxPath}: output is ${info.outputShape.join('x')}, the manifest says 1 x ${manifest.output.height} x ${manifest.output.width}`);
    }
    this.#engine = engine;
    this.#inputSize = 3 * h * w;
    this.#outputSize = oh * ow;
    this.#caps = {
      backend: 'native',
      providers: ['tensorrt'],
      maxBatch,
      versions: { tensorrt: info.tensorrt, computeCapability: info.computeCapability, precision: options.precision },
    };
  }

  async run(input: Float32Array, batch: number): Promise<InferenceResult> {
    const engine = this.#engine;
    if (!engine || !this.#caps) throw new Error('NativeBackend.run before load');
    if (!Number.isInteger(batch) || batch < 1 || batch > this.#caps.maxBatch) {
      throw new RangeError(`batch must be 1..${this.#caps.maxBatch}, got ${batch}`);
    }
    if (input.length !== batch * this.#inputSize) {
      throw new RangeError(`input holds ${input.length} values, a batch of ${batch} needs ${batch * this.#inputSize}`);
    }
    const started = performance.now();
    await this.#acquireCall();
    let result: { output: Float32Array; runMs: number };
    try {
      result = await engine.run(input, batch);
    } finally {
      this.#releaseCall();
    }
    const { output, runMs } = result;
    if (output.length !== batch * this.#outputSize) throw new Error(`engine returned ${output.length} values, expected ${batch * this.#outputSize}`);
    return { maps: output, batch, timings: { runMs, totalMs: performance.now() - started } };
  }

  async #acquireCall(): Promise<void> {
    if (this.#callsInFlight < ENGINE_CALLS_IN_FLIGHT) {
      this.#callsInFlight += 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Hands the call to the oldest waiting run, or frees it. */
  #releaseCall(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#callsInFlight -= 1;
  }

  capabilities(): BackendCapabilities {
    if (!this.#caps) throw new Error('NativeBackend.capabilities before load');
    return this.#caps;
  }

  async dispose(): Promise<void> {
    this.#engine?.dispose();
    this.#engine = undefined;
  }
}
