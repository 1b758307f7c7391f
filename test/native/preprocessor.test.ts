// The daemon's native preprocessing (src/native/preprocessor.ts): PNG frames decoded by the
// TypeScript container reader and the addon give exactly the tensor the addon makes from the
// same pixels decoded by sharp; raw frames go to the kernel; everything else to sharp; bad
// frames are PreprocessErrors naming the frame.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import type { InputSpec } from '../../src/bundle/manifest.js';
import type { Frame } from '../../src/capture/frame.js';
import type { Preprocessor } from '../../src/inference/detector.js';
import { nativeOps, normalizeSpecOf } from '../../src/native/binding.js';
import { nativePreprocessor } from '../../src/native/preprocessor.js';
import { PreprocessError, preprocessFrame } from '../../src/preprocess/index.js';
import { REPO_ROOT, encodePng, pngChunk, rng } from '../harness/index.js';
import { imagenetInputSpec } from '../inference/synthetic-bundle.js';

const SAMPLES = join(REPO_ROOT, 'samples', 'frames');
const input: InputSpec = imagenetInputSpec(224, 224);
const ops = nativeOps('cpu');
const native = nativePreprocessor();
const preprocess: Preprocessor = native.preprocessor ?? (() => assert.fail(`the addon is built by npm ci: ${'reason' in native ? native.reason : ''}`));

function frame(data: Buffer, fields: Partial<Frame> = {}): Frame {
  return { camera: 'cam', index: 3, capturedAt: 0, capturedMono: 0, format: 'encoded', width: 0, height: 0, data, origin: 'frame.png', ...fields };
}

/** The kernel's tensor for already-decoded pixels. */
function fromPixels(data: Uint8Array, format: 'gray' | 'rgb24' | 'rgba', width: number, height: number): Promise<Float32Array> {
  return ops.preprocess({ data, format, width, height }, normalizeSpecOf(input));
}

async function rejectsWith(promise: Promise<unknown>, reason: PreprocessError['reason'], pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PreprocessError, `expected a PreprocessError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('native preprocessing', () => {
  it('sample PNG frames give exactly the tensor of their sharp-decoded pixels', async () => {
    const files = (await readdir(SAMPLES)).filter((f) => f.endsWith('.png'));
    assert.ok(files.length >= 10);
    for (const file of files) {
      const data = await readFile(join(SAMPLES, file));
      const { data: rgb, info } = await sharp(data).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual(await preprocess(frame(data), input), await fromPixels(rgb, 'rgb24', info.width, info.height), file);
    }
  });

  it('hand-filtered gray, RGB and RGBA PNGs, shrunk and enlarged, give the tensor of their pixels', async () => {
    const r = rng(11);
    for (const [channels, format] of [[1, 'gray'], [3, 'rgb24'], [4, 'rgba']] as const) {
      for (const [w, h] of [[300, 250], [50, 40]] as const) {
        const pixels = Uint8Array.from({ length: w * h * channels }, () => Math.floor(r() * 256));
        const got = await preprocess(frame(encodePng(pixels, w, h, channels)), input);
        assert.deepEqual(got, await fromPixels(pixels, format, w, h), `${format} ${w}x${h}`);
      }
    }
  });

  it('JPEG and palette PNG frames take the sharp path, unchanged', async () => {
    const rgb = Buffer.from(Uint8Array.from({ length: 64 * 48 * 3 }, (_, i) => (i * 29) % 256));
    const raw = { raw: { width: 64, height: 48, channels: 3 as const } };
    for (const data of [await sharp(rgb, raw).jpeg().toBuffer(), await sharp(rgb, raw).png({ palette: true }).toBuffer()]) {
      assert.deepEqual(await preprocess(frame(data), input), await preprocessFrame(frame(data), input));
    }
  });

  it('raw frames go to the kernel, YUYV included', async () => {
    const r = rng(5);
    for (const format of ['rgb24', 'bgr24', 'rgba', 'gray', 'yuyv', 'nv12'] as const) {
      const bytes = { rgb24: 3, bgr24: 3, rgba: 4, gray: 1, yuyv: 2, nv12: 1.5 }[format] * 320 * 240;
      const data = Buffer.from(Uint8Array.from({ length: bytes }, () => Math.floor(r() * 256)));
      const got = await preprocess(frame(data, { format, width: 320, height: 240 }), input);
      assert.deepEqual(got, await ops.preprocess({ data, format, width: 320, height: 240 }, normalizeSpecOf(input)), format);
    }
  });

  it('EXPECTED FAILURE - bad frames are PreprocessErrors naming the frame and what is wrong', async () => {
    const sample = await readFile(join(SAMPLES, (await readdir(SAMPLES)).find((f) => f.endsWith('.png'))!));
    await rejectsWith(preprocess(frame(sample.subarray(0, sample.length >> 1)), input), 'decode', /^frame\.png: cannot decode PNG: chunk "IDAT" at byte \d+ needs \d+ bytes of data/);
    // Valid CRCs around a filter byte no encoder writes: caught by the addon, reported as a decode error.
    const rows = Buffer.alloc(2 * (1 + 2 * 3));
    rows[1 + 2 * 3] = 7;
    const badFilter = Buffer.concat([encodePng(new Uint8Array(12), 2, 2, 3).subarray(0, 33), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND')]);
    await rejectsWith(preprocess(frame(badFilter), input), 'decode', /^frame\.png: cannot decode PNG: PNG row 1 has filter type 7 \(types 0\.\.4 exist\)$/);
    await rejectsWith(preprocess(frame(Buffer.from('GIF89a nonsense')), input), 'decode', /^frame\.png: cannot decode image/);
    await rejectsWith(preprocess(frame(Buffer.alloc(100), { format: 'rgb24', width: 8, height: 8, origin: 'cam#3' }), input), 'size', /^cam#3: frame \(rgb24 8x8\): expected 192 bytes but received 100$/);
    await rejectsWith(preprocess(frame(Buffer.alloc(12), { format: 'yuyv', width: 3, height: 2 }), input), 'size', /yuyv needs an even width/);
  });
});
