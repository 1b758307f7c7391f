/**
 * The native CPU kernels as the detector's preprocessing, where the addon loads:
 *
 * - raw frames (rgb24, bgr24, rgba, gray, yuyv, nv12) go straight to the kernel's one-pass
 *   resize and normalize, instead of a sharp resize and a normalizing loop on the event loop;
 * - 8-bit gray, RGB and RGBA PNGs are walked and inflated in TypeScript (src/preprocess/png.ts)
 *   and unfiltered and preprocessed by the kernel;
 * - every other encoded frame (JPEG, WebP, palette or 16-bit PNG, ...) goes to sharp as before.
 *
 * The kernel resizes as Pillow does without its 8-bit rounding, as the toolchain evaluates
 * (test/native/shipped-bundle.test.ts holds the shipped bundle's scores to 1e-4 relative).
 * Why it matters: on two cores, the CPU spent beside the model slows it (docs/bench.md).
 */
import type { InputSpec } from '../bundle/manifest.js';
import type { Preprocessor } from '../inference/detector.js';
import { PreprocessError, frameOrigin, preprocessFrame } from '../preprocess/index.js';
import { inflateScanlines, isPng, readPng } from '../preprocess/png.js';
import { RAW_PIXEL_FORMATS, loadNative, nativeOps, nativePngPreprocess, normalizeSpecOf, probeNative, type RawPixelFormat } from './binding.js';

function isRawFormat(format: string): format is RawPixelFormat {
  return (RAW_PIXEL_FORMATS as readonly string[]).includes(format);
}

/** The native preprocessing when the addon loads here, else undefined (and why). */
export function nativePreprocessor(): { preprocessor: Preprocessor } | { preprocessor: undefined; reason: string } {
  const probe = probeNative();
  if (!probe.available) return { preprocessor: undefined, reason: probe.reason };
  const ops = nativeOps('cpu');
  const png = nativePngPreprocess(loadNative());
  const specs = new WeakMap<InputSpec, ReturnType<typeof normalizeSpecOf>>();
  const specOf = (input: InputSpec) => specs.get(input) ?? specs.set(input, normalizeSpecOf(input)).get(input)!;

  return {
    preprocessor: async (frame, input, out) => {
      const origin = frameOrigin(frame);
      if (frame.format === 'encoded') {
        const plan = isPng(frame.data) ? readPng(frame.data, origin) : undefined;
        if (plan?.kind !== 'scanlines') return preprocessFrame(frame, input, out);
        const rows = await inflateScanlines(plan, origin);
        try {
          return await png({ data: rows, width: plan.width, height: plan.height, channels: plan.channels }, specOf(input), out);
        } catch (err) {
          throw new PreprocessError('decode', origin, `cannot decode PNG: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      // A format the kernels do not read: the TypeScript path names it in its error.
      if (!isRawFormat(frame.format)) return preprocessFrame(frame, input, out);
      try {
        return await ops.preprocess({ data: frame.data, format: frame.format, width: frame.width, height: frame.height }, specOf(input), out);
      } catch (err) {
        // The kernel checks the frame's bytes against its format and size before any work.
        throw new PreprocessError('size', origin, err instanceof Error ? err.message : String(err));
      }
    },
  };
}
