/** The `inference:` section of the config. The inference folder owns this schema. */
import { z } from 'zod';

export const InferenceConfigSchema = z.strictObject({
  /** Bundle folder (models/quantized/<name>) with model.onnx + manifest.json. */
  model: z.string().min(1).default('models/quantized/moead-mnv2-synth'),
  backend: z.enum(['onnxruntime', 'native']).default('onnxruntime'),
  providers: z.array(z.enum(['cpu', 'cuda', 'tensorrt'])).min(1).default(['cpu']),
  threads: z.number().int().min(0).max(64).default(0),
  /**
   * A frame in inference for longer than this marks the camera `inference_stuck` on its
   * status topic (a hung GPU driver or a wedged worker), until a result arrives again.
   */
  stuckTimeoutS: z.number().positive().max(3600).default(30),
  /**
   * Nice value (0-19) for the daemon's threads other than the main thread and the model's, so
   * that decoding and publishing never take a core from inference. Applies on Linux with the
   * onnxruntime backend when inference.threads leaves at least one core free; 0 turns it off.
   */
  housekeepingNice: z.number().int().min(0).max(19).default(10),
});
export type InferenceConfig = z.infer<typeof InferenceConfigSchema>;
