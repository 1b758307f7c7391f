/**
 * The thread that owns the onnxruntime-node session. onnxruntime-node 1.30's `run()` is a
 * synchronous native call (wrapped in setImmediate), so calling it on the event-loop thread
 * would stall timers, MQTT keepalive and capture for the whole inference; here it only
 * blocks this worker. Requests are handled one at a time, in arrival order.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { InferenceSession, Tensor, env, listSupportedBackends } from 'onnxruntime-node';
import { currentThreadId, processThreadIds } from '../util/threads.js';
import type { ExecutionProvider } from './backend.js';
import { flushDenormalsOnThisThread, sessionOptions } from './onnxruntime-options.js';
import { WorkerRequestSchema, type TensorInfo, type WorkerReply, type WorkerRequest } from './onnxruntime-protocol.js';

if (!parentPort) throw new Error('onnxruntime-worker.js must be started as a worker_thread');
const port = parentPort;

let session: InferenceSession | undefined;
let names = { input: '', output: '' };

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

/** Folder of the native binding, where GPU provider libraries must sit to be loadable. */
function bindingDir(): string {
  const main = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * GPU providers the installed binding can really use: compiled in (listSupportedBackends)
 * and, when not bundled into the main library, with their shared library present (the
 * package's install script skips downloading them in this repo, see .npmrc).
 */
function usableGpuProviders(wanted: ExecutionProvider[], notes: string[]): ExecutionProvider[] {
  const supported = new Map(listSupportedBackends().map((b) => [b.name, b.bundled]));
  const usable: ExecutionProvider[] = [];
  for (const p of wanted) {
    if (p === 'cpu') continue;
    const bundled = supported.get(p);
    if (bundled === undefined) {
      notes.push(`${p}: not compiled into this onnxruntime-node build`);
    } else if (!bundled && !existsSync(join(bindingDir(), `libonnxruntime_providers_${p}.so`))) {
      notes.push(`${p}: libonnxruntime_providers_${p}.so is not installed next to the onnxruntime-node binding`);
    } else {
      usable.push(p);
    }
  }
  return usable;
}

function describe(metadata: readonly InferenceSession.ValueMetadata[]): TensorInfo[] {
  return metadata.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

async function load(request: Extract<WorkerRequest, { type: 'load' }>): Promise<void> {
  const notes: string[] = [];
  // This thread runs every session.run() of the worker.
  const unflushed = flushDenormalsOnThisThread();
  if (unflushed !== undefined) notes.push(`subnormal floats are not flushed on the inference thread (${unflushed}); the masked attention may run slower on Intel CPUs`);
  const gpu = usableGpuProviders(request.providers, notes);
  const options = (providers: ExecutionProvider[]) => sessionOptions(providers, request);
  let providers: ExecutionProvider[] = [...gpu, 'cpu'];
  // Threads that appear while the session is created are its intra-op pool.
  const threadsBefore = new Set(processThreadIds());
  try {
    session = await InferenceSession.create(request.modelPath, options(providers));
  } catch (err) {
    if (gpu.length === 0) throw err;
    // A provider library can be present while the device or driver is not; CPU still works.
    notes.push(`${gpu.join('+')}: session creation failed (${err instanceof Error ? err.message : String(err)}); using cpu`);
    providers = ['cpu'];
    session = await InferenceSession.create(request.modelPath, options(providers));
  }
  if (!session.inputNames.includes(request.inputName)) {
    throw new Error(`${request.modelPath}: no input "${request.inputName}" (the model has ${session.inputNames.join(', ')})`);
  }
  if (!session.outputNames.includes(request.outputName)) {
    throw new Error(`${request.modelPath}: no output "${request.outputName}" (the model has ${session.outputNames.join(', ')})`);
  }
  names = { input: request.inputName, output: request.outputName };
  const self = currentThreadId();
  const pool = processThreadIds().filter((tid) => !threadsBefore.has(tid));
  reply({
    type: 'loaded',
    providers,
    notes,
    inputs: describe(session.inputMetadata),
    outputs: describe(session.outputMetadata),
    version: env.versions.node ?? 'unknown',
    threadIds: self === undefined ? [] : [self, ...pool],
  });
}

async function run(request: Extract<WorkerRequest, { type: 'run' }>): Promise<void> {
  if (!session) throw new Error('run before load');
  const feeds = { [names.input]: new Tensor('float32', request.input, request.dims) };
  const started = performance.now();
  const outputs = await session.run(feeds, [names.output]);
  const runMs = performance.now() - started;
  const tensor = outputs[names.output];
  if (!tensor || tensor.type !== 'float32') throw new Error(`output "${names.output}" is ${tensor?.type ?? 'missing'}, expected float32`);
  let data = tensor.data as Float32Array;
  // Transfer needs a buffer the view owns whole; copy only when the binding handed out a slice.
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice();
  // The input goes back too, for the next frame: a fresh 0.6 MB tensor per frame left the C
  // library's main malloc heap holding about 30 MiB more (docs/bench.md, memory).
  const input = request.input;
  reply({ type: 'result', id: request.id, output: data, input, dims: [...tensor.dims], runMs }, [data.buffer as ArrayBuffer, input.buffer as ArrayBuffer]);
}

async function dispose(): Promise<void> {
  await session?.release();
  session = undefined;
  reply({ type: 'disposed' });
}

// Requests run strictly one after another: a load finishes before the first run starts.
let queue: Promise<void> = Promise.resolve();

port.on('message', (raw: unknown) => {
  const parsed = WorkerRequestSchema.safeParse(raw);
  if (!parsed.success) {
    reply({ type: 'error', message: `bad request to the inference worker: ${parsed.error.message}` });
    return;
  }
  const request = parsed.data;
  queue = queue.then(async () => {
    try {
      if (request.type === 'load') await load(request);
      else if (request.type === 'run') await run(request);
      else await dispose();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      reply(request.type === 'run' ? { type: 'error', id: request.id, message } : { type: 'error', message });
    }
  });
});
