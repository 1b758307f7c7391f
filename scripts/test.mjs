#!/usr/bin/env node
// `npm test`: installs what the tests need (apt packages, the Python toolchain), builds,
// then runs the Python suite (pytest) and the TypeScript suite (node:test), and ends on
// one "N passed, N failed" line. Fails with a clear message when something cannot be had.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const step = (msg) => console.log(`\n== ${msg}`);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw new Error(`could not run ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

function have(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

// Debian packages whose programs the tests start for real: the broker, capture child
// processes (ffmpeg, GStreamer with an RTSP server for the camera tests), openssl for TLS,
// jemalloc, which the daemon can run on (MOEAD_MALLOC=jemalloc, scripts/daemon-node.sh),
// systemd for systemd-analyze, which checks the unit `moead-edge systemd-unit` writes, and
// faketime, whose library steps a daemon's wall clock as NTP does (test/harness/wall-clock.ts).
const SYSTEM_PACKAGES = [
  'mosquitto', 'mosquitto-clients', 'ffmpeg', 'openssl', 'libjemalloc2', 'systemd', 'faketime',
  'gstreamer1.0-tools', 'gstreamer1.0-plugins-base', 'gstreamer1.0-plugins-good',
  'gstreamer1.0-plugins-bad', 'gstreamer1.0-libav', 'python3-gi', 'gir1.2-gst-rtsp-server-1.0',
];

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function ensureSystemPackages() {
  if (!have('dpkg-query')) {
    const missing = ['mosquitto', 'ffmpeg', 'gst-launch-1.0', 'openssl', 'faketime'].filter((b) => !have(b));
    if (missing.length) throw new Error(`missing ${missing.join(', ')} and no Debian tools to install them: install them by hand`);
    return;
  }
  const missing = SYSTEM_PACKAGES.filter((p) => !installed(p));
  if (missing.length === 0) return;
  step(`installing system packages: ${missing.join(' ')}`);
  const asRoot = process.getuid?.() === 0 ? ['apt-get'] : ['sudo', 'apt-get'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (...args) => sh(asRoot[0], [...asRoot.slice(1), ...args], { env });
  if (apt('update', '-qq') !== 0 || apt('install', '-y', '-qq', '--no-install-recommends', ...missing) !== 0) {
    throw new Error(`apt-get could not install ${missing.join(' ')}: install them by hand and run npm test again`);
  }
}

function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

try {
  ensureSystemPackages();
  step('building (tsc)');
  if (sh('npm', ['run', '--silent', 'build']) !== 0) throw new Error('TypeScript build failed');
  step('lint (eslint, type-checked rules)');
  if (sh('npm', ['run', '--silent', 'lint']) !== 0) throw new Error('eslint found problems (above); `npm run lint` repeats them');
  step('Python toolchain environment');
  const { ensurePythonEnv } = await import('../dist/src/toolchain/python-env.js');
  const python = ensurePythonEnv();

  step('Python tests (pytest)');
  const py = spawnSync(python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'training/tests'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(py.stdout ?? '');
  const pyPassed = Number(/(\d+) passed/.exec(py.stdout ?? '')?.[1] ?? 0);
  const pyFailed = Number(/(\d+) failed/.exec(py.stdout ?? '')?.[1] ?? 0) + Number(/(\d+) error/.exec(py.stdout ?? '')?.[1] ?? 0);

  step('TypeScript tests (node:test)');
  const files = testFiles(join(root, 'dist', 'test'));
  const only = process.argv.slice(2);
  const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
  const node = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...selected], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(node.stdout ?? '');
  const tsPassed = Number(/ℹ pass (\d+)/.exec(node.stdout ?? '')?.[1] ?? 0);
  const tsFailed = Number(/ℹ fail (\d+)/.exec(node.stdout ?? '')?.[1] ?? 0);

  const passed = pyPassed + tsPassed;
  const failed = pyFailed + tsFailed + (py.status !== 0 && pyFailed === 0 ? 1 : 0) + (node.status !== 0 && tsFailed === 0 ? 1 : 0);
  console.log(`\npython: ${pyPassed} passed, ${pyFailed} failed; typescript: ${tsPassed} passed, ${tsFailed} failed`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
} catch (err) {
  console.error(`\nnpm test: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
