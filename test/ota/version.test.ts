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
