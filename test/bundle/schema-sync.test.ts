/**
 * The manifest has one source of truth (src/bundle/manifest.ts); the Python toolchain
 * validates against the JSON Schema generated from it. This fails when someone edits one
 * side without regenerating the other (`npm run schema`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderManifestSchema, SCHEMA_PATH } from '../../src/bundle/write-schema.js';

test('models/manifest.schema.json is generated from the zod manifest schema', () => {
  const committed = readFileSync(SCHEMA_PATH, 'utf8');
  assert.equal(committed, renderManifestSchema(), 'models/manifest.schema.json is stale: run `npm run schema`');
});
