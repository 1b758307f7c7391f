/**
 * The native CPU kernels as the detector's post-processing: the same upsample, blur and
 * score as src/postprocess (kernels.test.ts pins them equal), 2.7x faster in `npm run bench`,
 * and on the libuv thread pool instead of the event loop.
 */
import type { Postprocessor } from '../inference/detector.js';
import { nativeOps, postprocessPlanOf, probeNative } from './binding.js';

/** The native post-processing when the addon loads here, else undefined (and why). */
export function nativePostprocessor(): { postprocessor: Postprocessor } | { postprocessor: undefined; reason: string } {
  const probe = probeNative();
  if (!probe.available) return { postprocessor: undefined, reason: probe.reason };
  const ops = nativeOps('cpu');
  return {
    postprocessor: async (lowRes, spec) => {
      const { map, score } = await ops.postprocess(lowRes.data, lowRes.width, lowRes.height, postprocessPlanOf(spec));
      return { map: { data: map, width: spec.upsample.width, height: spec.upsample.height }, score };
    },
  };
}
