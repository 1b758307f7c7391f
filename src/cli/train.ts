/**
 * `moead-edge train ...`: the Python toolchain's `train`, run in its own environment
 * (created on first use), output streamed as it comes.
 */
import { spawn } from 'node:child_process';
import { delimiter } from 'node:path';
import { ensurePythonEnv, TRAINING_DIR } from '../toolchain/python-env.js';
import { EXIT } from './args.js';

export async function trainCommand(argv: string[]): Promise<number> {
  const python = ensurePythonEnv((line) => console.error(line));
  // The package is found through PYTHONPATH, not by running in training/: the caller's relative
  // --data/--out must mean what they mean to every other command (`sign` reads the bundle after).
  const pythonPath = [TRAINING_DIR, process.env.PYTHONPATH].filter((p) => p !== undefined && p !== '').join(delimiter);
  const child = spawn(python, ['-m', 'moead_edge', 'train', ...argv], { env: { ...process.env, PYTHONPATH: pythonPath }, stdio: 'inherit' });
  // Ctrl-C reaches the child through the terminal's process group; SIGTERM from a supervisor is passed on.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.once('error', (err) => {
      console.error(`moead-edge train: could not run ${python}: ${err.message}`);
      resolve(EXIT.failed);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 128 + 15 : EXIT.failed));
    });
  });
}
