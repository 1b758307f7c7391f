#!/usr/bin/env node
// Builds the native addon (native/) with cmake-js. Runs as the package's `install` script,
// so `npm ci` builds it from source; fails with a message naming the missing tool.
//
//   node scripts/build-native.mjs            release build → build/native/Release/moead_native.node
//   node scripts/build-native.mjs --asan     AddressSanitizer + UBSan build → build/native-asan/
//   node scripts/build-native.mjs --cuda     fetches nvcc + CUDA runtime headers as pip wheels
//                                            into .cache/cuda (unless CUDACXX is set) and builds
//                                            with WITH_CUDA=ON → build/native-cuda/
//   MOEAD_CUDA_ARCHS=87|native|...           CUDA architectures (default: cmake/MoeadGpu.cmake)
//
// CUDA and TensorRT are otherwise detected by CMake (cmake/MoeadGpu.cmake): found, built in;
// not found, left out. MOEAD_SKIP_NATIVE=1 skips the build (the daemon then runs onnxruntime
// and JS pre/post-processing only, and src/native/binding.ts says why the addon is absent).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

// Pinned CUDA 13.0 compiler wheels: the bin/nvcc driver is only in the CUDA 13 wheels (the
// -cu12 nvcc wheel carries ptxas and libnvvm alone). cudart is linked statically.
export const CUDA_WHEELS = [
  'nvidia-cuda-nvcc==13.0.88',
  'nvidia-cuda-crt==13.0.88',
  'nvidia-nvvm==13.0.88',
  'nvidia-cuda-runtime==13.0.96',
  'nvidia-cuda-cccl==13.0.85',
];
export const CUDA_CACHE = join(root, '.cache', 'cuda');

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function fail(message) {
  console.error(`\nbuild-native: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

function checkTools() {
  const missing = [];
  const cxx = process.env.CXX ?? ['c++', 'g++', 'clang++'].find(have);
  if (!cxx || !have(cxx)) missing.push('a C++17 compiler (g++ or clang++; Debian: apt-get install g++)');
  if (!have('make') && !have('ninja')) missing.push('make or ninja (Debian: apt-get install make)');
  if (!have('cmake')) missing.push('cmake >= 3.18 (Debian: apt-get install cmake; or pip install cmake)');
  if (missing.length) {
    fail(`cannot build the native addon, missing:\n  - ${missing.join('\n  - ')}\n` +
      'Install them and run `npm rebuild moead-edge` or `node scripts/build-native.mjs`; ' +
      'or set MOEAD_SKIP_NATIVE=1 to run without the addon (onnxruntime backend only).');
  }
}

/** nvcc from the pinned pip wheels, unpacked under .cache/cuda/root; returns its path. */
export function ensureCudaWheels(python = process.env.PYTHON ?? 'python3') {
  const nvcc = join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'bin', 'nvcc');
  if (existsSync(nvcc) && existsSync(join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'lib64'))) return nvcc;
  rmSync(join(CUDA_CACHE, 'root'), { recursive: true, force: true });
  if (!have(python)) fail(`--cuda needs ${python} with pip to fetch the CUDA compiler wheels`);
  const wheels = join(CUDA_CACHE, 'wheels');
  mkdirSync(wheels, { recursive: true });
  const platform = process.arch === 'arm64' ? 'manylinux2014_aarch64' : 'manylinux2014_x86_64';
  console.log(`build-native: fetching ${CUDA_WHEELS.join(' ')} into ${wheels}`);
  if (run(python, ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--platform', platform,
    '-d', wheels, ...CUDA_WHEELS]) !== 0) {
    fail('pip could not download the CUDA compiler wheels (see above)');
  }
  for (const whl of readdirSync(wheels).filter((f) => f.endsWith('.whl'))) {
    if (run(python, ['-m', 'zipfile', '-e', join(wheels, whl), join(CUDA_CACHE, 'root')]) !== 0) fail(`could not unpack ${whl}`);
  }
  // zipfile drops the executable bits the wheel's RECORD does not carry.
  run('sh', ['-c', `chmod +x "${join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'bin')}"/* "${join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'nvvm', 'bin')}"/*`]);
  if (!existsSync(nvcc)) fail(`the wheels did not contain ${nvcc}`);
  // nvcc.profile links from lib64/, the wheels put the libraries in lib/.
  // CMake's FindCUDAToolkit also wants the unversioned libcudart.so beside the static one.
  symlinkSync('libcudart.so.13', join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'lib', 'libcudart.so'));
  symlinkSync('lib', join(CUDA_CACHE, 'root', 'nvidia', 'cu13', 'lib64'));
  return nvcc;
}

function main() {
  if (process.env.MOEAD_SKIP_NATIVE === '1') {
    console.log('build-native: MOEAD_SKIP_NATIVE=1, native addon not built');
    return;
  }
  const args = process.argv.slice(2);
  const asan = args.includes('--asan');
  const cuda = args.includes('--cuda');
  checkTools();
  const out = join('build', asan ? 'native-asan' : cuda ? 'native-cuda' : 'native');
  const defines = [];
  if (asan) defines.push('--CDMOEAD_ASAN=ON', '--CDWITH_CUDA=OFF', '--CDWITH_TENSORRT=OFF');
  if (cuda) {
    const nvcc = process.env.CUDACXX ?? ensureCudaWheels();
    defines.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`, '--CDWITH_CUDA=ON');
  }
  // e.g. "87" (one architecture: the CI compile check) or "native" (the GPU of this machine).
  if (process.env.MOEAD_CUDA_ARCHS) defines.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.MOEAD_CUDA_ARCHS}`);
  const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  if (!existsSync(cmakeJs)) fail('cmake-js is not installed: run npm ci first');
  const started = Date.now();
  // configure every time: `cmake-js build` alone skips it when the build folder exists, and
  // would then ignore changed options.
  const common = ['--directory', 'native', '--out', out, ...defines];
  // One compile job per core, at most 4: nvcc jobs take ~1 GiB each and a Jetson Nano has 4 GiB.
  const jobs = String(Math.max(1, Math.min(availableParallelism(), 4)));
  for (const step of [['configure', ...common], ['build', ...common, '--parallel', jobs]]) {
    const status = run(process.execPath, [cmakeJs, ...step]);
    if (status !== 0) fail(`cmake-js ${step[0]} failed (exit ${status}); the output above says why`);
  }
  console.log(`build-native: ${out}/Release/moead_native.node built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
