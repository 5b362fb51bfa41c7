#!/usr/bin/env node
// Runs every benchmark script in turn; each writes its own section of bench/RESULTS.md.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir } from './lib/common.mjs';

const SCRIPTS = ['core.mjs', 'transforms.mjs', 'cluster.mjs'];
const args = process.argv.slice(2);
for (const script of SCRIPTS) {
  const path = join(benchDir, script);
  if (!existsSync(path)) continue;
  console.log(`\n== ${script}`);
  execFileSync('node', [path, ...args], { stdio: 'inherit' });
}
