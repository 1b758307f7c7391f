// scripts/build-native.mjs on a machine without the build tools: it must stop before cmake-js
// and name each missing tool with the package that provides it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const root = fileURLToPath(new URL('../../../', import.meta.url));

it('EXPECTED FAILURE - a missing compiler, make and cmake are each named', () => {
  // A PATH holding only sh: no compiler, no make or ninja, no cmake.
  const bin = mkdtempSync(join(tmpdir(), 'moead-nobuild-'));
  try {
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const r = spawnSync(process.execPath, ['scripts/build-native.mjs'], {
      cwd: root, encoding: 'utf8', env: { PATH: bin, HOME: process.env.HOME ?? '/tmp' },
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot build the native addon, missing:/);
    assert.match(r.stderr, /a C\+\+17 compiler \(g\+\+ or clang\+\+; Debian: apt-get install g\+\+\)/);
    assert.match(r.stderr, /make or ninja/);
    assert.match(r.stderr, /cmake >= 3\.18/);
    assert.match(r.stderr, /MOEAD_SKIP_NATIVE=1/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
