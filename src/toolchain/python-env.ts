/**
 * The Python toolchain's virtual environment (training/.venv): created and filled from
 * training/requirements.txt on first use, re-installed when that file changes. Shared by
 * `moead-edge train` and the test runner so there is one way to get it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';

export const REPO_ROOT = PACKAGE_ROOT;
export const TRAINING_DIR = join(REPO_ROOT, 'training');
export const VENV_DIR = join(TRAINING_DIR, '.venv');
export const VENV_PYTHON = join(VENV_DIR, 'bin', 'python');
const REQUIREMENTS = join(TRAINING_DIR, 'requirements.txt');
const STAMP = join(VENV_DIR, '.requirements.sha256');

function run(cmd: string, args: string[], what: string): void {
  const result = spawnSync(cmd, args, { stdio: 'inherit' });
  if (result.error) throw new Error(`${what}: could not run ${cmd}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')} exited with ${result.status}`);
}

function findPython(): string {
  for (const candidate of ['python3', 'python']) {
    const probe = spawnSync(candidate, ['-c', 'import sys, venv; print(sys.version_info >= (3, 10))'], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === 'True') return candidate;
  }
  throw new Error(
    'The model toolchain needs Python >= 3.10 with the venv module. Install it, e.g. `apt-get install python3 python3-venv`.',
  );
}

/** Makes sure training/.venv exists with the pinned requirements; returns its python. */
export function ensurePythonEnv(log: (line: string) => void = console.error): string {
  const wanted = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  if (existsSync(VENV_PYTHON) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === wanted) return VENV_PYTHON;
  if (!existsSync(VENV_PYTHON)) {
    log(`Creating the toolchain's Python environment in ${VENV_DIR} (first use) ...`);
    run(findPython(), ['-m', 'venv', VENV_DIR], 'creating the Python environment');
  }
  log(`Installing ${REQUIREMENTS} into ${VENV_DIR} (PyTorch is large: this takes a few minutes once) ...`);
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', REQUIREMENTS], 'installing the toolchain requirements');
  writeFileSync(STAMP, `${wanted}\n`);
  return VENV_PYTHON;
}
