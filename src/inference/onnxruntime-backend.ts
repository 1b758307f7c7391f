/**
 * InferenceBackend on onnxruntime-node. The session lives in a worker_thread
 * (onnxruntime-worker.ts) because the binding's run() blocks the thread that calls it;
 * tensors cross as transferred ArrayBuffers, not copies.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type {
  BackendCapabilities,
  BackendOptions,
  InferenceBackend,
  InferenceResult,
  LoadedBundle,
} from './backend.js';
import { WorkerReplySchema, type TensorInfo, type WorkerReply, type WorkerRequest } from './onnxruntime-protocol.js';

/** Largest batch accepted when the model's batch dimension is dynamic. */
export const DYNAMIC_BATCH_LIMIT = 16;

interface Pending {
  resolve: (reply: WorkerReply) => void;
  reject: (err: Error) => void;
}

interface Shapes {
  channels: number;
  height: number;
  width: number;
  outHeight: number;
  outWidth: number;
  file: string;
}

/** A fixed dimension of the model must equal what the manifest says; symbolic ones pass. */
function checkDim(model: TensorInfo, axis: number, expected: number, what: string, file: string): void {
  const dim = model.shape[axis];
  if (typeof dim === 'number' && dim !== expected) {
    throw new Error(`${file}: ${what} is ${dim} in the model but ${expected} in the manifest`);
  }
}

/**
 * The model's input and output must be float32 NCHW tensors, as the manifest's contract says
 * (input.dtype, input.layout, a [N, 1, H, W] map): one that is not still loads in onnxruntime,
 * and every frame would then fail in inference instead of the model being refused here.
 */
function checkTensor(model: TensorInfo, what: string, file: string): void {
  if (model.type !== 'float32' || model.shape.length !== 4) {
    throw new Error(`${file}: ${what} "${model.name}" is ${model.type} [${model.shape.join(', ')}], the manifest says float32 NCHW (4 dimensions)`);
  }
}

export class OnnxruntimeBackend implements InferenceBackend {
  readonly name = 'onnxruntime' as const;
  #worker: Worker | undefined;
  #pending = new Map<number, Pending>();
  /** Load and dispose answers carry no id; they use this slot. */
  #control: Pending | undefined;
  #nextId = 0;
  #fatal: Error | undefined;
  #disposed = false;
  #caps: BackendCapabilities | undefined;
  #shapes: Shapes | undefined;
  #notes: string[] = [];
  #threadIds: number[] = [];

