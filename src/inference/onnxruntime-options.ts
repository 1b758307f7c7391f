/**
 * onnxruntime session options as the daemon sets them, shared by its inference worker and the
 * benchmark's bare session, so that a comparison of the two differs only in the wrapping.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { loadNative } from '../native/binding.js';
import { errorMessage } from '../util/log.js';
import type { ExecutionProvider } from './backend.js';

export interface CpuThreading {
  /** Intra-op threads; 0 leaves onnxruntime's default (one per physical core). */
  threads: number;
  /**
   * Whether idle intra-op threads spin for work instead of sleeping. onnxruntime spins by
   * default, which pays for back-to-back runs and costs a camera's gaps: with two threads, ten
   * runs of the shipped model 33 ms apart took 413 ms of CPU in 377 ms (a core spinning
   * between frames), against 76 ms without spinning; back to back, a run took 5.7 ms with
   * spinning and 6.1-7.3 ms without. A single thread has no pool, so it never spins.
   */
  spinning: boolean;
}

export function sessionOptions(providers: readonly ExecutionProvider[], cpu: CpuThreading): InferenceSession.SessionOptions {
  return {
    executionProviders: [...providers],
    graphOptimizationLevel: 'all',
    ...(cpu.threads > 0 ? { intraOpNumThreads: cpu.threads } : {}),
    // Become the session config entries session.intra_op.allow_spinning and
    // session.set_denormal_as_zero. The second makes the intra-op pool's threads treat
    // subnormal floats as zero; the thread that calls run() needs flushDenormalsOnThisThread.
    extra: { session: { intra_op: { allow_spinning: cpu.spinning ? '1' : '0' }, set_denormal_as_zero: '1' } },
  };
}

/**
 * Makes the calling thread treat subnormal floats as zero from now on; call it on the thread
 * that will run the session. The model's masked attention turns every masked score into a
 * subnormal, and each one costs Intel cores a microcode assist: the shipped INT8 model ran in
 * 9.6 instead of 7.4 ms (FP32 15.6 instead of 13.1 ms) on a Xeon, with bit-identical maps
 * (native/src/float_env.cc). onnxruntime's own switch reaches the calling thread only for
 * the first session of the process. Returns why the thread could not be switched, or
 * undefined when it was.
 */
export function flushDenormalsOnThisThread(): string | undefined {
  try {
    return loadNative().flushDenormals() ? undefined : `this CPU (${process.arch}) has no flush-to-zero mode`;
  } catch (err) {
    return `the native addon is unavailable: ${errorMessage(err).split('\n')[0]}`;
  }
}
