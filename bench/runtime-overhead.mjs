// The runtime's own CPU per item, without any file-system or network work: N listed items go
// from an in-memory source to an in-memory sink (a server-side `copy`, as local → local takes)
// through the real runner, a real SQLite ledger and a pino logger at `warn` (as `--quiet`).
// What it measures is the per-item JavaScript of listing, ledger, delivery, verify, finalize,
// events and summary — the part of the small-files row that is not syscalls.
//
// Usage: npm run build && node bench/runtime-overhead.mjs [items=50000] [rounds=5] [--profile]
// Prints the main thread's CPU (user + system) per item, median of the rounds.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
/** `--pace-ms=N`: each copy takes N ms (a timer), as a sink's file-system calls do: at 16 in flight and 5 ms, ~3,000 items a second, the pace the ledger batches see in the small-files row. */
const pace = Number(process.argv.find((a) => a.startsWith('--pace-ms='))?.slice(10) ?? 0);
/** Several builds side by side (SLUICE_DIST=dist,.base/dist), their rounds alternated in this one process. */
const dists = (process.env.SLUICE_DIST ?? 'dist').split(',');
const builds = [];
for (const d of dists) builds.push({ name: d, ...(await load(d)) });

async function load(d) {
  const dist = join(fileURLToPath(new URL('.', import.meta.url)), '..', d);
  const sdk = await import(join(dist, 'core', 'sdk.js'));
  const { createLogger } = await import(join(dist, 'core', 'observe', 'log.js'));
  const registry = sdk.builtinRegistry().extend([
    { plugin: memSource(sdk), origin: 'bench' },
    { plugin: memSink(sdk), origin: 'bench' },
  ]);
  return { sdk, registry, log: createLogger({ format: 'json', level: 'warn' }).logger };
}

const items = Number(args[0] ?? 50000);
const rounds = Number(args[1] ?? 5);
const body = Buffer.alloc(4096, 'x');
const mtime = new Date(1_700_000_000_000);

function memSource({ Type, definePlugin, createItem }) {
  return definePlugin({
    name: 'mem',
    kind: 'source',
    summary: 'bench: N items in memory',
    config: Type.Object({ count: Type.Number() }, { additionalProperties: false }),
    async create(cfg) {
      return {
        async *list() {
          for (let i = 0; i < cfg.count; i++) {
            const path = `d${i % 100}/f${i}.dat`;
            yield createItem({
              source: 'mem',
              path,
              size: body.length,
              mtime,
              origin: { kind: 'mem', location: { path } },
              open: async () => Readable.from([body]),
            });
          }
        },
        async readAll() {
          return body;
        },
      };
    },
  });
}

function memSink({ Type, definePlugin }) {
  return definePlugin({
    name: 'memsink',
    kind: 'sink',
    summary: 'bench: commits nothing, reports what a local sink reports',
    config: Type.Object(
      { path: Type.String(), verify: Type.Optional(Type.String()) },
      { additionalProperties: false },
    ),
    copies: (_cfg, item) => item.origin?.kind === 'mem',
    async create(cfg) {
      return {
        async copy(item, destination) {
          if (pace > 0) await new Promise((resolve) => setTimeout(resolve, pace));
          return { location: `${cfg.path}/${destination}`, size: item.size, mtime: item.mtime };
        },
        async writeBuffer(req) {
          return { location: `${cfg.path}/${req.destination}`, size: req.data.length, mtime: req.item.mtime };
        },
        async write(req) {
          let n = 0;
          for await (const c of req.body) n += c.length;
          return { location: `${cfg.path}/${req.destination}`, size: n, mtime: req.item.mtime };
        },
      };
    },
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const dir = mkdtempSync(join(tmpdir(), 'sluice-overhead-'));
const file = join(dir, 'p.yaml');
writeFileSync(
  file,
  `name: overhead\nsource:\n  mem: { count: ${items} }\nsink:\n  memsink: { path: /out }\npolicy:\n  concurrency: 16\n`,
);
for (const b of builds) Object.assign(b, { cpu: [], wall: [] });
try {
  for (let r = 0; r <= rounds; r++) {
    for (const b of r % 2 ? [...builds].reverse() : builds) {
      rmSync(join(dir, 'state'), { recursive: true, force: true });
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const summary = await b.sdk.runPipelineFile(file, {
        registry: b.registry,
        stateDir: join(dir, 'state'),
        log: b.log,
        force: true,
        pool: undefined,
      });
      const c = process.cpuUsage(c0);
      const ms = performance.now() - t0;
      if (summary.ok !== items)
        throw new Error(`expected ${items} ok, got ${JSON.stringify(summary).slice(0, 400)}`);
      if (r === 0) continue; // warm-up
      b.cpu.push((c.user + c.system) / items);
      b.wall.push((ms * 1000) / items);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const b of builds)
  console.log(
    `${b.name}: runtime overhead, ${items} items${pace ? `, each copy ${pace} ms` : ''}: CPU ${median(b.cpu).toFixed(1)} µs/item (rounds ${b.cpu.map((x) => x.toFixed(1)).join(' ')}), wall ${median(b.wall).toFixed(1)} µs/item`,
  );
