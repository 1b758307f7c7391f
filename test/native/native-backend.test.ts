// The `native` backend on a machine without TensorRT (CI): it must refuse to load with a
// reason the daemon can log before falling back to onnxruntime. Its real run is in the GPU
// suite (test/native/gpu/, `npm run test:gpu`).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { loadBundle } from '../../src/bundle/load.js';
import type { LoadedBundle } from '../../src/inference/backend.js';
import { loadNative, type NativeAddon, type NativeEngine } from '../../src/native/binding.js';
import { ENGINE_CALLS_IN_FLIGHT, NativeBackend, NativeBackendUnavailable } from '../../src/native/native-backend.js';
import { testBundle } from '../daemon/fixtures.js';
import { tempDir } from '../harness/tmp.js';

const options = { providers: ['tensorrt' as const, 'cpu' as const], threads: 0, precision: 'int8' as const };

it('EXPECTED FAILURE - load refuses without TensorRT and says what the addon has', { skip: loadNative().capabilities().includes('tensorrt') && 'this machine has TensorRT' }, async () => {
  const backend = new NativeBackend();
  // The refusal comes before the bundle is read, so no bundle files are needed here.
  const bundle = { dir: '/nonexistent', modelPath: '/nonexistent/model.onnx' } as unknown as LoadedBundle;
  await assert.rejects(backend.load(bundle, options), (err: unknown) => {
    assert.ok(err instanceof NativeBackendUnavailable);
    assert.match(err.message, /the native backend needs TensorRT, but this addon's capabilities are \[cpu\]/);
    assert.match(err.message, /Use the onnxruntime backend/);
    return true;
  });
  assert.throws(() => backend.capabilities(), /before load/);
  await assert.rejects(backend.run(new Float32Array(3), 1), /run before load/);
});

// The engine's own run needs a GPU; a stand-in engine (runs that end when the test says) checks
// how many calls the backend hands the addon at once.
it('hands the engine at most ENGINE_CALLS_IN_FLIGHT runs at once, the rest in arrival order', async () => {
  const scratch = await tempDir();
  try {
    const bundle = await loadBundle((await testBundle(scratch.path)).dir);
    const { height: h, width: w } = bundle.manifest.input;
    const { height: oh, width: ow } = bundle.manifest.output;
    const pending: Array<() => void> = [];
    const started: number[] = [];
    let active = 0;
    let most = 0;
    const engine: NativeEngine = {
      run: (input) =>
        new Promise((resolve) => {
          active += 1;
          most = Math.max(most, active);
          started.push(input[0]!);
          pending.push(() => {
            active -= 1;
            resolve({ output: new Float32Array(oh * ow).fill(input[0]!), runMs: 1 });
          });
        }),
      info: () => ({ tensorrt: 'stand-in', computeCapability: '0.0', engineFile: '', fromCache: true, inputShape: [4, 3, h, w], outputShape: [1, oh, ow] }),
      dispose: () => undefined,
    };
    const addon: NativeAddon = { ...loadNative(), capabilities: () => ['cpu', 'tensorrt'], createEngine: async () => engine };
    const backend = new NativeBackend({ addon });
    await backend.load(bundle, options);
    const runs = [0, 1, 2, 3, 4].map((i) => backend.run(new Float32Array(3 * h * w).fill(i), 1));
    await new Promise((r) => setImmediate(r));
    assert.equal(started.length, ENGINE_CALLS_IN_FLIGHT, 'runs beyond the bound wait in the backend');
    for (let done = 0; done < runs.length; done++) {
      pending[done]!();
      await runs[done];
      await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(runs);
    assert.equal(most, ENGINE_CALLS_IN_FLIGHT);
    assert.deepEqual(started, [0, 1, 2, 3, 4], 'handed to the engine in arrival order');
    assert.deepEqual(results.map((r) => r.maps[0]), [0, 1, 2, 3, 4]);
    // A failed run frees its call too.
    const failing: NativeEngine = { ...engine, run: () => Promise.reject(new Error('stand-in failure')) };
    const broken = new NativeBackend({ addon: { ...addon, createEngine: async () => failing } });
    await broken.load(bundle, options);
    for (let i = 0; i < ENGINE_CALLS_IN_FLIGHT + 1; i++) await assert.rejects(broken.run(new Float32Array(3 * h * w), 1), /stand-in failure/);
  } finally {
    await scratch.remove();
  }
});
