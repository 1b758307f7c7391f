/**
 * Messages between OnnxruntimeBackend (event-loop thread) and its session worker. Both
 * sides parse what they receive; tensors travel as transferred Float32Array buffers.
 */
import { z } from 'zod';

const floats = z.custom<Float32Array>((v) => v instanceof Float32Array, 'expected a Float32Array');
const provider = z.enum(['cpu', 'cuda', 'tensorrt']);

export const WorkerRequestSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('load'),
    modelPath: z.string().min(1),
    providers: z.array(provider).min(1),
    threads: z.number().int().min(0),
    spinning: z.boolean(),
    /** Tensor names the manifest promises; the worker checks the model has them. */
    inputName: z.string().min(1),
    outputName: z.string().min(1),
  }),
  z.strictObject({
    type: z.literal('run'),
    id: z.number().int(),
    input: floats,
    dims: z.array(z.number().int().positive()).length(4),
  }),
  /** Releases the session; the worker answers `disposed` and can then be terminated. */
  z.strictObject({ type: z.literal('dispose') }),
]);
export type WorkerRequest = z.infer<typeof WorkerRequestSchema>;

const tensorInfo = z.strictObject({
  name: z.string(),
  type: z.string(),
  /** Dimensions; symbolic ones (dynamic batch) as their name. */
  shape: z.array(z.union([z.number(), z.string()])),
});

export const WorkerReplySchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('loaded'),
    providers: z.array(provider).min(1),
    /**
     * What the session could not do as asked: a requested GPU provider dropped, subnormal
     * floats not flushed on the worker's thread.
     */
    notes: z.array(z.string()),
    inputs: z.array(tensorInfo),
    outputs: z.array(tensorInfo),
    version: z.string(),
    /**
     * Linux TIDs of the threads that run the session: the worker itself and the intra-op
     * pool onnxruntime started while loading (empty where they cannot be listed).
     */
    threadIds: z.array(z.number().int().positive()),
  }),
  z.strictObject({
    type: z.literal('result'),
    id: z.number().int(),
    output: floats,
    /** The run's input, handed back (transferred) so the next frame can be written into it. */
    input: floats,
    dims: z.array(z.number().int().min(0)),
    runMs: z.number().min(0),
  }),
  z.strictObject({ type: z.literal('disposed') }),
  z.strictObject({
    type: z.literal('error'),
    /** The run this error belongs to; absent for load errors. */
    id: z.number().int().optional(),
    message: z.string(),
  }),
]);
export type WorkerReply = z.infer<typeof WorkerReplySchema>;
export type TensorInfo = z.infer<typeof tensorInfo>;
