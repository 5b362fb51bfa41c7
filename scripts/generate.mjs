#!/usr/bin/env node
// Writes the generated files from the built code (run `npm run build` first, or `npm run docs`):
// schemas/pipeline.schema.json, docs/plugins.md, docs/errors.md. A test fails when they are stale.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { generatedFiles } = await import(join(root, 'dist/core/generated.js'));
for (const [rel, text] of Object.entries(generatedFiles())) {
  writeFileSync(join(root, rel), text);
  console.log(`wrote ${rel}`);
}
