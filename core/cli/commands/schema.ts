import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { builtinRegistry } from '../../runtime/run-file.js';
import { pipelineJsonSchema } from '../../schema-gen.js';
import { EXIT } from '../exit-codes.js';

export const SCHEMA_PATH = 'schemas/pipeline.schema.json';

export function schemaText(): string {
  return `${JSON.stringify(pipelineJsonSchema(builtinRegistry()), null, 2)}\n`;
}

export async function schemaCommand(opts: { write?: boolean }): Promise<number> {
  const text = schemaText();
  if (opts.write) {
    const path = resolve(new URL('../../../../', import.meta.url).pathname, SCHEMA_PATH);
    writeFileSync(path, text);
    process.stdout.write(`wrote ${path}\n`);
  } else {
    process.stdout.write(text);
  }
  return EXIT.ok;
}
