/**
 * YAML problems said in a pipeline author's terms, with file:line:col: the parser's own syntax
 * errors; an unquoted `${VAR}` inside a flow collection (`{ path: ${IN} }`), where YAML reads
 * the `{` of `${` as the start of a map and the parser reports a dozen unrelated-looking
 * errors; and aliases whose anchor does not exist — nearly always an unquoted glob
 * (`include: *.zip`), which YAML reads as the alias `*.zip`.
 */
import { type Document, isMap, isPair, isScalar, isSeq, parseDocument, visit, type YAMLError } from 'yaml';
import { SluiceError } from '../errors.js';

/** How every Sluice YAML file (pipeline, connections file) is parsed. */
export const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: true, merge: true } as const;

type At = (offset: number) => { file: string; line: number; column: number };

/** `${NAME…}` starting at an offset (the `$`), on one line. */
const VARIABLE_AT = /\$\{[A-Za-z_][^}\n]*\}/y;

export function yamlProblems(doc: Document, at: At, text: string): SluiceError[] {
  if (doc.errors.length > 0) return syntaxProblems(doc, at, text);
  const errors: SluiceError[] = [];
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

/**
 * The parser's errors, except that each unquoted `${VAR}` in a flow collection is one error at
 * its `$` and the errors it set off are dropped. Such a variable makes the parser fail right at
 * the `{` of `${`; it is blanked out (same length, so offsets hold) and the text parsed again
 * until no error sits there: what the parser still reports then is a problem of its own.
 */
function syntaxProblems(doc: Document, at: At, text: string): SluiceError[] {
  const variables: { offset: number; source: string }[] = [];
  let masked = text;
  let current = doc;
  for (let round = 0; round < 100; round++) {
    const found = current.errors.flatMap((e) => {
      const offset = e.pos[0] - 1;
      VARIABLE_AT.lastIndex = offset;
      const match = offset >= 0 ? VARIABLE_AT.exec(masked) : null;
      return match ? [{ offset, source: match[0] }] : [];
    });
    if (found.length === 0) break;
    for (const v of found) {
      if (variables.some((seen) => seen.offset === v.offset)) continue;
      variables.push(v);
      masked = `${masked.slice(0, v.offset)}$${'_'.repeat(v.source.length - 1)}${masked.slice(v.offset + v.source.length)}`;
    }
    current = parseDocument(masked, YAML_OPTIONS);
  }
  const others = (variables.length > 0 ? current : doc).errors.map(
    (e: YAMLError) =>
      new SluiceError('SLUICE_E_CONFIG', `YAML syntax: ${e.message.split('\n')[0]}`, {
        context: at(e.pos[0]),
      }),
  );
  const unquoted = variables.map((v) => {
    const place = flowPlace(current, v, text);
    return new SluiceError(
      'SLUICE_E_CONFIG',
      `${v.source} must be quoted inside a ${place.collection} (YAML reads the { of \${ there as the start of a map)`,
      { context: { ...at(v.offset), hint: `write ${place.fix}` } },
    );
  });
  return [...unquoted, ...others].sort(
    (a, b) =>
      (a.context.line ?? 0) - (b.context.line ?? 0) || (a.context.column ?? 0) - (b.context.column ?? 0),
  );
}

/** The flow collection a (blanked) variable sits in, and the value as it should be written. */
function flowPlace(
  doc: Document,
  { offset, source }: { offset: number; source: string },
  text: string,
): { collection: string; fix: string } {
  let place: { collection: string; fix: string } | undefined;
  visit(doc, {
    Scalar(_key, node, path) {
      const [start, end] = node.range ?? [0, 0];
      if (place || offset < start || offset >= end) return;
      const quoted = quote(text.slice(start, end));
      const parent = path[path.length - 1];
      const pair = isPair(parent) ? parent : undefined;
      const collection = pair ? path[path.length - 2] : parent;
      const name = isMap(collection) ? '{ … } map' : isSeq(collection) ? '[ … ] list' : 'flow collection';
      const key = pair && pair.value === node && isScalar(pair.key) ? `${String(pair.key.value)}: ` : '';
      place = { collection: name, fix: `${key}${quoted}` };
      return visit.BREAK;
    },
  });
  return place ?? { collection: '{ … } map or [ … ] list', fix: quote(source) };
}

function quote(value: string): string {
  return /["\\]/.test(value) ? `'${value.replaceAll("'", "''")}'` : `"${value}"`;
}
