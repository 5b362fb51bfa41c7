import { generatedFiles } from '../../generated.js';
import { EXIT } from '../exit-codes.js';

export async function schemaCommand(): Promise<number> {
  process.stdout.write(generatedFiles()['schemas/pipeline.schema.json']);
  return EXIT.ok;
}
