/** Where a JSON path points in a YAML document, for `file:line:col` in error messages. */
import { type Document, isAlias, isCollection, isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';

/**
 * Offset of the node at `segments` (or of its key), or of its nearest existing ancestor. A key
 * a map takes from a merge key (`<<: *conn`) is found where the anchor defines it (`doc`
 * resolves the alias).
 */
export function nodeOffset(root: Node | null, segments: string[], atKey = false, doc?: Document): number {
  let node: Node | null = root;
  let offset = root?.range?.[0] ?? 0;
  for (const [index, seg] of segments.entries()) {
    if (!node || !isCollection(node)) break;
    let next: unknown;
    if (isSeq(node)) next = node.items[Number(seg)];
    else if (isMap(node)) {
      const pair = findPair(node.items as Pair[], seg, doc);
      if (!pair) break;
      // Point at the key when asked or when the value is empty (`decompress:`), else at the value.
      next = pair.value ?? pair.key;
      if ((!pair.value || (atKey && index === segments.length - 1)) && isScalar(pair.key)) {
        offset = pair.key.range?.[0] ?? offset;
        node = null;
        break;
      }
    }
    if (!next || typeof next !== 'object') break;
    node = next as Node;
    offset = node.range?.[0] ?? offset;
  }
  return offset;
}

/** The pair of key `seg`: the map's own, else the first merged map's that has it (YAML's order). */
function findPair(items: Pair[], seg: string, doc: Document | undefined, depth = 0): Pair | undefined {
  const own = items.find(
    (p) => isScalar(p.key) && typeof p.key.value !== 'symbol' && String(p.key.value) === seg,
  );
  if (own || !doc || depth > 16) return own;
  for (const merge of items.filter((p) => isScalar(p.key) && typeof p.key.value === 'symbol')) {
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
    for (const source of sources) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      if (!isMap(target)) continue;
      const found = findPair(target.items as Pair[], seg, doc, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}
