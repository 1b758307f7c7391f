/**
 * The native CPU kernels as the detector's post-processing: the same upsample, blur and
 * score as src/postprocess (kernels.test.ts pins them equal), 2.7x faster in `npm run bench`,
 * and on the libuv thread pool instead of the event loop.
 */
import type { Postprocessor } from '../inference/detector.js';
import type { SnapshotOverlay } from '../postprocess/index.js';
import { nativeOps, nativeSnapshotOverlay, postprocessPlanOf, probeNative } from './binding.js';

/**
 * The native post-processing when the addon loads here, else undefined (and why): the map's
 * upsample, blur and score, and event snapshots' overlays. A snapshot through sharp cost
 * 10–11 ms of CPU for a 256×256 frame (3.8 ms of it resizing the overlay) and 51–62 ms for
 * 1280×720; the kernel draws and composites the overlay in one pass and leaves sharp the
 * decode and the JPEG: 5.3 and 15.5 ms (docs/inference.md).
 */
export function nativePostprocessor(): { postprocessor: Postprocessor; overlay: SnapshotOverlay } | { postprocessor: undefined; overlay: undefined; reason: string } {
  const probe = probeNative();
  if (!probe.available) return { postprocessor: undefined, overlay: undefined, reason: probe.reason };
  const ops = nativeOps('cpu');
  const overlay = nativeSnapshotOverlay();
  return {
    postprocessor: {
      score: (lowRes, spec) => ops.score(lowRes.data, lowRes.width, lowRes.height, postprocessPlanOf(spec)),
      map: async (lowRes, spec) => {
        const { map, score } = await ops.postprocess(lowRes.data, lowRes.width, lowRes.height, postprocessPlanOf(spec));
        return { map: { data: map, width: spec.upsample.width, height: spec.upsample.height }, score };
      },
    },
    // The kernel only enlarges; a frame smaller than the map takes sharp's antialiased resize.
    overlay: async (rgb, width, height, map, threshold) => (width < map.width || height < map.height ? undefined : overlay(rgb, width, height, map, threshold)),
  };
}
