/** Header-only sizes and layouts of PNG and JPEG agree with sharp's, and anything else is left to sharp. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { encodedHeader, type PixelLayout } from '../../src/preprocess/header.js';

function noise(width: number, height: number): Buffer {
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 2654435761) >>> 24;
  return rgb;
}

test('PNG and JPEG sizes from the header equal what sharp reads', async () => {
  for (const [width, height] of [[1, 1], [17, 9], [640, 480], [300, 1201]] as const) {
    const img = () => sharp(noise(width, height), { raw: { width, height, channels: 3 } });
    const encoded = [
      await img().png().toBuffer(),
      await img().png({ palette: true }).toBuffer(),
      await img().jpeg().toBuffer(),
      await img().jpeg({ progressive: true }).toBuffer(),
      // An EXIF block comes before the frame header; the walk must skip it.
      await img().jpeg().withMetadata({ exif: { IFD0: { Copyright: 'moead-edge' } } }).toBuffer(),
    ];
    for (const data of encoded) {
      const meta = await sharp(data).metadata();
      assert.deepEqual(encodedHeader(data), { width: meta.width, height: meta.height, layout: 'plain' }, `${meta.format} ${width}x${height}`);
    }
  }
});

test('other formats, garbage and cut headers give undefined (sharp decides, and names the error)', async () => {
  const png = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
  const jpeg = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toBuffer();
  const webp = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).webp().toBuffer();
  assert.equal(encodedHeader(webp), undefined);
  assert.equal(encodedHeader(Buffer.from('not an image at all')), undefined);
  assert.equal(encodedHeader(Buffer.alloc(0)), undefined);
  assert.equal(encodedHeader(png.subarray(0, 20)), undefined);
  assert.equal(encodedHeader(jpeg.subarray(0, 4)), undefined);
  const zeroSized = Buffer.from(png);
  zeroSized.writeUInt32BE(0, 16);
  assert.equal(encodedHeader(zeroSized), undefined);
});

test('the layout says which images need their own decode: alpha, a tRNS colour key, CMYK, 16-bit grey', async () => {
  const raw = (channels: 1 | 2 | 3 | 4) => sharp(Buffer.alloc(6 * 4 * channels, 90), { raw: { width: 6, height: 4, channels } });
  const cases: [string, Buffer, PixelLayout][] = [
    ['RGBA PNG', await raw(4).png().toBuffer(), 'alpha'],
    ['grey+alpha PNG', await raw(2).png().toBuffer(), 'alpha'],
    ['palette PNG with transparency', await raw(4).ensureAlpha(0.5).png({ palette: true }).toBuffer(), 'alpha'],
    ['16-bit grey PNG', await raw(1).toColourspace('grey16').png().toBuffer(), 'grey16'],
    ['16-bit RGB PNG', await raw(3).toColourspace('rgb16').png().toBuffer(), 'plain'],
    ['CMYK JPEG', await raw(3).toColourspace('cmyk').jpeg().toBuffer(), 'cmyk'],
    ['grey JPEG', await raw(1).jpeg().toBuffer(), 'plain'],
  ];
  for (const [what, data, layout] of cases) {
    assert.equal(encodedHeader(data)?.layout, layout, what);
    const meta = await sharp(data).metadata();
    // sharp reads the same: alpha (a colour key expanded into one), CMYK, 16-bit grey.
    const seen = meta.space === 'cmyk' ? 'cmyk' : meta.space === 'grey16' ? 'grey16' : meta.hasAlpha ? 'alpha' : 'plain';
    assert.equal(seen, layout, `${what}: sharp's metadata`);
  }
});
