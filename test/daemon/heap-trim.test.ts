/**
 * The heap trimmer in a real V8: a child Node started with --expose-gc (as the daemon is)
 * promotes garbage into its old generation; the trimmer asks for a full collection once the
 * growth passes its budget, and not before.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { HeapTrimmer } from '../../src/daemon/heap-trim.js';
import { runProcess, tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
before(async () => {
  dir = await tempDir();
});
after(async () => {
  await dir.remove();
});

const MiB = 1048576;

test('asks for a full collection once the old generation has grown by the budget, and the garbage goes', async () => {
  const module = pathToFileURL(join(import.meta.dirname, '../../src/daemon/heap-trim.js')).href;
  const script = join(dir.path, 'promote.mjs');
  await writeFile(script, `import { HeapTrimmer, oldGenerationBytes } from ${JSON.stringify(module)};
const gc = globalThis.gc;
gc({ type: 'major' });
const trimmer = new HeapTrimmer(gc, { budgetMb: 2 });
const start = oldGenerationBytes();
const early = trimmer.check();
// Objects that outlive two scavenges are promoted; then nothing refers to them.
let kept = Array.from({ length: 150000 }, (_, i) => ({ i, text: 'frame ' + i }));
gc({ type: 'minor' });
gc({ type: 'minor' });
const grown = oldGenerationBytes();
kept = undefined;
const asked = trimmer.check();
let after = oldGenerationBytes();
for (let waited = 0; after > grown - 2 * ${MiB} && waited < 5000; waited += 20) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  after = oldGenerationBytes();
}
console.log(JSON.stringify({ start, early, grown, asked, after, again: trimmer.check(), requested: trimmer.requested }));
`);
  const run = await runProcess(process.execPath, ['--expose-gc', script], { timeoutMs: 30_000 });
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as { start: number; early: boolean; grown: number; asked: boolean; after: number; again: boolean; requested: number };
  assert.equal(r.early, false, 'no growth yet: no collection');
  assert.ok(r.grown - r.start > 4 * MiB, `the test promoted ${((r.grown - r.start) / MiB).toFixed(1)} MiB`);
  assert.equal(r.asked, true, 'growth past the budget asks for a collection');
  assert.ok(r.after < r.grown - 2 * MiB, `the collection freed the garbage: ${(r.grown / MiB).toFixed(1)} → ${(r.after / MiB).toFixed(1)} MiB`);
  assert.equal(r.again, false, 'growth counts again from after that collection');
  assert.equal(r.requested, 1);
});

test('without --expose-gc it does nothing and says so', () => {
  const trimmer = new HeapTrimmer(undefined, { budgetMb: 0 });
  trimmer.start();
  assert.equal(trimmer.available, false);
  assert.equal(trimmer.check(), false);
  assert.equal(trimmer.requested, 0);
  trimmer.stop();
});
