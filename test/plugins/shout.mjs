// An example third-party plugin, loaded from YAML by `plugins: [../plugins/shout.mjs]`.
// It uses only the public SDK ("sluice"), as a plugin published on npm would.
import { Transform } from 'node:stream';
import { definePlugin, deriveItem, pipeThrough, Type } from 'sluice';

export default definePlugin({
  name: 'shout',
  kind: 'transform',
  summary: 'Upper-cases text files and adds a suffix to their name.',
  config: Type.Object(
    { suffix: Type.String({ default: '.loud', description: 'Appended to the file name.' }) },
    { additionalProperties: false },
  ),
  create(config) {
    return {
      process(item) {
        return deriveItem(item, {
          path: item.path + config.suffix,
          open: async (signal) =>
            pipeThrough(
              await item.open(signal),
              new Transform({
                transform(chunk, _enc, cb) {
                  cb(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'));
                },
              }),
            ),
        });
      },
    };
  },
});
