/** Version precedence for downgrade checks: semver's rules, build metadata ignored. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions } from '../../src/ota/version.js';

test('versions order by major, minor, patch, then pre-release, ignoring build metadata', () => {
  const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0', '1.10.0', '2.0.0'];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const a = ordered[i] as string;
      const b = ordered[j] as string;
      assert.equal(compareVersions(a, b), Math.sign(i - j), `${a} vs ${b}`);
    }
  }
  assert.equal(compareVersions('2.4.0+build.7', '2.4.0'), 0);
});

test('a numeric pre-release identifier ranks below an alphanumeric one, whatever their characters (semver §11.4.3)', () => {
  // Compared as text, "9" > "10a" and "2" > "10-rc": each pair would come out the wrong way round.
  for (const [lower, higher] of [
    ['1.0.0-9', '1.0.0-10a'],
    ['1.0.0-alpha.2', '1.0.0-alpha.10-rc'],
    ['1.0.0-0', '1.0.0--'],
  ] as const) {
    assert.equal(compareVersions(lower, higher), -1, `${lower} < ${higher}`);
    assert.equal(compareVersions(higher, lower), 1, `${higher} > ${lower}`);
  }
});
