import { SluiceError } from '../../errors.js';
import { nearest } from '../../registry.js';
import { pluginMarkdown } from '../../schema-gen.js';
import { builtinRegistry } from '../../sdk.js';
import { EXIT } from '../exit-codes.js';

export async function pluginsCommand(name: string | undefined): Promise<number> {
  const registry = builtinRegistry();
  if (!name) {
    for (const [role, title] of [
      ['source', 'Sources'],
      ['step', 'Steps'],
      ['sink', 'Sinks'],
    ] as const) {
      process.stdout.write(`${title}:\n`);
      for (const n of registry.names(role)) {
        const p = registry.get(role, n)!;
        process.stdout.write(`  ${n.padEnd(18)} ${p.kind === role ? '' : `[${p.kind}] `}${p.summary}\n`);
      }
    }
    process.stdout.write('\nsluice plugins <name> shows one plugin’s configuration.\n');
    return EXIT.ok;
  }
  const found = (['source', 'step', 'sink'] as const)
    .map((r) => registry.get(r, name))
    .filter((p) => p !== undefined);
  if (found.length === 0) {
    const all = registry.all().map((p) => p.name);
    const guess = nearest(name, all);
    throw new SluiceError('SLUICE_E_UNKNOWN_PLUGIN', `no plugin named "${name}"`, {
      context: { hint: guess ? `did you mean "${guess}"?` : 'see sluice plugins' },
    });
  }
  for (const p of found) process.stdout.write(`${pluginMarkdown(p)}\n`);
  return EXIT.ok;
}
