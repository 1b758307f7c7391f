/**
 * The model bundle manifest: the one contract between the Python toolchain that writes
 * bundles and the daemon that runs them. This zod schema is the source of truth;
 * `npm run schema` writes models/manifest.schema.json from it, the toolchain validates
 * against that file, and a test fails when the two drift apart.
 */
import { z } from 'zod';
import { formatKeyPath } from '../util/key-path.js';

export const BUNDLE_FORMAT = 'moead-edge.bundle/v1';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const positiveInt = z.number().int().positive();
/**
 * A path to a file inside the bundle folder: relative, forward slashes, never climbing out.
 * Every segment names something: "." or "x/" passed before, and an update then failed on
 * the OS's EISDIR/EEXIST for the staging folder instead of naming the manifest's key. No
 * control characters: a NUL would only fail in the OS call (as a "missing" file), a newline
 * would reach the logs and the OTA status.
 */
const bundlePath = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\\') && p.split('/').every((part) => part !== '' && part !== '.' && part !== '..') && !/[\u0000-\u001f\u007f-\u009f]/.test(p), {
    message: 'expected a relative path to a file inside the bundle (no "..", ".", empty or leading "/" parts, no control characters)',
  });
const rgbTriple = z.tuple([z.number(), z.number(), z.number()]);

export const ModelFileSchema = z.strictObject({
  file: bundlePath,
  sha256,
  bytes: positiveInt,
  precision: z.enum(['fp32', 'fp16', 'int8']),
});

export const ArchitectureSchema = z.strictObject({
  /** Toolchain config the model was built with: edge, paper, tiny or a user's own. */
  config: z.string().min(1),
  backbone: z.string().min(1),
  /** Backbone layers tapped by the neck, in order. */
  taps: z.array(z.string()).min(1),
  feature_channels: positiveInt,
  hidden_dim: positiveInt,
  rounds: positiveInt,
  experts: positiveInt,
  top_k: positiveInt,
  parameters: z.strictObject({ backbone: positiveInt, reconstruction: positiveInt }),
});

export const InputSpecSchema = z.strictObject({
  name: z.string().min(1),
  width: positiveInt,
  height: positiveInt,
  color: z.enum(['RGB', 'BGR']),
  layout: z.literal('NCHW'),
  dtype: z.literal('float32'),
  /** Exact-size resize (aspect ratio not kept), as the training transform did. */
  resize: z.literal('bilinear'),
  /** pixel' = (pixel * scale - mean[c]) / std[c], pixel in 0..255. */
  scale: z.number().positive(),
  mean: rgbTriple,
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
});

export const OutputSpecSchema = z.strictObject({
  name: z.string().min(1),
  /**
   * What each map value is: the per-position L2 distance between backbone features and
   * their reconstruction (`l2_distance`, the paper's), that distance divided by the feature
   * vector's norm (`relative_l2_distance`), or the relative distance with each channel's
   * residual weighted by its inverse mean on good training images
   * (`whitened_relative_l2_distance`). The daemon treats them alike; the kind says how to
   * read the threshold's units.
   */
  kind: z.enum(['l2_distance', 'relative_l2_distance', 'whitened_relative_l2_distance']),
  width: positiveInt,
  height: positiveInt,
});

export const ScoreSpecSchema = z.discriminatedUnion('method', [
  /** Mean over every kernel×kernel window (stride 1, no padding), then the maximum. */
  z.strictObject({ method: z.literal('avgpool_max'), kernel: positiveInt }),
  z.strictObject({ method: z.literal('max') }),
]);

/**
 * Post-processing, applied in this order to the model's low-resolution map:
 * 1. bilinear upsample to (width, height), align_corners as given;
 * 2. Gaussian blur with blur_sigma (0 = none): radius int(4*sigma + 0.5), border mode
 *    "reflect" (d c b a | a b c d), i.e. scipy.ndimage.gaussian_filter's defaults;
 * 3. image score from the blurred map by `score`.
 */
export const PostprocessSpecSchema = z.strictObject({
  upsample: z.strictObject({
    mode: z.literal('bilinear'),
    align_corners: z.boolean(),
    width: positiveInt,
    height: positiveInt,
  }),
  blur_sigma: z.number().min(0),
  score: ScoreSpecSchema,
});

/**
 * The decision threshold in the model's raw score units, and what it was derived from.
 * `normalized = clamp(0.5 + 0.5 * (score - value) / (value - good_median), 0, 1)`, so the
 * median good image maps to 0, the threshold to 0.5.
 */
export const ThresholdSchema = z
  .strictObject({
    value: z.number().positive(),
    good_median: z.number().min(0),
    method: z.enum(['quantile_margin', 'manual']),
    quantile: z.number().min(0).max(1).optional(),
    margin: z.number().min(0).optional(),
    images: z.number().int().min(0),
  })
  .refine((t) => t.good_median < t.value, {
    message: 'good_median must be below value',
    path: ['good_median'],
  });

