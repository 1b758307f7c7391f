/** Preprocessing: every supported frame format gives the same tensor; bad frames give typed errors. */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import sharp from 'sharp';
import type { InputSpec } from '../../src/bundle/manifest.js';
import type { Frame, PixelFormat } from '../../src/capture/frame.js';
import { PreprocessError, SUPPORTED_FRAME_FORMATS, pixelsAtSize, preprocessBatch, preprocessFrame } from '../../src/preprocess/index.js';
import { withTempDir } from '../harness/index.js';
import { nativePreprocessor } from '../../src/native/preprocessor.js';
import { REFERENCE_PY, imagenetInputSpec, pythonMissing, runPython } from '../inference/synthetic-bundle.js';

const W = 32;
const H = 24;
const spec: InputSpec = imagenetInputSpec(W, H);

/** Interleaved RGB test pattern with distinct values per channel and position. */
function pattern(width: number, height: number): Buffer {
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[3 * i] = (i * 7) & 255;
    rgb[3 * i + 1] = (i * 13 + 50) & 255;
    rgb[3 * i + 2] = (255 - i * 3) & 255;
  }
  return rgb;
}

function frame(format: PixelFormat, data: Buffer, width = W, height = H): Frame {
  return { camera: 'cam', index: 0, capturedAt: 0, capturedMono: 0, format, width, height, data, origin: `test.${format}` };
}

function expected(rgb: Buffer, s: InputSpec): Float32Array {
  const plane = s.width * s.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const src = 'RGB'.indexOf(s.color[c]!);
    for (let i = 0; i < plane; i++) out[c * plane + i] = (rgb[3 * i + src]! / 255 - s.mean[c]!) / s.std[c]!;
  }
  return out;
}

function assertClose(actual: Float32Array, wanted: Float32Array, what: string): void {
  assert.equal(actual.length, wanted.length, what);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - wanted[i]!) < 1e-5, `${what}: value ${i} is ${actual[i]}, expected ${wanted[i]}`);
}

test('supported formats are the encoded images and rgb24, bgr24, rgba, gray', () => {
  assert.deepEqual([...SUPPORTED_FRAME_FORMATS].sort(), ['bgr24', 'encoded', 'gray', 'rgb24', 'rgba']);
});

test('rgb24, bgr24, rgba, PNG and lossless WebP frames give the same normalized planar tensor', async () => {
  const rgb = pattern(W, H);
  const want = expected(rgb, spec);
  const bgr = Buffer.alloc(rgb.length);
  const rgba = Buffer.alloc(W * H * 4);
  for (let i = 0; i < W * H; i++) {
    bgr[3 * i] = rgb[3 * i + 2]!;
    bgr[3 * i + 1] = rgb[3 * i + 1]!;
    bgr[3 * i + 2] = rgb[3 * i]!;
    rgb.copy(rgba, 4 * i, 3 * i, 3 * i + 3);
    rgba[4 * i + 3] = i & 255; // alpha must be dropped, not multiplied in
  }
  const raw = { raw: { width: W, height: H, channels: 3 as const } };
  const png = await sharp(rgb, raw).png().toBuffer();
  const webp = await sharp(rgb, raw).webp({ lossless: true }).toBuffer();
  assertClose(await preprocessFrame(frame('rgb24', rgb), spec), want, 'rgb24');
  assertClose(await preprocessFrame(frame('bgr24', bgr), spec), want, 'bgr24');
  assertClose(await preprocessFrame(frame('rgba', rgba), spec), want, 'rgba');
  assertClose(await preprocessFrame(frame('encoded', png, 0, 0), spec), want, 'png');
  assertClose(await preprocessFrame(frame('encoded', webp, 0, 0), spec), want, 'webp');
});

test('a BGR model gets blue in channel 0, normalized with mean[0]/std[0]', async () => {
  const rgb = pattern(W, H);
  const bgrSpec: InputSpec = { ...spec, color: 'BGR', mean: [0.1, 0.2, 0.3], std: [0.5, 0.6, 0.7] };
  assertClose(await preprocessFrame(frame('rgb24', rgb), bgrSpec), expected(rgb, bgrSpec), 'BGR model');
});

