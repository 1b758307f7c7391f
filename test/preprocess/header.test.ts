/** Header-only sizes of PNG and JPEG agree with sharp's, and anything else is left to sharp. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { encodedSize } from '../../src/preprocess/header.js';

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
      assert.deepEqual(encodedSize(data), { width: meta.width, height: meta.height }, `${meta.format} ${width}x${height}`);
    }
  }
});

test('other formats, garbage and cut headers give undefined (sharp decides, and names the error)', async () => {
  const png = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
  const jpeg = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toBuffer();
  const webp = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).webp().toBuffer();
  assert.equal(encodedSize(webp), undefined);
  assert.equal(encodedSize(Buffer.from('not an image at all')), undefined);
  assert.equal(encodedSize(Buffer.alloc(0)), undefined);
  assert.equal(encodedSize(png.subarray(0, 20)), undefined);
  assert.equal(encodedSize(jpeg.subarray(0, 4)), undefined);
  const zeroSized = Buffer.from(png);
  zeroSized.writeUInt32BE(0, 16);
  assert.equal(encodedSize(zeroSized), undefined);
});
