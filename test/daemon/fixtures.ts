/**
 * What the daemon and CLI tests run on: the shipped bundle and sample frames when they are
 * in the checkout; a real (small) ONNX bundle and generated frames made on the spot when
 * the checkout has none yet, so these tests run either way.
 */
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gradientPng, writeSyntheticBundle } from '../inference/synthetic-bundle.js';
import { repoPath } from '../harness/index.js';

export const SHIPPED_BUNDLE = repoPath('models', 'quantized', 'moead-mnv2-synth');
export const SAMPLE_FRAMES = repoPath('samples', 'frames');

/** A bundle folder: the shipped one, else a synthetic one written under `scratch`. */
export async function testBundle(scratch: string): Promise<{ dir: string; shipped: boolean }> {
  if (existsSync(join(SHIPPED_BUNDLE, 'manifest.json'))) return { dir: SHIPPED_BUNDLE, shipped: true };
  const dir = join(scratch, 'bundle');
  // Written once per scratch folder: making the ONNX file runs Python.
  if (!existsSync(join(dir, 'manifest.json'))) await writeSyntheticBundle(dir);
  return { dir, shipped: false };
}

/** A folder of frames: copies of the samples (else generated ones), plus `extra` files by name. */
export async function testFrames(dir: string, extra: Record<string, Buffer> = {}, limit = 4): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const names: string[] = [];
  if (existsSync(SAMPLE_FRAMES)) {
    const samples = (await readdir(SAMPLE_FRAMES)).filter((n) => /\.(png|jpe?g)$/i.test(n)).sort().slice(0, limit);
    for (const name of samples) {
      await copyFile(join(SAMPLE_FRAMES, name), join(dir, name));
      names.push(name);
    }
  }
  for (let i = names.length; i < limit; i++) {
    const name = `gen-${i}.png`;
    await writeFile(join(dir, name), await gradientPng(64, 64, i));
    names.push(name);
  }
  for (const [name, data] of Object.entries(extra)) {
    await writeFile(join(dir, name), data);
    names.push(name);
  }
  return names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** Bytes that claim to be a PNG and are not one. */
export const CORRUPT_PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('truncated garbage')]);

export interface OneCameraConfig {
  stateDir: string;
  camera: { name: string; path: string; fps: number };
  model: string;
  /** More keys of the `inference` section, as YAML flow pairs: `stuckTimeoutS: 0.05`. */
  inference?: string;
  broker: string;
  device: string;
  /** More keys of the `mqtt` section, as YAML flow pairs: `homeassistant: {enabled: true}`. */
  mqtt?: string;
  /** More top-level YAML lines. */
  extra?: string[];
}

/** Writes a daemon config with one folder camera, one intra-op thread and a given broker; returns `file`. */
export async function writeOneCameraConfig(file: string, c: OneCameraConfig): Promise<string> {
  const lines = [
    `stateDir: ${c.stateDir}`,
    `cameras: [{type: folder, name: ${c.camera.name}, path: ${c.camera.path}, fps: ${c.camera.fps}}]`,
    `inference: {model: ${c.model}, threads: 1${c.inference ? `, ${c.inference}` : ''}}`,
    `mqtt: {url: "${c.broker}", device: ${c.device}${c.mqtt ? `, ${c.mqtt}` : ''}}`,
    ...(c.extra ?? []),
  ];
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/**
 * A config whose one camera runs a model made slow on purpose (each run at least `runMs` on
 * this machine) with the given inference.stuckTimeoutS, written under `folder`; returns the
 * config file.
 */
export async function writeStuckCameraConfig(folder: string, o: { runMs: number; stuckTimeoutS: number; frames: string; broker: string; device: string }): Promise<string> {
  const model = join(folder, 'slow-bundle');
  await writeSyntheticBundle(model, { kind: 'heavy', size: 64, grid: 4, runMs: o.runMs });
  return writeOneCameraConfig(join(folder, 'stuck.yaml'), {
    stateDir: join(folder, 'stuck-state'),
    camera: { name: 'cam', path: o.frames, fps: 5 },
    model,
    inference: `stuckTimeoutS: ${o.stuckTimeoutS}`,
    broker: o.broker,
    device: o.device,
  });
}
