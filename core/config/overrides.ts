/**
 * `--set PATH=VALUE`: one pipeline key changed for one run, without editing the file
 * (`--set policy.concurrency=50`, `--set 'steps[0].filter.min_size=5MiB'`). The value is YAML,
 * set into the parsed document before interpolation and validation, so it is checked like the
 * file; a problem in it names the flag instead of a line of the file.
 */
import { type Document, isCollection, isMap, isSeq, parse } from 'yaml';
import { SluiceError } from '../errors.js';
import { escapePointer } from './validate.js';

export interface Override {
  /** The flag as given, for messages. */
  flag: string;
  path: Array<string | number>;
  value: unknown;
  /** JSON pointer of the key it sets. */
  pointer: string;
}

const SEGMENT = /^([A-Za-z0-9_-]+)((?:\[\d+\])*)$/;

/** `a.b[0].c=VALUE` → an override; a malformed flag is a usage error naming it. */
export function parseOverride(flag: string): Override {
  const eq = flag.indexOf('=');
  const bad = (why: string) =>
    new SluiceError('SLUICE_E_USAGE', `--set ${flag}: ${why}`, {
      context: {
        hint: "write --set PATH=VALUE, e.g. --set policy.concurrency=8 or --set 'steps[0].filter.min_size=5MiB'",
      },
    });
  if (eq <= 0) throw bad('expected PATH=VALUE');
  const path: Array<string | number> = [];
  for (const part of flag.slice(0, eq).trim().split('.')) {
    const m = SEGMENT.exec(part);
    if (!m) throw bad(`"${part}" is not a key (letters, digits, _ and -, then [N] for a list item)`);
    path.push(m[1]);
    for (const index of m[2].matchAll(/\[(\d+)\]/g)) path.push(Number(index[1]));
  }
  let value: unknown;
  try {
    value = parse(flag.slice(eq + 1));
  } catch (err) {
    throw bad(`the value is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const pointer = path.map((s) => `/${escapePointer(String(s))}`).join('');
  return { flag, path, value, pointer };
}

export function parseOverrides(flags: string | string[] | undefined): Override[] {
  const list = flags === undefined ? [] : Array.isArray(flags) ? flags : [flags];
  return list.map((f) => parseOverride(String(f)));
}

/**
 * Sets each override into `doc`. Missing maps on the way are created (`policy.retry` when the
 * file has no `policy:`); a list index must exist, and a path cannot go through a scalar.
 */
export function applyOverrides(doc: Document, overrides: Override[]): SluiceError[] {
  const errors: SluiceError[] = [];
  for (const o of overrides) {
    let node: unknown = doc.contents;
    let broken: string | undefined;
    for (const [i, seg] of o.path.slice(0, -1).entries()) {
      if (node === null || node === undefined) break;
      if (typeof seg === 'number') {
        if (!isSeq(node)) broken = `${shown(o.path, i)} is not a list`;
        else if (seg >= node.items.length)
          broken = `${shown(o.path, i)} has ${node.items.length} item${node.items.length === 1 ? '' : 's'}; there is no [${seg}]`;
      } else if (node !== undefined && !isMap(node)) {
        broken = `${shown(o.path, i)} is not a map`;
      }
      if (broken) break;
      node = isCollection(node) ? node.get(seg, true) : undefined;
    }
    const last = o.path[o.path.length - 1];
    if (!broken && typeof last === 'number') {
      if (!isSeq(node)) broken = `${shown(o.path, o.path.length - 1)} is not a list`;
      else if (last >= node.items.length)
        broken = `${shown(o.path, o.path.length - 1)} has no item [${last}]`;
    } else if (!broken && node !== undefined && node !== null && !isMap(node)) {
      broken = `${shown(o.path, o.path.length - 1)} is not a map`;
    }
    if (broken) {
      errors.push(new SluiceError('SLUICE_E_USAGE', `--set ${o.flag}: ${broken}`));
      continue;
    }
    doc.setIn(o.path, doc.createNode(o.value));
  }
  return errors;
}

/** `steps[0].filter` for the first `n` segments. */
function shown(path: Array<string | number>, n: number): string {
  return (
    path
      .slice(0, n)
      .map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`))
      .join('') || 'the file'
  );
}

/** The override a problem at `pointer` comes from (the last one that set it or a key above it). */
export function overrideAt(overrides: Override[], pointer: string): Override | undefined {
  return [...overrides].reverse().find((o) => pointer === o.pointer || pointer.startsWith(`${o.pointer}/`));
}
