/** The generated files and their content; `npm run docs` writes them, a test checks them. */

import { builtinRegistry } from './builtins.js';
import { EXIT } from './cli/exit-codes.js';
import { ERROR_CODES } from './errors.js';
import { errorsMarkdown, pipelineJsonSchema, pipelineTestJsonSchema, pluginsMarkdown } from './schema-gen.js';

export function generatedFiles(): Record<string, string> {
  const registry = builtinRegistry();
  return {
    'schemas/pipeline.schema.json': `${JSON.stringify(pipelineJsonSchema(registry), null, 2)}\n`,
    'schemas/pipeline-test.schema.json': `${JSON.stringify(pipelineTestJsonSchema(), null, 2)}\n`,
    'docs/plugins.md': pluginsMarkdown(registry),
    'docs/errors.md': errorsMarkdown(ERROR_CODES, EXIT),
  };
}