test('gray frames are replicated to three channels', async () => {
  const gray = Buffer.alloc(W * H);
  for (let i = 0; i < gray.length; i++) gray[i] = (i * 5) & 255;
  const rgb = Buffer.alloc(W * H * 3);
  for (let i = 0; i < gray.length; i++) rgb.fill(gray[i]!, 3 * i, 3 * i + 3);
  assertClose(await preprocessFrame(frame('gray', gray), spec), expected(rgb, spec), 'gray');
  // And a gray frame at another size goes through the resize path to the same shape.
  const out = await preprocessFrame(frame('gray', Buffer.alloc(64 * 48, 100), 64, 48), spec);
  assertClose(out, expected(Buffer.alloc(W * H * 3, 100), spec), 'resized gray');
});

test('frames of another size are resized exactly to the input size (aspect not kept)', async () => {
  const big = Buffer.alloc(100 * 40 * 3);
  for (let i = 0; i < 100 * 40; i++) big.set([200, 100, 50], 3 * i);
  const jpeg = await sharp(big, { raw: { width: 100, height: 40, channels: 3 } }).jpeg({ quality: 100 }).toBuffer();
  const out = await preprocessFrame(frame('encoded', jpeg, 0, 0), spec);
  const flat = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) flat.set([200, 100, 50], 3 * i);
  // JPEG chroma rounding moves a flat colour by at most a couple of levels.
  const want = expected(flat, spec);
  for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]! - want[i]!) < 3 / 255 / 0.224, `value ${i}`);
  // Upscaling a raw frame: a horizontal ramp stays monotonic after bilinear resize.
  const ramp = Buffer.alloc(8 * 6 * 3);
  for (let y = 0; y < 6; y++) for (let x = 0; x < 8; x++) ramp.fill(x * 30, 3 * (y * 8 + x), 3 * (y * 8 + x) + 3);
  const up = await preprocessFrame(frame('rgb24', ramp, 8, 6), spec);
  for (let x = 1; x < W; x++) assert.ok(up[5 * W + x]! >= up[5 * W + x - 1]!, `ramp not monotonic at x=${x}`);
});

test('a batch holds each frame in its own slot', async () => {
  const a = pattern(W, H);
  const b = Buffer.alloc(W * H * 3, 9);
  const out = await preprocessBatch([frame('rgb24', a), frame('rgb24', b)], spec);
  assert.equal(out.length, 2 * 3 * W * H);
  assertClose(out.subarray(0, 3 * W * H), expected(a, spec), 'slot 0');
  assertClose(out.subarray(3 * W * H), expected(b, spec), 'slot 1');
});

