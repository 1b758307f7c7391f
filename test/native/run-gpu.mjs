#!/usr/bin/env node
// `npm run test:gpu`: on a machine with an NVIDIA GPU. Builds the addon with CUDA (and
// TensorRT when TENSORRT_ROOT or the system has the SDK) into build/native-cuda, then runs
// the GPU suite (dist/test/native/gpu/*.gpu.js) and the CPU kernel test against that build.
//   nvcc: CUDACXX, else nvcc on PATH, else the pip wheels in .cache/cuda (fetched, or carried).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const root = new URL('../..', import.meta.url).pathname;
const sh = (cmd, args, env = process.env) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env }).status ?? 1;
const which = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim();

const smi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,compute_cap', '--format=csv,noheader'], { encoding: 'utf8' });
console.log(`test:gpu: ${smi.status === 0 ? smi.stdout.trim() : 'nvidia-smi not found (no driver?)'}`);
const env = { ...process.env };
if (!env.CUDACXX && which('nvcc')) env.CUDACXX = which('nvcc');
env.MOEAD_CUDA_ARCHS ??= 'native'; // this machine's GPU (CMake >= 3.24)
if (sh(process.execPath, ['scripts/build-native.mjs', '--cuda'], env) !== 0) process.exit(1);
if (sh('npx', ['tsc', '-p', '.']) !== 0) process.exit(1);
const dir = `${root}dist/test/native/gpu`;
const files = readdirSync(dir).filter((f) => f.endsWith('.gpu.js')).map((f) => `${dir}/${f}`);
process.exit(sh(process.execPath, ['--test', '--test-reporter=spec', ...files, `${root}dist/test/native/kernels.test.js`], {
  ...env,
  MOEAD_NATIVE_PATH: `${root}build/native-cuda/Release/moead_native.node`,
}));
