/**
 * The models on disk and which one is in force, across restarts: switch, confirm, roll
 * back; a crash during probation returns to the model before; a clean stop resumes it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { Manifest } from '../../src/bundle/manifest.js';
import { ModelStore } from '../../src/ota/model-store.js';
import { tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await dir.remove();
});

const manifestOf = (version: string, sha: string) => ({ name: 'm', version, model: { sha256: sha.repeat(64).slice(0, 64) } }) as unknown as Manifest;

/** Installs a bundle whose manifest.json is `text` (what tells two installs of one version apart). */
async function installed(store: ModelStore, version: string, sha: string, text = '{}'): Promise<string> {
  const staging = await store.stagingFolder();
  await writeFile(join(staging, 'manifest.json'), text);
  return store.install(staging, manifestOf(version, sha));
}

describe('ModelStore', () => {
  test('a fresh device runs inference.model; a switch keeps the model before it for a rollback', async () => {
    const { store, recovery } = await ModelStore.open(dir.path, 'models/factory');
    assert.equal(recovery, undefined);
    assert.equal(store.active, join(process.cwd(), 'models/factory'));
    const v2 = await installed(store, '2.0.0', 'a');
    assert.equal(dirname(v2), join(dir.path, 'models'));
    assert.match(basename(v2), /^m-2\.0\.0-[0-9a-f]{12}$/);
    await store.switchTo(v2, 'u1');
    assert.equal(store.active, v2);
    assert.equal(store.previous, store.configured);
    assert.equal(store.probation?.request, 'u1');
    await store.confirm();
    assert.equal(store.probation, null);

    const again = await ModelStore.open(dir.path, 'models/factory');
    assert.equal(again.recovery, undefined);
    assert.equal(again.store.active, v2);
    assert.deepEqual(await again.store.rollBack(true), { from: v2, to: again.store.configured });
    assert.equal(again.store.previous, v2, 'an operator rollback keeps the bundle to go forward again');
  });

  test('an install never replaces a folder the state refers to, even for the same name, version and model', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    const first = await installed(store, '2.0.0', 'e', '{"threshold":0.5}');
    await store.switchTo(first, 'u1');
    await store.confirm();
    const older = await installed(store, '1.0.0', 'f');
    await store.switchTo(older, 'u2');
    assert.equal(store.previous, first);
    // The same model again under another manifest: this one may yet fail validation.
    const again = await installed(store, '2.0.0', 'e', '{"threshold":0.9}');
    assert.notEqual(again, first);
    assert.equal(await readFile(join(first, 'manifest.json'), 'utf8'), '{"threshold":0.5}', 'the previous model (probation.from) is as it was');
    assert.equal(await readFile(join(again, 'manifest.json'), 'utf8'), '{"threshold":0.9}');
    // It failed: the prune after a failed update deletes it and keeps what a rollback opens.
    await store.prune();
    assert.equal(existsSync(again), false);
    assert.equal((await store.rollBack(true)).to, first);
    assert.equal(await readFile(join(store.active, 'manifest.json'), 'utf8'), '{"threshold":0.5}');
  });

  test('a crash during probation rolls back at the next start and deletes the failed bundle', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    const v2 = await installed(store, '2.0.0', 'b');
    await store.switchTo(v2, 'u7');
    // No confirm, no pauseProbation: the process died.
    const { store: after, recovery } = await ModelStore.open(dir.path, 'models/factory');
    assert.deepEqual(recovery, { kind: 'rolled_back', from: v2, to: after.configured, request: 'u7' });
    assert.equal(after.active, after.configured);
    assert.equal(after.previous, null);
    assert.equal(existsSync(v2), false);
  });

  test('a clean stop during probation resumes it at the next start', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    const v2 = await installed(store, '2.0.0', 'c');
    await store.switchTo(v2, 'u8');
    await store.pauseProbation();
    const { store: after, recovery } = await ModelStore.open(dir.path, 'models/factory');
    assert.deepEqual(recovery, { kind: 'probation_resumed', bundle: v2, request: 'u8' });
    assert.equal(after.active, v2);
    assert.equal(after.probation?.stoppedCleanly, false, 'a crash during the resumed probation still rolls back');
  });

  test('another inference.model in the config wins over an installed update', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    const v2 = await installed(store, '2.0.0', 'd');
    await store.switchTo(v2, null);
    await store.confirm();
    const { store: after, recovery } = await ModelStore.open(dir.path, 'models/other');
    assert.deepEqual(recovery, { kind: 'config_changed', installed: v2 });
    assert.equal(after.active, join(process.cwd(), 'models/other'));
    assert.equal(existsSync(v2), false);
  });

  test('an unreadable state file is reported and the device starts from inference.model; leftovers are pruned', async () => {
    await mkdir(dir.file('models', '.staging-old'), { recursive: true });
    await mkdir(dir.file('models', 'm-0.1.0-orphan'), { recursive: true });
    await writeFile(dir.file('models', 'state.json'), '{"format":"moead-edge.models/v1","active":3}');
    const { store, recovery } = await ModelStore.open(dir.path, 'models/factory');
    assert.equal(recovery?.kind, 'unreadable');
    assert.match(recovery?.kind === 'unreadable' ? recovery.error : '', /state\.json: .*configured.*; active/);
    assert.equal(store.active, store.configured);
    assert.deepEqual(await readdir(dir.file('models')), ['state.json']);
    await writeFile(dir.file('models', 'state.json'), 'not json');
    assert.match(JSON.stringify((await ModelStore.open(dir.path, 'models/factory')).recovery), /not valid JSON/);
  });

  test('an update still marked at start-up (the daemon died during it) is reported by its id; its mark and download are deleted', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    await store.beginUpdate('u7');
    await mkdir(dir.file('models', '.staging-cut'), { recursive: true });
    const after = await ModelStore.open(dir.path, 'models/factory');
    assert.deepEqual(after.recovery, { kind: 'interrupted', request: 'u7' });
    assert.equal(after.store.active, after.store.configured);
    assert.deepEqual(await readdir(dir.file('models')), []);
    // Reported once: the start after that has nothing to say.
    assert.equal((await ModelStore.open(dir.path, 'models/factory')).recovery, undefined);
    // An unreadable mark still says an update died, without its id.
    await writeFile(dir.file('models', 'update.json'), '{"request":');
    assert.deepEqual((await ModelStore.open(dir.path, 'models/factory')).recovery, { kind: 'interrupted', request: null });
    // An ended update leaves nothing to report.
    await after.store.beginUpdate('u8');
    await after.store.endUpdate();
    assert.equal((await ModelStore.open(dir.path, 'models/factory')).recovery, undefined);
  });

  test('changes saved at the same time each apply to the state the one before left: none is lost', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    const bundle = join(store.dir, 'b-1.0.0-x');
    // Not awaited in between: the pause must see the probation the switch is still writing.
    await Promise.all([store.switchTo(bundle, 'u1'), store.pauseProbation()]);
    assert.equal(store.probation?.stoppedCleanly, true);
    const reopened = await ModelStore.open(dir.path, 'models/factory');
    assert.deepEqual([reopened.store.active, reopened.recovery?.kind], [bundle, 'probation_resumed']);
  });

  test('rolling back with nothing before is an error', async () => {
    const { store } = await ModelStore.open(dir.path, 'models/factory');
    await assert.rejects(store.rollBack(true), /no previous model to return to/);
  });
});
