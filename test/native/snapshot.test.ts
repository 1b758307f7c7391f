// Event snapshots with the native overlay (src/native/postprocessor.ts): the same picture as
// sharp draws from the same detection, within a grey level on average; frames smaller than
// the map left to sharp, byte for byte.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { Frame } from '../../src/capture/frame.js';
import { frameFromFile, openDetector, type Detector } from '../../src/inference/index.js';
import { nativePostprocessor } from '../../src/native/postprocessor.js';
import { renderSnapshot } from '../../src/postprocess/index.js';
import { REPO_ROOT, tempDir, type TempDir } from '../harness/index.js';
import { testBundle } from '../daemon/fixtures.js';

const native = nativePostprocessor();
const overlay = native.overlay ?? assert.fail(`the addon is built by npm ci: ${'reason' in native ? native.reason : ''}`);

/** Mean absolute difference of two JPEGs' decoded pixels, which must have the same size. */
async function meanDifference(a: Buffer, b: Buffer): Promise<number> {
  const [x, y] = await Promise.all([a, b].map((jpeg) => sharp(jpeg).raw().toBuffer({ resolveWithObject: true })));
  assert.deepEqual([x!.info.width, x!.info.height], [y!.info.width, y!.info.height]);
  let sum = 0;
  for (let i = 0; i < x!.data.length; i++) sum += Math.abs(x!.data[i]! - y!.data[i]!);
  return sum / x!.data.length;
}

describe('event snapshots through the native overlay', () => {
  let dir: TempDir;
  let detector: Detector;
  before(async () => {
    dir = await tempDir();
    detector = await openDetector({ bundleDir: (await testBundle(dir.path)).dir, backend: { threads: 1 } });
  });
  after(async () => {
    await detector.close();
    await dir.remove();
  });

  it('look like the sharp path on the sample frames\' own detections', async () => {
    const files = (await readdir(join(REPO_ROOT, 'samples', 'frames'))).filter((f) => f.endsWith('.png')).slice(0, 6);
    assert.ok(files.length > 0);
    const { threshold } = detector.manifest;
    for (const file of files) {
      const frame = await frameFromFile(join(REPO_ROOT, 'samples', 'frames', file));
      const map = await detector.fullMap(await detector.detect(frame));
      const viaSharp = await renderSnapshot(frame, map, threshold);
      const viaAddon = await renderSnapshot(frame, map, threshold, {}, overlay);
      const difference = await meanDifference(viaSharp, viaAddon);
      // Measured 0.6–0.8 grey levels before JPEG (the resamplers differ at steep map edges)
      // and 0.7–1.5 after it, over the 12 sample frames; without the overlay the mean moves
      // by more than 5 (below).
      assert.ok(difference <= 2.5, `${file}: mean difference ${difference.toFixed(2)} grey levels`);
      const plain = await sharp(frame.data).jpeg({ quality: 85 }).toBuffer();
      assert.ok((await meanDifference(plain, viaAddon)) > 5, `${file}: the overlay changes the picture`);
    }
  });

  it('leave a frame smaller than the map to sharp', async () => {
    const map = { data: Float32Array.from({ length: 224 * 224 }, (_, i) => (i % 224) / 224), width: 224, height: 224 };
    const pixels = Buffer.alloc(160 * 120 * 3, 90);
    const frame: Frame = { camera: 'c', index: 0, capturedAt: 0, capturedMono: 0, format: 'rgb24', width: 160, height: 120, data: pixels };
    const threshold = { value: 0.5, good_median: 0.2 };
    assert.equal(await overlay(pixels, 160, 120, map, threshold), undefined);
    assert.deepEqual(await renderSnapshot(frame, map, threshold, {}, overlay), await renderSnapshot(frame, map, threshold));
  });
});
