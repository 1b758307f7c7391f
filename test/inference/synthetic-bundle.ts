/**
 * Test bundles made on the spot: a real ONNX model written by the toolchain's Python (onnx
 * package) with the bundle's I/O contract, and a manifest whose sha256/bytes match it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { BUNDLE_FORMAT, type InputSpec, type Manifest } from '../../src/bundle/manifest.js';
import { REPO_ROOT, VENV_PYTHON } from '../../src/toolchain/python-env.js';

/** An RGB input spec with ImageNet mean/std, as the `paper` config uses, for test bundles. */
export function imagenetInputSpec(width: number, height: number): InputSpec {
  return {
    name: 'image',
    width,
    height,
    color: 'RGB',
    layout: 'NCHW',
    dtype: 'float32',
    resize: 'bilinear',
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
  };
}

export const MAKE_MODEL = join(REPO_ROOT, 'test', 'inference', 'fixtures', 'make_model.py');
/** Python reference implementations (torch, scipy, Pillow, onnxruntime) for parity tests. */
export const REFERENCE_PY = join(REPO_ROOT, 'test', 'inference', 'fixtures', 'reference.py');

/** Why Python-backed tests are skipped, or undefined when the toolchain venv is there. */
export function pythonMissing(): string | undefined {
  return existsSync(VENV_PYTHON) ? undefined : `${VENV_PYTHON} does not exist (npm test creates it)`;
}

export function runPython(args: string[], input?: string): string {
  const r = spawnSync(VENV_PYTHON, args, { encoding: 'utf8', input, cwd: REPO_ROOT, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`python ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

export interface SyntheticOptions {
  kind?: 'pool' | 'subnormal' | 'heavy' | 'nan' | 'uint8-input' | 'flat-input' | 'fp16-output';
  size?: number;
  grid?: number;
  /**
   * heavy: as many MatMul rounds as make one run last at least this many ms on one
   * onnxruntime thread of this machine (measured when the model is written), not a fixed
   * count: a count that took 20 ms on one host took 10 on the next.
   */
  runMs?: number;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A manifest that passes the schema, describing `model` (its bytes) for a size×size input. */
export function syntheticManifest(model: Buffer, size: number, grid: number): Manifest {
  const metric = { image_auroc: 0.5, pixel_auroc: 0.5, pro: 0.5, per_category: {} };
  return {
    format: BUNDLE_FORMAT,
    name: 'synthetic-test',
    version: '0.0.1',
    created: '2026-01-01T00:00:00Z',
    model: { file: 'model.onnx', sha256: sha256(model), bytes: model.length, precision: 'fp32' },
    architecture: {
      config: 'test',
      backbone: 'none',
      taps: ['pool'],
      feature_channels: 3,
      hidden_dim: 3,
      rounds: 1,
      experts: 1,
      top_k: 1,
      parameters: { backbone: 1, reconstruction: 1 },
    },
    input: imagenetInputSpec(size, size),
    output: { name: 'anomaly_map', kind: 'l2_distance', width: grid, height: grid },
    postprocess: {
      upsample: { mode: 'bilinear', align_corners: false, width: size, height: size },
      blur_sigma: 2,
      score: { method: 'avgpool_max', kernel: 3 },
    },
    threshold: { value: 2, good_median: 1, method: 'manual', images: 0 },
    reference_frames: [{ file: 'reference/frame-0.png', score: 0, label: 'good' }],
    provenance: {
      data: { name: 'none', source: 'generated', categories: [], train_images: 0, test_images: 0 },
      weights: { backbone: 'none', source: 'generated', license: 'MIT' },
      training: { epochs: 0, seconds: 0, seed: 0, calibration_images: 0 },
      toolchain: { onnx: 'test' },
    },
    metrics: { split: 'none', test_images: 0, fp32: metric },
  };
}

/** A gradient test picture, deterministic, size×size RGB PNG. */
export async function gradientPng(width: number, height: number, seed = 0): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      raw[i] = (x * 7 + seed * 31) & 255;
      raw[i + 1] = (y * 5 + seed * 17) & 255;
      raw[i + 2] = ((x ^ y) * 3 + seed) & 255;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Writes manifest.json and a reference frame around model bytes already at dir/model.onnx. */
export async function writeBundleAround(dir: string, size: number, grid: number): Promise<Manifest> {
  const model = await readFile(join(dir, 'model.onnx'));
  const manifest = syntheticManifest(model, size, grid);
  await mkdir(join(dir, 'reference'), { recursive: true });
  await writeFile(join(dir, 'reference', 'frame-0.png'), await gradientPng(size, size));
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/**
 * A bundle folder at `path` (replacing what was there) whose model is random bytes: for
 * the loader's checks, which look at bytes, not at ONNX validity.
 */
export async function writeByteBundle(path: string): Promise<string> {
  await rm(path, { recursive: true, force: true });
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'model.onnx'), randomBytes(4096));
  await writeBundleAround(path, 32, 4);
  return path;
}

/** Writes a complete bundle with a real ONNX model (needs the toolchain venv) into `dir`. */
export async function writeSyntheticBundle(dir: string, options: SyntheticOptions = {}): Promise<Manifest> {
  const size = options.size ?? 32;
  const grid = options.grid ?? 4;
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, 'model.onnx');
  const speed = options.runMs === undefined ? [] : ['--run-ms', String(options.runMs)];
  runPython([MAKE_MODEL, modelPath, '--kind', options.kind ?? 'pool', '--size', String(size), '--grid', String(grid), ...speed]);
  return writeBundleAround(dir, size, grid);
}