  async load(bundle: LoadedBundle, options: BackendOptions): Promise<void> {
    if (this.#worker) throw new Error('OnnxruntimeBackend.load called twice; create a new backend per model');
    const { manifest, modelPath } = bundle;
    const worker = new Worker(new URL('./onnxruntime-worker.js', import.meta.url));
    this.#worker = worker;
    worker.on('message', (raw: unknown) => this.#onMessage(raw));
    worker.on('error', (err) => this.#fail(new Error(`inference worker crashed: ${err.message}`)));
    worker.on('exit', (code) => this.#fail(new Error(`inference worker exited (code ${code})`)));

    const request: WorkerRequest = {
      type: 'load',
      modelPath,
      providers: options.providers.length > 0 ? options.providers : ['cpu'],
      threads: options.threads,
      spinning: options.spinning ?? false,
      inputName: manifest.input.name,
      outputName: manifest.output.name,
    };
    let reply: WorkerReply;
    try {
      reply = await this.#controlRequest(request);
    } catch (err) {
      await this.dispose();
      throw err;
    }
    if (reply.type !== 'loaded') throw new Error(`unexpected reply to load: ${reply.type}`);
    const input = reply.inputs.find((t) => t.name === manifest.input.name)!;
    const output = reply.outputs.find((t) => t.name === manifest.output.name)!;
    try {
      checkTensor(input, 'input', modelPath);
      checkTensor(output, 'output', modelPath);
      checkDim(input, 1, 3, `input "${input.name}" channels`, modelPath);
      checkDim(input, 2, manifest.input.height, `input "${input.name}" height`, modelPath);
      checkDim(input, 3, manifest.input.width, `input "${input.name}" width`, modelPath);
      checkDim(output, 2, manifest.output.height, `output "${output.name}" height`, modelPath);
      checkDim(output, 3, manifest.output.width, `output "${output.name}" width`, modelPath);
    } catch (err) {
      await this.dispose();
      throw err;
    }
    const batchDim = input.shape[0];
    this.#shapes = {
      channels: 3,
      height: manifest.input.height,
      width: manifest.input.width,
      outHeight: manifest.output.height,
      outWidth: manifest.output.width,
      file: modelPath,
    };
    this.#caps = {
      backend: 'onnxruntime',
      providers: reply.providers,
      maxBatch: typeof batchDim === 'number' ? batchDim : DYNAMIC_BATCH_LIMIT,
      versions: { onnxruntime: reply.version },
    };
    this.#notes = reply.notes;
    this.#threadIds = reply.threadIds;
    this.#updateRef();
  }

  inferenceThreadIds(): readonly number[] | undefined {
    return this.#threadIds.length > 0 ? this.#threadIds : undefined;
  }

  /** What the session could not do as asked (onnxruntime-protocol.ts, `loaded.notes`); empty when nothing. */
  providerNotes(): readonly string[] {
    return this.#notes;
  }

  /**
   * Runs a batch. The input's buffer is transferred to the worker (the caller's array is
   * detached afterwards) when the array owns it whole; otherwise it is copied. Either way the
   * worker's array comes back as the result's `input`, for the next batch.
   */
  async run(input: Float32Array, batch: number): Promise<InferenceResult> {
    const shapes = this.#shapes;
    const caps = this.#caps;
    if (!shapes || !caps) throw new Error('OnnxruntimeBackend.run before load');
    if (this.#fatal) throw this.#fatal;
    if (!Number.isInteger(batch) || batch < 1 || batch > caps.maxBatch) {
      throw new RangeError(`batch ${batch} is outside 1..${caps.maxBatch}`);
    }
    const perImage = shapes.channels * shapes.height * shapes.width;
    if (input.length !== batch * perImage) {
      throw new RangeError(`input holds ${input.length} floats, batch ${batch} × 3 × ${shapes.height} × ${shapes.width} needs ${batch * perImage}`);
    }
    const owned = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength && input.buffer instanceof ArrayBuffer;
    const tensor = owned ? input : input.slice();
    const id = this.#nextId++;
    const started = performance.now();
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#updateRef();
      const request: WorkerRequest = { type: 'run', id, input: tensor, dims: [batch, shapes.channels, shapes.height, shapes.width] };
      this.#worker!.postMessage(request, [tensor.buffer as ArrayBuffer]);
    });
    const totalMs = performance.now() - started;
    if (reply.type === 'error') throw new Error(`${shapes.file}: inference failed: ${reply.message}`);
    if (reply.type !== 'result') throw new Error(`unexpected reply to run: ${reply.type}`);
    const [n, c, h, w] = reply.dims;
    if (reply.dims.length !== 4 || n !== batch || c !== 1 || h !== shapes.outHeight || w !== shapes.outWidth) {
      throw new Error(`${shapes.file}: output shape [${reply.dims.join(', ')}], manifest says [${batch}, 1, ${shapes.outHeight}, ${shapes.outWidth}]`);
    }
    return { maps: reply.output, batch, input: reply.input, timings: { runMs: reply.runMs, totalMs } };
  }

  capabilities(): BackendCapabilities {
    if (!this.#caps) throw new Error('OnnxruntimeBackend.capabilities before load');
    return this.#caps;
  }

  /** The worker's death (a crash, out of memory), which nothing here undoes: the daemon's health says so. */
  failure(): string | undefined {
    return this.#disposed ? undefined : this.#fatal?.message;
  }

  async dispose(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#disposed = true;
    // Runs still queued go first (terminating the worker during a run aborts the process).
    if (!this.#fatal) {
      try {
        await this.#controlRequest({ type: 'dispose' });
      } catch {
        // The worker is going away either way; terminate below.
      }
    }
    this.#fatal ??= new Error('backend disposed');
    await worker.terminate();
  }

  #controlRequest(request: WorkerRequest): Promise<WorkerReply> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise((resolve, reject) => {
      this.#control = { resolve, reject };
      this.#worker!.ref();
      this.#worker!.postMessage(request);
    });
  }

  #onMessage(raw: unknown): void {
    const parsed = WorkerReplySchema.safeParse(raw);
    if (!parsed.success) {
      this.#fail(new Error(`inference worker sent a malformed reply: ${parsed.error.message}`));
      return;
    }
    const reply = parsed.data;
    const id = reply.type === 'result' || reply.type === 'error' ? reply.id : undefined;
    if (id !== undefined) {
      const pending = this.#pending.get(id);
      this.#pending.delete(id);
      this.#updateRef();
      pending?.resolve(reply);
      return;
    }
    const control = this.#control;
    this.#control = undefined;
    this.#updateRef();
    if (!control) return;
    if (reply.type === 'error') control.reject(new Error(reply.message));
    else control.resolve(reply);
  }

  #fail(err: Error): void {
    this.#fatal ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#control?.reject(err);
    this.#control = undefined;
  }

  /** The worker keeps the process alive only while something waits on it. */
  #updateRef(): void {
    if (!this.#worker || this.#fatal) return;
    if (this.#pending.size > 0 || this.#control) this.#worker.ref();
    else this.#worker.unref();
  }
}
