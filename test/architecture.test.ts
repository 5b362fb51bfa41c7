/**
 * The import direction of docs/architecture.md (rules in .dependency-cruiser.cjs): a change
 * that imports against it — a plugin reaching past the kernel, the runtime importing cluster
 * code, a store importing the runtime — fails here, naming the file and the import.
 */
import { createRequire } from 'node:module';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import { expect, it } from 'vitest';

const require = createRequire(import.meta.url);

it('imports flow one way: cli → runtime / cluster → config, ledger, observe → the plugin kernel; plugins → the kernel', async () => {
  const config = require('../.dependency-cruiser.cjs');
  const result = await cruise(['core', 'plugins'], { ruleSet: config, validate: true, ...config.options });
  const output = result.output as ICruiseResult;
  const violations = output.summary.violations.map((v) =>
    v.cycle?.length
      ? `${v.rule.name}: ${v.from} → ${v.cycle.map((c) => c.name).join(' → ')}`
      : `${v.rule.name}: ${v.from} → ${v.to}`,
  );
  expect(violations).toEqual([]);
  // The rules bite: the cruise saw the whole tree.
  expect(output.summary.totalCruised).toBeGreaterThan(100);
}, 60_000);
