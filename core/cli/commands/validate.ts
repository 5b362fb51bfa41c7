import { errorMessage } from '../../errors.js';
import { loadPipelineFile } from '../../sdk.js';
import { expandPipelinePaths, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

export async function validateCommand(
  paths: string[],
  opts: { var?: string | string[]; set?: string | string[] },
): Promise<number> {
  const vars = parseVars(opts.var);
  const set = setFlags(opts.set);
  let bad = 0;
  for (const file of expandPipelinePaths(paths)) {
    try {
      const def = await loadPipelineFile(file, { vars, set });
      process.stdout.write(
        `ok  ${file} (${def.name}: ${def.sources.length} source(s), ${def.steps.length} step(s), ${def.sinks.length} sink(s))\n`,
      );
    } catch (err) {
      bad++;
      process.stderr.write(`${errorMessage(err)}\n`);
    }
  }
  return bad > 0 ? EXIT.usage : EXIT.ok;
}
