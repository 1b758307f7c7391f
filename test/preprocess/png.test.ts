/**
 * The PNG container reader behind the native decode path (src/preprocess/png.ts): which files
 * it decodes itself, which it hands to sharp, and that every broken file is refused with the
 * chunk and byte named.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { PreprocessError } from '../../src/preprocess/index.js';
import { INLINE_INFLATE_BYTES, MAX_PIXELS, inflateScanlines, readPng, scanlineBytes, type PngScanlinePlan } from '../../src/preprocess/png.js';
import { encodePng, ihdrChunk, pngChunk, pngFile, rng } from '../harness/index.js';

const W = 7;
const H = 5;

function pixels(n: number, seed = 1): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

function decodeError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PreprocessError, `expected a PreprocessError, got ${String(err)}`);
    assert.equal(err.reason, 'decode');
    assert.match(err.message, /^frame\.png: cannot decode PNG: /);
    assert.match(err.message, pattern);
    return true;
  });
}

async function decodeRejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof PreprocessError && err.reason === 'decode' && pattern.test(err.message));
}

describe('readPng', () => {
  test('8-bit gray, RGB and RGBA files are planned for the native path, with their IDAT', () => {
    for (const channels of [1, 3, 4] as const) {
      const file = encodePng(pixels(W * H * channels), W, H, channels);
      const plan = readPng(file, 'frame.png');
      assert.equal(plan.kind, 'scanlines');
      assert.deepEqual([plan.width, plan.height, plan.channels], [W, H, channels]);
      assert.equal(scanlineBytes(plan), H * (1 + W * channels));
    }
  });

  test('palette, 16-bit, gray+alpha and interlaced files go to sharp, with the reason; ICC-tagged ones do not', async () => {
    const rgb = Buffer.from(pixels(W * H * 3));
    const raw = { raw: { width: W, height: H, channels: 3 as const } };
    const palette = await sharp(rgb, raw).png({ palette: true }).toBuffer();
    const interlaced = await sharp(rgb, raw).png({ progressive: true }).toBuffer();
    const deep = await sharp(rgb, raw).toColourspace('rgb16').png().toBuffer();
    const grayAlpha = pngFile(ihdrChunk({ width: 1, height: 1, colour: 4 }), pngChunk('IDAT', zlib.deflateSync(Buffer.from([0, 9, 9]))), pngChunk('IEND'));
    const plain = encodePng(rgb, W, H, 3);
    const icc = Buffer.concat([plain.subarray(0, 33), pngChunk('iCCP', Buffer.from('p\0\0x')), plain.subarray(33)]);
    assert.deepEqual(readPng(palette, 'frame.png'), { kind: 'sharp', why: '8-bit palette image' });
    assert.deepEqual(readPng(interlaced, 'frame.png'), { kind: 'sharp', why: 'interlaced image' });
    assert.deepEqual(readPng(deep, 'frame.png'), { kind: 'sharp', why: '16-bit RGB image' });
    assert.deepEqual(readPng(grayAlpha, 'frame.png'), { kind: 'sharp', why: '8-bit gray+alpha image' });
    // Its profile is ignored on every path, as the toolchain's Pillow does.
    assert.equal(readPng(icc, 'frame.png').kind, 'scanlines');
  });

  test('an image over sharp\'s pixel limit goes to sharp, which refuses it', () => {
    const idat = pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(16)));
    const huge = pngFile(ihdrChunk({ width: 16384, height: 16384, colour: 6 }), idat, pngChunk('IEND'));
    assert.deepEqual(readPng(huge, 'frame.png'), { kind: 'sharp', why: '16384x16384 is more than 268402689 pixels' });
    assert.equal(MAX_PIXELS, 0x3fff * 0x3fff);
  });

  test('unknown ancillary chunks are skipped; IDAT split over several chunks is joined', async () => {
    const rgb = pixels(W * H * 3);
    const one = encodePng(rgb, W, H, 3);
    const idat = zlib.deflateSync(Buffer.from(await inflateScanlines(readPng(one, 'a') as PngScanlinePlan, 'a')));
    const split = pngFile(
      ihdrChunk({ width: W, height: H }),
      pngChunk('tEXt', Buffer.from('Comment\0made by hand')),
      pngChunk('IDAT', idat.subarray(0, 10)),
      pngChunk('IDAT', idat.subarray(10)),
      pngChunk('IEND'),
    );
    const plan = readPng(split, 'frame.png') as PngScanlinePlan;
    assert.equal(plan.idat.length, 2);
    assert.deepEqual(await inflateScanlines(plan, 'frame.png'), await inflateScanlines(readPng(one, 'a') as PngScanlinePlan, 'a'));
  });

  test('EXPECTED FAILURE - broken containers are refused, naming what broke', () => {
    const file = encodePng(pixels(W * H * 3), W, H, 3);
    const idatAt = 8 + 25; // signature, then IHDR's 12 + 13 bytes
    const flipped = Buffer.from(file);
    flipped[idatAt + 8 + 3]! ^= 0x10;
    decodeError(() => readPng(flipped, 'frame.png'), /chunk "IDAT" at byte 33 fails its CRC check/);
    decodeError(() => readPng(file.subarray(0, file.length - 20), 'frame.png'), /chunk "IDAT" at byte 33 needs \d+ bytes of data, the file ends at byte \d+/);
    decodeError(() => readPng(file.subarray(0, file.length - 12), 'frame.png'), /the file ends at byte \d+, inside a chunk header and before IEND/);
    decodeError(() => readPng(Buffer.from('not a png at all'), 'frame.png'), /no PNG signature/);
    const idatFirst = pngFile(pngChunk('IDAT', Buffer.alloc(4)), pngChunk('IEND'));
    decodeError(() => readPng(idatFirst, 'frame.png'), /the first chunk is "IDAT", not IHDR/);
    const critical = Buffer.concat([file.subarray(0, idatAt), pngChunk('ZZZZ', Buffer.alloc(2)), file.subarray(idatAt)]);
    decodeError(() => readPng(critical, 'frame.png'), /unknown critical chunk "ZZZZ" at byte 33/);
    const noIdat = pngFile(ihdrChunk({ width: W, height: H }), pngChunk('IEND'));
    decodeError(() => readPng(noIdat, 'frame.png'), /no IDAT chunk before IEND/);
    const badDepth = pngFile(ihdrChunk({ width: W, height: H, depth: 4, colour: 2 }), pngChunk('IEND'));
    decodeError(() => readPng(badDepth, 'frame.png'), /IHDR bit depth 4 is not allowed with colour type 2/);
    const badColour = pngFile(ihdrChunk({ width: W, height: H, colour: 5 }), pngChunk('IEND'));
    decodeError(() => readPng(badColour, 'frame.png'), /IHDR colour type 5 does not exist/);
    const empty = pngFile(ihdrChunk({ width: 0, height: H }), pngChunk('IEND'));
    decodeError(() => readPng(empty, 'frame.png'), /IHDR gives a 0x5 image/);
    const huge = Buffer.from(file);
    huge.writeUInt32BE(0x80000000, idatAt);
    decodeError(() => readPng(huge, 'frame.png'), /chunk "IDAT" at byte 33 declares 2147483648 bytes, more than PNG allows/);
  });
});

describe('inflateScanlines', () => {
  const plan = (idat: Buffer): PngScanlinePlan => ({ kind: 'scanlines', width: W, height: H, channels: 3, idat: [idat] });
  const rows = H * (1 + W * 3);

  test('gives exactly the image\'s scanlines', async () => {
    const data = Buffer.from(pixels(rows, 3));
    assert.deepEqual(await inflateScanlines(plan(zlib.deflateSync(data)), 'frame.png'), data);
  });

  test('images over INLINE_INFLATE_BYTES inflate on the thread pool, with the same checks', async () => {
    const big: Omit<PngScanlinePlan, 'idat'> = { kind: 'scanlines', width: 600, height: 300, channels: 4 };
    const bytes = scanlineBytes(big);
    assert.ok(bytes > INLINE_INFLATE_BYTES);
    const data = Buffer.from(pixels(bytes, 5));
    assert.deepEqual(await inflateScanlines({ ...big, idat: [zlib.deflateSync(data)] }, 'frame.png'), data);
    await decodeRejects(inflateScanlines({ ...big, idat: [zlib.deflateSync(Buffer.alloc(bytes + 4096))] }, 'frame.png'), new RegExp(`IDAT inflates to more than ${bytes} bytes`));
    await decodeRejects(inflateScanlines({ ...big, idat: [zlib.deflateSync(data.subarray(1))] }, 'frame.png'), new RegExp(`IDAT inflates to ${bytes - 1} bytes`));
    // A header that claims 8000x8000 RGBA (256 MB) over 100 bytes of data: refused for what the stream holds.
    const claims: PngScanlinePlan = { kind: 'scanlines', width: 8000, height: 8000, channels: 4, idat: [zlib.deflateSync(Buffer.alloc(100))] };
    await decodeRejects(inflateScanlines(claims, 'frame.png'), /IDAT inflates to 100 bytes, a 8000x8000 RGBA image has 256008000 bytes of scanlines/);
  });

  test('EXPECTED FAILURE - a stream of the wrong length or not zlib at all is refused', async () => {
    await decodeRejects(inflateScanlines(plan(zlib.deflateSync(Buffer.alloc(rows - 1))), 'frame.png'), /IDAT inflates to 109 bytes, a 7x5 RGB image has 110 bytes of scanlines/);
    await decodeRejects(inflateScanlines(plan(zlib.deflateSync(Buffer.alloc(rows + 1))), 'frame.png'), /IDAT inflates to 111 bytes/);
    // A deflate bomb: a few hundred bytes that would inflate to 64 MiB stop at the image's size.
    await decodeRejects(inflateScanlines(plan(zlib.deflateSync(Buffer.alloc(64 << 20))), 'frame.png'), /IDAT inflates to more than 110 bytes/);
    await decodeRejects(inflateScanlines(plan(Buffer.from('definitely not deflate')), 'frame.png'), /IDAT is not a valid zlib stream/);
    const cut = zlib.deflateSync(Buffer.from(pixels(rows, 4)));
    await decodeRejects(inflateScanlines(plan(cut.subarray(0, cut.length - 8)), 'frame.png'), /IDAT is not a valid zlib stream \(unexpected end of file\)/);
  });
});
