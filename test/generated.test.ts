/** Generated files must match the code they come from; every error code must be documented. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../core/errors.js';
import { generatedFiles } from '../core/generated.js';

const root = join(import.meta.dirname, '..');

describe('generated files', () => {
  for (const [rel, text] of Object.entries(generatedFiles())) {
    it(`${rel} is up to date (run \`npm run docs\` after changing a plugin, the core schema or the error table)`, () => {
      expect(readFileSync(join(root, rel), 'utf8')).toBe(text);
    });
  }

  it('documents every error code that the code uses', () => {
    const docs = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(docs).toContain(`\`${code}\``);
  });
});
