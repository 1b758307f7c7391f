/**
 * The baseline every CPU figure is divided by: a bare onnxruntime-node InferenceSession
 * running already-prepared tensors back to back, nothing else in the loop.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { flushDenormalsOnThisThread, sessionOptions } from '../src/inference/onnxruntime-options.js';
import { timeLoop, type LoopOptions } from './stats.js';

export interface BareSession {
  /** Milliseconds per batch-1 run over the given time, cycling through the tensors. */
  time(options: LoopOptions): Promise<number[]>;
  release(): Promise<void>;
}

/** Session options as the daemon's worker sets them, so only the wrapping differs. */
export async function openBareSession(modelPath: string, threads: number, inputName: string, outputName: string, tensors: readonly Float32Array[], size: { width: number; height: number }): Promise<BareSession> {
  // The bench's thread runs the session, as the worker's thread does in the daemon.
  const unflushed = flushDenormalsOnThisThread();
  if (unflushed !== undefined) process.stderr.write(`bench: subnormal floats are not flushed on the bench's thread: ${unflushed}\n`);
  const session = await InferenceSession.create(modelPath, sessionOptions(['cpu'], { threads, spinning: false }));
  const feeds = tensors.map((t) => ({ [inputName]: new Tensor('float32', t, [1, 3, size.height, size.width]) }));
  let next = 0;
  return {
    time: (options) =>
      timeLoop(async () => {
        const feed = feeds[next++ % feeds.length]!;
        await session.run(feed, [outputName]);
      }, options),
    release: () => session.release(),
  };
}

export interface BareFigure {
  fps: number;
  msPerFrame: number;
  runs: number;
}

/**
 * Frames per elapsed second (not 1/median), the way the pipeline's figure is counted, so a
 * neighbour's burst of load weighs the same on both sides of a ratio.
 */
export function bareFigure(samples: readonly number[]): BareFigure {
  const total = samples.reduce((a, b) => a + b, 0);
  const fps = (samples.length * 1000) / total;
  return { fps, msPerFrame: 1000 / fps, runs: samples.length };
}
