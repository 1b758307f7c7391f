/**
 * What every benchmark shares: the command line, the bundle under test, the image folder
 * all sides read, and those images prepared once as model input tensors.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadBundle } from '../src/bundle/load.js';
import { listImages } from '../src/capture/folder-source.js';
import type { LoadedBundle } from '../src/inference/backend.js';
import { frameFromFile } from '../src/inference/files.js';
import { preprocessFrame } from '../src/preprocess/index.js';
import { PACKAGE_ROOT } from '../src/util/paths.js';

export const BENCHES = ['pipeline', 'quantization', 'latency', 'memory', 'research', 'camera', 'native'] as const;
export type BenchName = (typeof BENCHES)[number];

const OptionsSchema = z.strictObject({
  json: z.boolean(),
  quick: z.boolean(),
  bundle: z.string().min(1),
  images: z.string().min(1).optional(),
  threads: z.coerce.number().int().min(1).max(64),
  only: z.array(z.enum(BENCHES)).min(1),
  memoryMinutes: z.coerce.number().positive().max(240),
  seconds: z.coerce.number().positive().max(600),
  /** inference.framesAhead for the daemon paths (pipeline, latency, memory); the daemon's default when absent. */
  framesAhead: z.coerce.number().int().min(1).max(4).optional(),
});
export type BenchOptions = z.infer<typeof OptionsSchema>;

export const USAGE = `npm run bench -- [options]
  --json               print the results as JSON (after the table, on stdout)
  --quick              shorter runs: memory for ~1 minute instead of 10, fewer seconds per figure
  --bundle DIR         model bundle (default models/quantized/moead-mnv2-synth)
  --images DIR         JPEG/PNG folder every side reads (default samples/frames, else <bundle>/reference)
  --threads N          onnxruntime intra-op threads (and torch threads) on every side (default: all ${availableParallelism()} cores)
  --only a,b           run some of: ${BENCHES.join(', ')}
  --memory-minutes M   length of the memory run (default 10, --quick 1)
  --seconds S          timed seconds per throughput figure (default 20, --quick 8)
  --frames-ahead N     inference.framesAhead of the daemon paths (default: the daemon's, 2)`;

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const flags = {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    bundle: { type: 'string' },
    images: { type: 'string' },
    threads: { type: 'string' },
    only: { type: 'string' },
    'memory-minutes': { type: 'string' },
    seconds: { type: 'string' },
    'frames-ahead': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  } as const;
  let parsedArgs: ReturnType<typeof parseArgs<{ args: string[]; options: typeof flags; strict: true }>>;
  try {
    parsedArgs = parseArgs({ args: argv, options: flags, strict: true });
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  }
  const { values } = parsedArgs;
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  const parsed = OptionsSchema.safeParse({
    json: values.json,
    quick,
    bundle: resolve(values.bundle ?? join(PACKAGE_ROOT, 'models', 'quantized', 'moead-mnv2-synth')),
    ...(values.images ? { images: resolve(values.images) } : {}),
    threads: values.threads ?? availableParallelism(),
    only: values.only ? values.only.split(',').map((s) => s.trim()) : [...BENCHES],
    memoryMinutes: values['memory-minutes'] ?? (quick ? 1 : 10),
    seconds: values.seconds ?? (quick ? 8 : 20),
    ...(values['frames-ahead'] ? { framesAhead: values['frames-ahead'] } : {}),
  });
  if (!parsed.success) {
    const given: Record<string, unknown> = { threads: values.threads, only: values.only, memoryMinutes: values['memory-minutes'], seconds: values.seconds, framesAhead: values['frames-ahead'] };
    const issues = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '?');
      const received = given[key] === undefined ? '' : ` (received ${JSON.stringify(given[key])})`;
      return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${i.message}${received}`;
    });
    throw new Error(`bad bench options: ${issues.join('; ')}\n\n${USAGE}`);
  }
  return parsed.data;
}

export interface BenchContext {
  options: BenchOptions;
  bundle: LoadedBundle;
  /** Folder the pipeline replays and the research side reads. */
  imageDir: string;
  /** Its JPEG/PNG files, in the order the folder source plays them. */
  imageFiles: string[];
  /** The same images preprocessed by the daemon's own code: one NCHW batch-1 tensor each. */
  tensors: Float32Array[];
}

async function chooseImageDir(options: BenchOptions, bundle: LoadedBundle): Promise<string> {
  if (options.images) return options.images;
  const samples = join(PACKAGE_ROOT, 'samples', 'frames');
  if (existsSync(samples) && (await listImages(samples)).length > 0) return samples;
  return join(bundle.dir, 'reference');
}

export async function openContext(options: BenchOptions): Promise<BenchContext> {
  if (!existsSync(join(options.bundle, 'manifest.json'))) {
    throw new Error(`${options.bundle}: no manifest.json; the benchmarks need a model bundle (make one with the toolchain, or pass --bundle DIR)`);
  }
  const bundle = await loadBundle(options.bundle);
  const imageDir = await chooseImageDir(options, bundle);
  const names = await listImages(imageDir);
  if (names.length === 0) throw new Error(`${imageDir}: no JPEG/PNG images to benchmark with`);
  const imageFiles = names.map((n) => join(imageDir, n));
  const tensors: Float32Array[] = [];
  for (const file of imageFiles) tensors.push(await preprocessFrame(await frameFromFile(file), bundle.manifest.input));
  return { options, bundle, imageDir, imageFiles, tensors };
}
