/**
 * YAML problems said in a pipeline author's terms, with file:line:col: the parser's own syntax
 * errors, and aliases whose anchor does not exist — nearly always an unquoted glob
 * (`include: *.zip`), which YAML reads as the alias `*.zip`.
 */
import { type Document, visit, type YAMLError } from 'yaml';
import { SluiceError } from '../errors.js';

type At = (offset: number) => { file: string; line: number; column: number };

export function yamlProblems(doc: Document, at: At): SluiceError[] {
  const errors = doc.errors.map(
    (e: YAMLError) =>
      new SluiceError('SLUICE_E_CONFIG', `YAML syntax: ${e.message.split('\n')[0]}`, {
        context: at(e.pos[0]),
      }),
  );
  if (errors.length > 0) return errors;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return;
      const text = `*${node.source}`;
      const glob = /[.*?[\]{}/]/.test(node.source);
      errors.push(
        new SluiceError(
          'SLUICE_E_CONFIG',
          glob
            ? `${text} is read as a YAML alias, not as text`
            : `alias ${text} has no anchor &${node.source} before it`,
          {
            context: {
              ...at(node.range?.[0] ?? 0),
              hint: glob
                ? `quote the glob: "${text}" (in YAML a value starting with * names an anchor)`
                : `define &${node.source} earlier in the file, or quote the value: "${text}"`,
            },
          },
        ),
      );
    },
  });
  return errors;
}
