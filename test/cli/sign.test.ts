/** `moead-edge keygen` and `moead-edge sign` as a user runs them: files, output, refusals. */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ManifestSchema } from '../../src/bundle/manifest.js';
import { parseSignatureFile, verifyManifest } from '../../src/ota/signature.js';
import { runCli, tempDir, type TempDir } from '../harness/index.js';
import { testBundle } from '../daemon/fixtures.js';

let dir: TempDir;
let bundle: string;

before(async () => {
  dir = await tempDir();
  // A copy of the bundle's files: signing writes manifest.sig into the folder.
  const from = (await testBundle(dir.path)).dir;
  const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(from, 'manifest.json'), 'utf8')));
  bundle = dir.file('to-sign');
  for (const file of ['manifest.json', manifest.model.file, ...manifest.reference_frames.map((r) => r.file)]) {
    await mkdir(join(bundle, file, '..'), { recursive: true });
    await copyFile(join(from, file), join(bundle, file));
  }
});
after(async () => {
  await dir.remove();
});

test('keygen writes a private key only its owner reads and prints the public key; it never overwrites', async () => {
  const key = dir.file('fleet.pem');
  const made = await runCli(['keygen', '--out', key]);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout.trim(), /^[A-Za-z0-9+/]{43}=$/);
  assert.match(await readFile(key, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  const again = await runCli(['keygen', '--out', key]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /fleet\.pem: exists already \(a key is never overwritten\)/);
  assert.equal((await runCli(['keygen'])).code, 2, '--out is required');
});

test('sign writes manifest.sig that verifies with the printed key; a damaged bundle or a bad key is refused', async () => {
  const key = dir.file('signer.pem');
  const publicKey = (await runCli(['keygen', '--out', key])).stdout.trim();
  const signed = await runCli(['sign', '--key', key, bundle]);
  assert.equal(signed.code, 0, signed.stderr);
  assert.equal(signed.stdout.trim(), join(bundle, 'manifest.sig'));
  const signature = parseSignatureFile(await readFile(join(bundle, 'manifest.sig'), 'utf8'));
  assert.equal(signature.key, publicKey);
  verifyManifest(await readFile(join(bundle, 'manifest.json')), signature, [publicKey]);

  const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(bundle, 'manifest.json'), 'utf8')));
  const model = join(bundle, manifest.model.file);
  const original = await readFile(model);
  await writeFile(model, original.subarray(0, 1000));
  const damaged = await runCli(['sign', '--key', key, bundle]);
  assert.equal(damaged.code, 1);
  assert.match(damaged.stderr, /model\.onnx: size 1000 bytes, but the manifest says \d+ \(truncated or replaced\?\)/);
  await writeFile(model, original);

  await writeFile(dir.file('not-a-key.pem'), 'hello');
  const badKey = await runCli(['sign', '--key', dir.file('not-a-key.pem'), bundle]);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stderr, /not-a-key\.pem: /);
  const missing = await runCli(['sign', '--key', dir.file('absent.pem'), bundle]);
  assert.match(missing.stderr, /absent\.pem: ENOENT/);
  assert.equal((await runCli(['sign', '--key', key])).code, 2, 'BUNDLE_DIR is required');
});
