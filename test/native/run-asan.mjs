#!/usr/bin/env node
// `npm run test:asan`: builds the addon with AddressSanitizer and UBSan, float-cast-overflow
// included (build/native-asan), and runs the randomized kernel test
// (dist/test/native/kernels.test.js) against it with libasan preloaded into node, with more
// cases than `npm test` runs. Any out-of-bounds read or write, and any undefined arithmetic
// or float-to-integer cast, aborts the run with a report.
import { spawnSync } from 'node:child_process';

const root = new URL('../..', import.meta.url).pathname;
const sh = (cmd, args, env = process.env) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env }).status ?? 1;

if (sh(process.execPath, ['scripts/build-native.mjs', '--asan']) !== 0) process.exit(1);
if (sh('npx', ['tsc', '-p', '.']) !== 0) process.exit(1);
const cxx = process.env.CXX ?? 'g++';
const libasan = spawnSync(cxx, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
if (!libasan.startsWith('/')) {
  console.error(`test:asan: ${cxx} does not know where libasan.so is (got "${libasan}"); install libasan (Debian: g++ brings it)`);
  process.exit(1);
}
console.log(`test:asan: LD_PRELOAD=${libasan}`);
const status = sh(process.execPath, ['--test', 'dist/test/native/kernels.test.js'], {
  ...process.env,
  LD_PRELOAD: libasan,
  // V8 keeps allocations alive until exit by design; leak checks would only report those.
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
  MOEAD_NATIVE_PATH: `${root}build/native-asan/Release/moead_native.node`,
  MOEAD_NATIVE_CASES: process.env.MOEAD_NATIVE_CASES ?? '600',
  MOEAD_EXPECT_ASAN: '1',
});
process.exit(status);
