// The `native` backend on a machine without TensorRT (CI): it must refuse to load with a
// reason the daemon can log before falling back to onnxruntime. Its real run is in the GPU
// suite (test/native/gpu/, `npm run test:gpu`).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { LoadedBundle } from '../../src/inference/backend.js';
import { loadNative } from '../../src/native/binding.js';
import { NativeBackend, NativeBackendUnavailable } from '../../src/native/native-backend.js';

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
