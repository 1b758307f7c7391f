// CI has no GPU, but the CUDA kernels must not rot: this compiles native/cuda/*.cu with nvcc
// from the pinned pip wheels (scripts/build-native.mjs --cuda, into build/native-cuda) and
// checks the result loads here and reports what this machine can do. Compiling one
// architecture takes about 30 s on 2 cores; the wheels (~90 MB) are cached in .cache/cuda.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { loadNative } from '../../src/native/binding.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

it('the CUDA kernels compile with nvcc and the CUDA build loads without a GPU', { timeout: 300_000 }, () => {
  // One architecture (Orin's) is enough to prove the sources compile, at half the time.
  const env = { ...process.env, MOEAD_CUDA_ARCHS: process.env.MOEAD_CUDA_ARCHS ?? '87' };
  const r = spawnSync(process.execPath, ['scripts/build-native.mjs', '--cuda'], { cwd: root, encoding: 'utf8', env });
  assert.equal(r.status, 0, `build-native --cuda failed:\n${(r.stdout ?? '').slice(-3000)}\n${(r.stderr ?? '').slice(-3000)}`);
  const addon = loadNative(`${root}build/native-cuda/Release/moead_native.node`);
  assert.equal(addon.build.cuda, true);
  assert.equal(typeof addon.cudaPreprocess, 'function');
  const devices = addon.cudaDeviceCount?.() ?? 0;
  assert.deepEqual(addon.capabilities().slice(0, 2), devices > 0 ? ['cpu', 'cuda'] : ['cpu']);
});
