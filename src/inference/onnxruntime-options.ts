/**
 * onnxruntime session options as the daemon sets them, shared by its inference worker and the
 * benchmark's bare session, so that a comparison of the two differs only in the wrapping.
 */
import type { InferenceSession } from 'onnxruntime-node';
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
    // Becomes the session config entry session.intra_op.allow_spinning.
    extra: { session: { intra_op: { allow_spinning: cpu.spinning ? '1' : '0' } } },
  };
}
