/**
 * The source of a third-party step plugin (written to `slow.mjs` beside a test's pipelines): it
 * takes `ms` per item and refuses items whose path contains `fail`, so a run lasts long enough
 * to be followed, queued or cancelled, and ends with a known failure.
 */
export const SLOW_PLUGIN = `export default {
  apiVersion: 1, name: 'slow', kind: 'step', summary: 'test: waits per item',
  config: { type: 'object', properties: { ms: { type: 'integer' }, fail: { type: 'string' } }, additionalProperties: false },
  create(cfg) {
    return { async process(item) {
      await new Promise((r) => setTimeout(r, cfg.ms));
      if (item.path.includes(cfg.fail)) throw new Error('refused by the test: ' + item.path);
      return item;
    } };
  },
};
`;
