/** Where a JSON path points in a YAML document, for `file:line:col` in error messages. */
import { isCollection, isMap, isScalar, isSeq, type Node } from 'yaml';

export /** Offset of the node at `segments` (or of its key), or of its nearest existing ancestor. */
function nodeOffset(root: Node | null, segments: string[], atKey = false): number {
  let node: Node | null = root;
  let offset = root?.range?.[0] ?? 0;
  for (const [index, seg] of segments.entries()) {
    if (!node || !isCollection(node)) break;
    let next: unknown;
    if (isSeq(node)) next = node.items[Number(seg)];
    else if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
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
