/**
 * The inference workers this process starts, caught where the backend talks to them (their
 * postMessage), so that a test can end one as a crash would. End one only between runs:
 * terminating a worker during a run aborts the whole process (docs/inference.md).
 */
import { Worker } from 'node:worker_threads';

export interface InferenceWorkers {
  /** Every worker sent a message since `watchInferenceWorkers`, oldest first. */
  readonly all: readonly Worker[];
  /** Those that have not exited. */
  running(): Worker[];
  /** Puts Worker.prototype.postMessage back. */
  restore(): void;
}

export function watchInferenceWorkers(): InferenceWorkers {
  const all: Worker[] = [];
  const exited = new Set<Worker>();
  // Called with apply on the worker, and put back by restore().
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker['postMessage']>) {
    if (!all.includes(this)) {
      all.push(this);
      this.once('exit', () => exited.add(this));
    }
    post.apply(this, args);
  };
  return {
    all,
    running: () => all.filter((w) => !exited.has(w)),
    restore: () => {
      Worker.prototype.postMessage = post;
    },
  };
}