async function rejectsWith(f: Frame, reason: PreprocessError['reason'], message: RegExp): Promise<void> {
  await assert.rejects(preprocessFrame(f, spec), (err: unknown) => {
    assert.ok(err instanceof PreprocessError, `expected a PreprocessError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.match(err.message, message);
    return true;
  });
}

test('EXPECTED FAILURE - corrupt and truncated images are decode errors naming the frame', async () => {
  const rgb = pattern(W, H);
  const jpeg = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).jpeg().toBuffer();
  const png = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
  await rejectsWith(frame('encoded', Buffer.from('not an image at all'), 0, 0), 'decode', /^test\.encoded: cannot decode image/);
  await rejectsWith(frame('encoded', jpeg.subarray(0, Math.floor(jpeg.length / 2)), 0, 0), 'decode', /cannot decode image/);
  await rejectsWith(frame('encoded', png.subarray(0, png.length - 30), 0, 0), 'decode', /cannot decode image/);
  await rejectsWith(frame('encoded', Buffer.alloc(0), 0, 0), 'decode', /cannot decode image/);
});

test('EXPECTED FAILURE - raw frames of the wrong length and unsupported formats', async () => {
  await rejectsWith(frame('rgb24', Buffer.alloc(W * H * 3 - 1)), 'size', /rgb24 frame of 32x24 needs 2304 bytes, got 2303/);
  await rejectsWith(frame('gray', Buffer.alloc(10), 0, 0), 'size', /gray frame of 0x0 needs 0 bytes/);
  await rejectsWith(frame('yuyv', Buffer.alloc(W * H * 2)), 'format', /pixel format "yuyv" is not supported \(supported: encoded, rgb24, bgr24, rgba, gray\)/);
  await rejectsWith(frame('nv12', Buffer.alloc((W * H * 3) / 2)), 'format', /"nv12" is not supported/);
});

/** A picture with smooth shading and a few hard edges, like a part on a conveyor: interleaved RGB. */
function scene(w: number, h: number): Buffer {
  const rgb = Buffer.alloc(w * h * 3);
  const r = Math.min(w, h) * 0.27;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = (x - w / 2) ** 2 + (y - h / 2) ** 2 < r ** 2;
      rgb.set([inside ? 220 : (x * 255) / w, inside ? 40 : (y * 255) / h, Math.round(128 + 100 * Math.sin(x / 9) * Math.cos(y / 13))], 3 * (y * w + x));
    }
  }
  return rgb;
}

test('resizing agrees with Pillow\'s bilinear (the training transform\'s convention)', { skip: pythonMissing() }, async (t) => {
  const w = 200;
  const h = 150;
  const rgb = scene(w, h);
  const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  await withTempDir(async (dir) => {
    await writeFile(dir.file('src.png'), png);
    // [width, height, worst allowed level difference, mean allowed]: enlarging and mixed
    // scaling use our resampler (Pillow's algorithm, rounding apart); shrinking uses libvips.
    const sizes = [[400, 300, 1, 0.05], [300, 100, 1, 0.05], [64, 64, 3, 0.2], [224, 150, 1, 0.05]] as const;
    runPython([REFERENCE_PY, 'resize', dir.file('src.png'), dir.file('pil'), ...sizes.flatMap(([W, H]) => [String(W), String(H)])]);
    for (const [W, H, maxDiff, meanDiff] of sizes) {
      const pil = await readFile(dir.file(`pil-${W}x${H}.raw`));
      const ours = await pixelsAtSize(frame('encoded', png, 0, 0), W, H);
      assert.equal(ours.data.length, pil.length);
      let worst = 0;
      let sum = 0;
      for (let i = 0; i < pil.length; i++) {
        const d = Math.abs(pil[i]! - ours.data[i]!);
        worst = Math.max(worst, d);
        sum += d;
      }
      t.diagnostic(`${w}x${h} -> ${W}x${H}: max ${worst}, mean ${(sum / pil.length).toFixed(3)} levels from Pillow`);
      assert.ok(worst <= maxDiff && sum / pil.length <= meanDiff, `${W}x${H}: max ${worst}, mean ${sum / pil.length}`);
    }
  });
});

/**
 * The files real cameras and datasets hold beyond 8-bit RGB, each made at `w` × `h` from the
 * scene: alpha with colours stored under transparent pixels, palettes with a transparent entry,
 * CMYK, colour profiles, 16-bit samples, Adam7 interlacing, an EXIF orientation.
 */
async function unusualImages(w: number, h: number): Promise<[string, Buffer][]> {
  const rgb = scene(w, h);
  const rgba = Buffer.alloc(w * h * 4);
  const greyAlpha = Buffer.alloc(w * h * 2);
  // 16-bit grey whose low bytes decide the rounding: g·256 + 255 is g + (255 − g)/257 in 8 bits,
  // which the toolchain rounds up to g + 1 (g ≤ 126) and keeping the high byte leaves at g.
  const grey16 = new Uint16Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const x = i % w;
    const y = Math.floor(i / w);
    // Transparent left third, half-transparent middle, opaque right third; the colours stay.
    const alpha = x < w / 3 ? 0 : x < (2 * w) / 3 ? 100 + (y % 50) : 255;
    rgb.copy(rgba, 4 * i, 3 * i, 3 * i + 3);
    rgba[4 * i + 3] = alpha;
    greyAlpha[2 * i] = rgb[3 * i]!;
    greyAlpha[2 * i + 1] = alpha;
    grey16[i] = (rgb[3 * i]! >> 1) * 256 + 255;
  }
  const of = (data: Buffer, channels: 2 | 3 | 4) => sharp(data, { raw: { width: w, height: h, channels } });
  return [
    ['RGBA PNG with transparent and half-transparent pixels', await of(rgba, 4).png().toBuffer()],
    ['grey+alpha PNG', await of(greyAlpha, 2).png().toBuffer()],
    ['palette PNG with transparent entries', await of(rgba, 4).png({ palette: true, dither: 0 }).toBuffer()],
    ['RGBA WebP', await of(rgba, 4).webp({ lossless: true, exact: true }).toBuffer()],
    ['CMYK JPEG', await of(rgb, 3).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer()],
    ['Display P3 PNG (ICC profile)', await of(rgb, 3).withIccProfile('p3').png().toBuffer()],
    ['Display P3 JPEG (ICC profile)', await of(rgb, 3).withIccProfile('p3').jpeg({ quality: 95 }).toBuffer()],
    ['16-bit grey PNG', await sharp(grey16, { raw: { width: w, height: h, channels: 1 } }).toColourspace('grey16').png().toBuffer()],
    ['16-bit RGB PNG', await of(rgb, 3).toColourspace('rgb16').png().toBuffer()],
    ['interlaced PNG', await of(rgb, 3).png({ progressive: true }).toBuffer()],
    ['JPEG with EXIF orientation 6 (rotate 90°)', await of(rgb, 3).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer()],
  ];
}

test('unusual images give the toolchain\'s tensor on both daemon paths (alpha, palettes, CMYK, ICC, 16-bit, EXIF)', { skip: pythonMissing() }, async (t) => {
  // Normalized as the edge config does (x/256), so a tensor value times 256 is a grey level.
  const levels: InputSpec = { ...imagenetInputSpec(64, 48), scale: 1 / 256, mean: [0, 0, 0], std: [1, 1, 1] };
  const native = nativePreprocessor();
  const paths: [string, (f: Frame) => Promise<Float32Array>][] = [['sharp', (f) => preprocessFrame(f, levels)]];
  if (native.preprocessor) paths.push(['native', (f) => native.preprocessor(f, levels)]);
  else t.diagnostic(`native path not checked: ${native.reason}`);
  // [width, height, worst allowed level difference, mean allowed]: at the input size only the
  // decode can differ. Resizing adds libvips' shrink against Pillow's (up to 5 levels where JPEG
  // ringing meets the scene's edges, same pixels in) and the native kernel's unrounded output
  // (a quarter of a level on average); a wrong decode is 15 to 200 levels off, or 1 everywhere.
  const sizes = [[64, 48, 1, 0.02], [160, 120, 6, 0.5], [40, 30, 1, 0.3]] as const;
  await withTempDir(async (dir) => {
    const files: [string, string, (typeof sizes)[number]][] = [];
    for (const size of sizes) {
      for (const [what, data] of await unusualImages(size[0], size[1])) {
        const file = dir.file(`${files.length}.img`);
        await writeFile(file, data);
        files.push([`${what}, ${size[0]}x${size[1]}`, file, size]);
      }
    }
    runPython([REFERENCE_PY, 'tensor', JSON.stringify(levels), ...files.map(([, file]) => file)]);
    const failures: string[] = [];
    for (const [what, file, [, , maxDiff, meanDiff]] of files) {
      const want = new Float32Array((await readFile(`${file}.f32`)).buffer.slice(0));
      for (const [path, run] of paths) {
        const got = await run(frame('encoded', await readFile(file), 0, 0));
        assert.equal(got.length, want.length, what);
        let worst = 0;
        let sum = 0;
        for (let i = 0; i < want.length; i++) {
          const d = Math.abs(got[i]! - want[i]!) * 256;
          worst = Math.max(worst, d);
          sum += d;
        }
        const line = `${what}, ${path}: max ${worst.toFixed(1)}, mean ${(sum / want.length).toFixed(3)} levels from the toolchain`;
        t.diagnostic(line);
        if (worst > maxDiff + 1e-3 || sum / want.length > meanDiff) failures.push(line);
      }
    }
    assert.deepEqual(failures, []);
  });
});

test('an rgba frame shrinks to the pixels of its rgb24 twin, whatever its alpha (not premultiplied)', async () => {
  const [w, h] = [96, 72];
  const rgb = scene(w, h);
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgb.copy(rgba, 4 * i, 3 * i, 3 * i + 3);
    rgba[4 * i + 3] = (i % w) < w / 2 ? 0 : 90;
  }
  const want = await preprocessFrame(frame('rgb24', rgb, w, h), spec);
  assertClose(await preprocessFrame(frame('rgba', rgba, w, h), spec), want, 'shrunk rgba');
});
