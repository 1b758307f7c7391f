/**
 * Reference frames with sha256/bytes in the manifest are verified like the model, since an
 * OTA update downloads them too; frames without them (older bundles) still load.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BundleError, loadBundle } from '../../src/bundle/load.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { writeByteBundle } from '../inference/synthetic-bundle.js';

const FRAME = join('reference', 'frame-0.png');

let dir: TempDir;

type Frame = Record<string, unknown>;

async function editFrames(path: string, edit: (frames: Frame[]) => void): Promise<void> {
  const file = join(path, 'manifest.json');
  const json = JSON.parse(await readFile(file, 'utf8')) as { reference_frames: Frame[] };
  edit(json.reference_frames);
  await writeFile(file, JSON.stringify(json, null, 2));
}

/** A synthetic bundle whose reference frame carries the size and sha256 of its PNG. */
async function hashedBundle(name: string): Promise<string> {
  const path = await writeByteBundle(dir.file(name));
  const png = await readFile(join(path, FRAME));
  await editFrames(path, (frames) => {
    frames[0]!['sha256'] = createHash('sha256').update(png).digest('hex');
    frames[0]!['bytes'] = png.length;
  });
  return path;
}

before(async () => {
  dir = await tempDir('moead-refs-');
});
after(() => dir.remove());

test('a reference frame with matching sha256 and bytes loads; one without them does too', async () => {
  const b = await hashedBundle('hashed');
  const loaded = await loadBundle(b);
  assert.match(loaded.manifest.reference_frames[0]!.sha256 ?? '', /^[0-9a-f]{64}$/);
  await editFrames(b, (frames) => {
    delete frames[0]!['sha256'];
    delete frames[0]!['bytes'];
  });
  assert.equal((await loadBundle(b)).manifest.reference_frames[0]!.sha256, undefined);
});

test('EXPECTED FAILURE - one changed byte in a reference frame', async () => {
  const b = await hashedBundle('flipped');
  const png = await readFile(join(b, FRAME));
  png[png.length - 10] = png[png.length - 10]! ^ 0x01;
  await writeFile(join(b, FRAME), png);
  await assert.rejects(loadBundle(b), (err: unknown) => {
    assert.ok(err instanceof BundleError);
    assert.equal(err.file, join(b, FRAME));
    assert.match(err.message, /reference\/frame-0\.png: sha256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}/);
    return true;
  });
});

test('EXPECTED FAILURE - a truncated reference frame', async () => {
  const b = await hashedBundle('truncated');
  await truncate(join(b, FRAME), 20);
  await assert.rejects(loadBundle(b), (err: unknown) => {
    assert.ok(err instanceof BundleError);
    assert.equal(err.file, join(b, FRAME));
    assert.match(err.message, /reference\/frame-0\.png: size 20 bytes, but the manifest says \d+/);
    return true;
  });
});

test('EXPECTED FAILURE - sha256 without bytes is refused naming the frame', async () => {
  const b = await hashedBundle('halfhash');
  await editFrames(b, (frames) => {
    delete frames[0]!['bytes'];
  });
  await assert.rejects(loadBundle(b), (err: unknown) => {
    assert.ok(err instanceof BundleError);
    assert.equal(err.file, join(b, 'manifest.json'));
    assert.match(err.message, /invalid manifest: reference_frames\[0\]\.bytes: sha256 and bytes go together/);
    return true;
  });
});
