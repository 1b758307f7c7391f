/** The `inference:` section of the config. The inference folder owns this schema. */
import { z } from 'zod';
import { osText } from '../util/os-text.js';

export const InferenceConfigSchema = z.strictObject({
  /** Bundle folder (models/quantized/<name>) with model.onnx + manifest.json. */
  model: osText.default('models/quantized/moead-mnv2-synth'),
  backend: z.enum(['onnxruntime', 'native']).default('onnxruntime'),
  providers: z.array(z.enum(['cpu', 'cuda', 'tensorrt'])).min(1).default(['cpu']),
  threads: z.number().int().min(0).max(64).default(0),
  /**
   * Let onnxruntime's idle intra-op threads spin for work (its own default) instead of
   * sleeping. Off: at a camera's rate a spinning pool burns about a core between frames (the
   * daemon at 30 fps of 720p on 2 cores: 138 % of a core with it, 53 % without), for about
   * 1 ms less per run back to back (src/inference/onnxruntime-options.ts).
   */
  spinning: z.boolean().default(false),
  /**
   * A frame in inference for longer than this marks the camera `inference_stuck` on its
   * status topic (a hung GPU driver or a wedged worker), until a result arrives again.
   */
  stuckTimeoutS: z.number().positive().max(3600).default(30),
  /**
   * Frames each camera keeps decoded and queued on the inference thread behind the one it
   * runs. With 1, a decode has one model run to finish in, and on a saturated 2-core machine
   * 11 % of them took longer (the decoding pool runs at housekeepingNice, behind the main
   * thread and the broker), idling the model 4.5 ms each time, 5 % of wall time. With 2,
   * saturated throughput rose 2-4 %; below saturation p50 and p95 latency stay the same, but
   * after a stall an older frame is scored instead of being replaced by a newer one, so p99
   * rose by about 5 ms at half load (docs/bench.md). 1 favours the freshest frame.
   */
  framesAhead: z.number().int().min(1).max(4).default(2),
  /**
   * Nice value (0-19) for the daemon's threads other than the main thread and the model's, so
   * that decoding and publishing never take a core from inference. Applies on Linux with the
   * onnxruntime backend when inference.threads leaves at least one core free; 0 turns it off.
   */
  housekeepingNice: z.number().int().min(0).max(19).default(10),
});
export type InferenceConfig = z.infer<typeof InferenceConfigSchema>;
