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
});
export type InferenceConfig = z.infer<typeof InferenceConfigSchema>;
