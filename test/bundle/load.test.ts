/** Bundle loading: a good bundle loads; every kind of damage is refused naming the file and key. */
import assert from 'node:assert/strict';
import { readFile, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BundleError, loadBundle } from '../../src/bundle/load.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { writeByteBundle } from '../inference/synthetic-bundle.js';

let dir: TempDir;
let bundle: string;

/** The loader checks bytes, not ONNX validity, so random bytes stand in for the model here. */
const freshBundle = (name: string) => writeByteBundle(dir.file(name));

async function editManifest(path: string, edit: (m: Record<string, unknown>) => void): Promise<void> {
  const file = join(path, 'manifest.json');
  const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(file, JSON.stringify(json));
}

before(async () => {
  dir = await tempDir('moead-bundle-');
  bundle = await freshBundle('good');
});
after(() => dir.remove());

test('a consistent bundle loads with an absolute model path', async () => {
  const loaded = await loadBundle(bundle);
  assert.equal(loaded.modelPath, join(bundle, 'model.onnx'));
  assert.equal(loaded.manifest.input.width, 32);
  assert.equal(loaded.dir, bundle);
});

test('both map kinds load; any other kind is refused naming output.kind', async () => {
  const relative = await freshBundle('relative');
  await editManifest(relative, (m) => {
    (m['output'] as Record<string, unknown>)['kind'] = 'relative_l2_distance';
  });
  assert.equal((await loadBundle(relative)).manifest.output.kind, 'relative_l2_distance');
  const cosine = await freshBundle('cosine');
  await editManifest(cosine, (m) => {
    (m['output'] as Record<string, unknown>)['kind'] = 'cosine_distance';
  });
  await assert.rejects(loadBundle(cosine), /output\.kind: /);
});

test('EXPECTED FAILURE - truncated model file', async () => {
  const b = await freshBundle('truncated');
  await truncate(join(b, 'model.onnx'), 1000);
  await assert.rejects(loadBundle(b), (err: unknown) => {
    assert.ok(err instanceof BundleError);
    assert.equal(err.file, join(b, 'model.onnx'));
    assert.match(err.message, /model\.onnx: size 1000 bytes, but the manifest says 4096/);
    return true;
  });
});

test('EXPECTED FAILURE - one flipped byte in the model', async () => {
  const b = await freshBundle('flipped');
  const model = await readFile(join(b, 'model.onnx'));
  model[2000] = model[2000]! ^ 0x01;
  await writeFile(join(b, 'model.onnx'), model);
  await assert.rejects(loadBundle(b), /model\.onnx: sha256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}/);
});

test('EXPECTED FAILURE - manifest is not JSON', async () => {
  const b = await freshBundle('badjson');
  await writeFile(join(b, 'manifest.json'), '{"format": "moead-edge.bundle/v1",');
  await assert.rejects(loadBundle(b), (err: unknown) => {
    assert.ok(err instanceof BundleError);
    assert.equal(err.file, join(b, 'manifest.json'));
    assert.match(err.message, /manifest\.json: not valid JSON/);
    return true;
  });
});

test('EXPECTED FAILURE - a missing field is named by its key path', async () => {
  const b = await freshBundle('missing');
  await editManifest(b, (m) => {
    delete (m['model'] as Record<string, unknown>)['sha256'];
  });
  await assert.rejects(loadBundle(b), /manifest\.json: invalid manifest: model\.sha256: /);
});

test('EXPECTED FAILURE - a bad nested value is named with its array index', async () => {
  const b = await freshBundle('badref');
  await editManifest(b, (m) => {
    (m['reference_frames'] as Array<Record<string, unknown>>)[0]!['label'] = 'maybe';
  });
  await assert.rejects(loadBundle(b), /reference_frames\[0\]\.label: /);
});

test('EXPECTED FAILURE - an unknown key is refused', async () => {
  const b = await freshBundle('unknown');
  await editManifest(b, (m) => {
    (m['input'] as Record<string, unknown>)['gamma'] = 2.2;
  });
  await assert.rejects(loadBundle(b), /input: .*gamma/);
});

test('a file whose name only starts with ".." is inside the bundle and loads', async () => {
  const b = await freshBundle('dotdot-name');
  await rename(join(b, 'model.onnx'), join(b, '..model.onnx'));
  await editManifest(b, (m) => {
    (m['model'] as Record<string, unknown>)['file'] = '..model.onnx';
  });
  assert.equal((await loadBundle(b)).modelPath, join(b, '..model.onnx'));
});

