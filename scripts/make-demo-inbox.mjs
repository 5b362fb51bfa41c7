#!/usr/bin/env node
// Makes the sample drops for pipelines/local-demo.yaml in pipelines/demo/inbox: dated CSV/TSV
// files, a PDF, undated and other files, and archives (.csv.gz, .tar.gz, .zip) made with the
// real tools. Leaves an existing inbox alone (so a second `sluice run` has nothing new);
// `--reset` makes it anew; `--dir D` writes into D/inbox instead.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const dirArg = process.argv.indexOf('--dir');
const root =
  dirArg > 0
    ? process.argv[dirArg + 1]
    : join(dirname(fileURLToPath(import.meta.url)), '..', 'pipelines', 'demo');
const inbox = join(root, 'inbox');
if (process.argv.includes('--reset')) rmSync(root, { recursive: true, force: true });
if (existsSync(inbox)) {
  console.log(`demo inbox exists: ${inbox} (use --reset to make it anew)`);
  process.exit(0);
}

const csv = (rows) =>
  `id,amount,when\n${Array.from({ length: rows }, (_, i) => `${i},${(i * 3.7).toFixed(2)},2024-03-${String((i % 28) + 1).padStart(2, '0')}`).join('\n')}\n`;
const put = (rel, data) => {
  const abs = join(inbox, rel);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, data);
};

put('sales-2024-03-15.csv', csv(50));
put('20240401_inventory.tsv', 'sku\tqty\nA-1\t4\nB-2\t9\n');
put('partners/acme/orders_20240502.csv', csv(20));
put('manual.pdf', '%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
put('notes.csv', 'undated,file\n');
put('readme-2024-06-30.txt', 'A text file with a date in its name.\n');
put('exports/ledger-2024-02-29.csv.gz', gzipSync(csv(200)));

// A tar.gz and a zip, each with dated entries, made by the real tools.
const staging = join(root, 'staging');
mkdirSync(join(staging, 'batch'), { recursive: true });
writeFileSync(join(staging, 'batch', 'returns-2024-07-01.csv'), csv(30));
writeFileSync(join(staging, 'batch', 'summary-2024-07-01.pdf'), '%PDF-1.4\n%%EOF\n');
writeFileSync(join(staging, 'batch', 'logo.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
execFileSync('tar', ['-czf', join(inbox, 'batch-2024-07-01.tar.gz'), '-C', staging, 'batch']);
mkdirSync(join(staging, 'month'), { recursive: true });
writeFileSync(join(staging, 'month', 'invoices-2024-08-31.csv'), csv(40));
writeFileSync(join(staging, 'month', 'statement 2024-08.pdf'), '%PDF-1.4\n%%EOF\n');
try {
  execFileSync('zip', ['-qr', join(inbox, 'month-2024-08.zip'), 'month'], { cwd: staging });
} catch {
  console.log('(zip not installed: the demo has no .zip archive)');
}
rmSync(staging, { recursive: true, force: true });
console.log(`demo inbox ready: ${inbox}`);
