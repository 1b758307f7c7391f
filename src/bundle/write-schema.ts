/** Writes models/manifest.schema.json from the zod manifest schema (`npm run schema`). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { manifestJsonSchema } from './manifest.js';

export const SCHEMA_PATH = fileURLToPath(new URL('../../../models/manifest.schema.json', import.meta.url));

export function renderManifestSchema(): string {
  return `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA_PATH, renderManifestSchema());
  console.log(`wrote ${SCHEMA_PATH}`);
}