export const MetricSetSchema = z.strictObject({
  image_auroc: z.number().min(0).max(1),
  pixel_auroc: z.number().min(0).max(1),
  pro: z.number().min(0).max(1),
  per_category: z.record(
    z.string(),
    z.strictObject({
      image_auroc: z.number().min(0).max(1),
      pixel_auroc: z.number().min(0).max(1),
      pro: z.number().min(0).max(1),
    }),
  ),
});

export const MetricsSchema = z.strictObject({
  split: z.string().min(1),
  test_images: z.number().int().min(0),
  /** Categories trained on that had no test split: in no metric, so the means leave them out. */
  untested_categories: z.array(z.string()).optional(),
  fp32: MetricSetSchema.optional(),
  int8: MetricSetSchema.optional(),
  /** INT8 vs FP32 onnxruntime CPU latency at batch 1, measured by the toolchain. */
  cpu_speed: z
    .strictObject({
      threads: positiveInt,
      fp32_ms: z.number().positive(),
      int8_ms: z.number().positive(),
      ratio: z.number().positive(),
      cpu: z.string(),
    })
    .optional(),
});

export const ProvenanceSchema = z.strictObject({
  data: z.strictObject({
    name: z.string(),
    source: z.string(),
    categories: z.array(z.string()),
    train_images: z.number().int().min(0),
    test_images: z.number().int().min(0),
  }),
  weights: z.strictObject({
    backbone: z.string(),
    source: z.string(),
    license: z.string(),
    sha256: sha256.optional(),
  }),
  training: z.strictObject({
    epochs: z.number().int().min(0),
    seconds: z.number().min(0),
    seed: z.number().int(),
    calibration_images: z.number().int().min(0),
  }),
  toolchain: z.record(z.string(), z.string()),
});

export const ReferenceFrameSchema = z
  .strictObject({
    file: bundlePath,
    /** Image score the toolchain computed with the shipped (INT8) model. */
    score: z.number().min(0),
    label: z.enum(['good', 'anomalous']),
    /**
     * Size and hash of the PNG, as for the model: an OTA update downloads the frames too and
     * must verify every file it fetched. Optional because bundles written before this lack them.
     */
    sha256: sha256.optional(),
    bytes: positiveInt.optional(),
  })
  .superRefine((frame, ctx) => {
    // One without the other is a half-written entry, not an older bundle: refuse it.
    if ((frame.sha256 === undefined) !== (frame.bytes === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'sha256 and bytes go together: give both or neither',
        path: [frame.sha256 === undefined ? 'sha256' : 'bytes'],
      });
    }
  })
  // The same rule in the generated JSON Schema, so the Python toolchain enforces it too.
  .meta({ dependentRequired: { sha256: ['bytes'], bytes: ['sha256'] } });

export const ManifestSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'expected lowercase name [a-z0-9._-]'),
  version: z.string().regex(/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/, 'expected semver x.y.z'),
  created: z.iso.datetime({ offset: true }),
  description: z.string().optional(),
  model: ModelFileSchema,
  /** The FP32 export the INT8 model was quantized from, kept for benchmarks and parity. */
  fp32_model: ModelFileSchema.optional(),
  architecture: ArchitectureSchema,
  input: InputSpecSchema,
  output: OutputSpecSchema,
  postprocess: PostprocessSpecSchema,
  threshold: ThresholdSchema,
  reference_frames: z.array(ReferenceFrameSchema).min(1),
  provenance: ProvenanceSchema,
  metrics: MetricsSchema,
}).superRefine((m, ctx) => {
  // Every file of a bundle is fetched to its own name next to manifest.json and manifest.sig: two
  // entries naming one file, or one naming those two, could only fail mid-update ("file exists").
  const seen = new Map<string, string>([['manifest.json', 'the manifest itself'], ['manifest.sig', 'the signature']]);
  const entries: { file: string; path: (string | number)[] }[] = [
    { file: m.model.file, path: ['model', 'file'] },
    ...(m.fp32_model ? [{ file: m.fp32_model.file, path: ['fp32_model', 'file'] }] : []),
    ...m.reference_frames.map((f, i) => ({ file: f.file, path: ['reference_frames', i, 'file'] })),
  ];
  // Compared as written: bundlePath admits no ".", ".." or empty parts, so each name is already normal.
  for (const { file, path } of entries) {
    const taken = seen.get(file);
    if (taken === undefined) seen.set(file, formatKeyPath(path));
    else ctx.addIssue({ code: 'custom', message: `names the same file as ${taken}`, path });
  }
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type InputSpec = z.infer<typeof InputSpecSchema>;
export type PostprocessSpec = z.infer<typeof PostprocessSpecSchema>;
export type ThresholdSpec = z.infer<typeof ThresholdSchema>;

/** JSON Schema (draft 2020-12) of the manifest, for the Python side. */
export function manifestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ManifestSchema, { target: 'draft-2020-12' });
}
