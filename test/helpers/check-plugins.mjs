// Test plugins for pre-flight checks: a sink (files under `path`, temp + rename) whose `check`
// passes, fails with a reason and a hint, fails while a file `<path>/../locked` exists, hangs,
// or does not exist, as its config says. Every
// check it is asked for is appended to `<path>/../checks.log` (its depth), so a test sees when
// and how deep the runtime checked.
import { createHash } from 'node:crypto';
import { access, appendFile, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { definePlugin, Secret, SluiceError, Type } from 'sluice';

export const probeSink = definePlugin({
  name: 'probe_sink',
  kind: 'sink',
  summary: 'Writes files under `path`; its pre-flight check does what `check` says (test fixture).',
  config: Type.Object(
    {
      path: Type.String(),
      check: Type.Union(
        ['ok', 'fail', 'locked', 'hang', 'none'].map((v) => Type.Literal(v)),
        {
          default: 'ok',
        },
      ),
      password: Type.Optional(Secret(Type.String())),
      host: Type.Optional(Type.String()),
      port: Type.Optional(Type.Integer()),
      /** Creating the instance takes this long (a slow login); its close is logged to closes.log. */
      create_ms: Type.Optional(Type.Integer()),
    },
    { additionalProperties: false },
  ),
  async create(config, ctx) {
    const root = resolve(ctx.baseDir, config.path);
    if (config.create_ms) await new Promise((r) => setTimeout(r, config.create_ms));
    const instance = {
      async close() {
        if (config.create_ms) {
          await mkdir(dirname(root), { recursive: true });
          await appendFile(join(dirname(root), 'closes.log'), 'closed\n');
        }
      },
      async write(req) {
        const chunks = [];
        for await (const c of req.body) chunks.push(c);
        const data = Buffer.concat(chunks);
        const dest = join(root, req.destination);
        await mkdir(dirname(dest), { recursive: true });
        const temp = `${dest}.tmp-${process.pid}`;
        await writeFile(temp, data);
        await rename(temp, dest);
        return { location: dest, size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
      },
    };
    if (config.check === 'none') return instance;
    instance.check = async ({ depth, signal }) => {
      await mkdir(dirname(root), { recursive: true });
      await appendFile(join(dirname(root), 'checks.log'), `${depth}\n`);
      if (config.check === 'hang')
        await new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      const locked = await access(join(dirname(root), 'locked')).then(
        () => true,
        () => false,
      );
      if (config.check === 'fail' || (config.check === 'locked' && locked))
        throw new SluiceError(
          'SLUICE_E_SINK',
          `login refused for ${config.password ?? 'nobody'} at ${config.host}`,
          {
            context: { hint: 'check the user and password of the connection' },
          },
        );
      await mkdir(root, { recursive: true });
      if (depth === 'cheap') return { detail: `folder ${config.path} exists` };
      const probe = join(root, `.sluice-check-${process.pid}`);
      await writeFile(probe, 'probe');
      await rm(probe);
      return {
        detail: `folder ${config.path} listed (${(await readdir(root)).length} entries), probe written and removed`,
      };
    };
    return instance;
  },
});
