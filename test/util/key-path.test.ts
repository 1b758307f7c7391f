/** Key paths in error messages: written the way a user finds the key in the JSON or YAML. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKeyPath } from '../../src/util/key-path.js';

test('names join with dots, indexes go in brackets, also at the root; an empty path is (root)', () => {
  assert.equal(formatKeyPath(['model', 'file']), 'model.file');
  assert.equal(formatKeyPath(['reference_frames', 2, 'score']), 'reference_frames[2].score');
  assert.equal(formatKeyPath(['a', 0, 1]), 'a[0][1]');
  // A document whose root is a list: its first item is [0], not 0 (which reads as a key named "0").
  assert.equal(formatKeyPath([0, 'name']), '[0].name');
  assert.equal(formatKeyPath([]), '(root)');
});
