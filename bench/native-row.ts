/**
 * Native vs JS: the native addon's own benchmark (bench/native.ts, kept by the native
 * concern), plus a plain statement about the TensorRT figures, which need an NVIDIA GPU.
 */
import { probeNative } from '../src/native/binding.js';
import type { BenchContext } from './context.js';
import { benchNative } from './native.js';
import type { BenchResult } from './report.js';

function tensorrtStatement(): string {
  const probe = probeNative();
  if (probe.available && probe.capabilities.includes('tensorrt')) {
    return 'TensorRT: the addon was built with TensorRT, but inference through it is not a daemon backend in this build, so there are no TensorRT inference figures.';
  }
  return `TensorRT: not measured on this machine (no NVIDIA GPU / TensorRT build of the addon${probe.available ? '' : `: ${probe.reason}`}); run \`npm run bench\` on a Jetson for those figures.`;
}

export async function runNative(ctx: BenchContext): Promise<BenchResult> {
  const result = await benchNative(ctx);
  const statement = tensorrtStatement();
  return { ...result, notes: [...result.notes, statement], data: { ...result.data, tensorrt: statement } };
}