test('EXPECTED FAILURE - a model path climbing out of the bundle', async () => {
  const b = await freshBundle('escape');
  await editManifest(b, (m) => {
    (m['model'] as Record<string, unknown>)['file'] = '../good/model.onnx';
  });
  await assert.rejects(loadBundle(b), /model\.file: expected a relative path to a file inside the bundle/);
});

test('EXPECTED FAILURE - a symlink pointing out of the bundle', async () => {
  const b = await freshBundle('symlink');
  // Same bytes as the manifest expects, but living in another folder.
  const outside = dir.file('outside.onnx');
  await writeFile(outside, await readFile(join(b, 'model.onnx')));
  await rm(join(b, 'model.onnx'));
  await symlink(outside, join(b, 'model.onnx'));
  await assert.rejects(loadBundle(b), /model\.onnx: resolves outside the bundle folder/);
});

test('EXPECTED FAILURE - missing model file and missing manifest', async () => {
  const b = await freshBundle('nomodel');
  await rm(join(b, 'model.onnx'));
  await assert.rejects(loadBundle(b), /model\.onnx: missing \(named by .*manifest\.json\)/);
  await assert.rejects(loadBundle(dir.file('nowhere')), /nowhere\/manifest\.json: missing: not a model bundle folder/);
});

test('EXPECTED FAILURE - a file that exists but cannot be reached says why, not "missing"', async () => {
  // Through a regular file (ENOTDIR) and through a symlink loop (ELOOP): both are there to fix, not to add.
  const b = await freshBundle('unreachable');
  await editManifest(b, (m) => {
    (m['model'] as Record<string, unknown>)['file'] = 'model.onnx/inner.onnx';
  });
  await assert.rejects(loadBundle(b), /model\.onnx\/inner\.onnx: unreadable \(ENOTDIR; named by .*manifest\.json\)/);
  const loop = await freshBundle('loop');
  await rm(join(loop, 'model.onnx'));
  await symlink('model.onnx', join(loop, 'model.onnx'));
  await assert.rejects(loadBundle(loop), /model\.onnx: unreadable \(ELOOP; named by .*manifest\.json\)/);
});

test('EXPECTED FAILURE - two entries naming one file, or one naming manifest.json, are refused naming both', async () => {
  const b = await freshBundle('same-file');
  await editManifest(b, (m) => {
    const frames = m['reference_frames'] as Record<string, unknown>[];
    (frames[0] as Record<string, unknown>)['file'] = 'model.onnx';
  });
  await assert.rejects(loadBundle(b), /manifest\.json: invalid manifest: reference_frames\[0\]\.file: names the same file as model\.file/);
  const c = await freshBundle('manifest-name');
  await editManifest(c, (m) => {
    (m['model'] as Record<string, unknown>)['file'] = 'manifest.sig';
  });
  await assert.rejects(loadBundle(c), /model\.file: names the same file as the signature/);
});

test('EXPECTED FAILURE - a reference frame the manifest lists is absent', async () => {
  const b = await freshBundle('noref');
  await rm(join(b, 'reference', 'frame-0.png'));
  await assert.rejects(loadBundle(b), /reference\/frame-0\.png: missing/);
});

test('EXPECTED FAILURE - a file name with a control character is refused naming its key path', async () => {
  // A NUL would only fail later, in the OS call, as a "missing" file; a newline would reach logs.
  for (const name of ['model\u0000.onnx', 'model\n.onnx', 'model\u007f.onnx']) {
    const b = await freshBundle('control-name');
    await editManifest(b, (m) => {
      (m['model'] as Record<string, unknown>)['file'] = name;
    });
    await assert.rejects(loadBundle(b), /manifest\.json: invalid manifest: model\.file: expected a relative path to a file inside the bundle \(no "\.\.", "\.", empty or leading "\/" parts, no control characters\)/, JSON.stringify(name));
  }
});

test('EXPECTED FAILURE - a file name that names a folder (".", "x/", "a//b", "./x") is refused naming its key path', async () => {
  // These passed before: an update then failed on EISDIR/EEXIST for its staging folder, naming no key.
  for (const name of ['.', 'reference/', 'reference//frame-0.png', './model.onnx']) {
    const b = await freshBundle('folder-name');
    await editManifest(b, (m) => {
      (m['model'] as Record<string, unknown>)['file'] = name;
    });
    await assert.rejects(loadBundle(b), /manifest\.json: invalid manifest: model\.file: expected a relative path to a file inside the bundle/, JSON.stringify(name));
  }
});
