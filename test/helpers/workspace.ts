/** Temp folders, files and pipelines for end-to-end tests. */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export interface Workspace {
  dir: string;
  path(...parts: string[]): string;
  write(rel: string, content: string | Buffer): string;
  pipeline(yaml: string, name?: string): string;
  files(rel: string): string[];
  read(rel: string): string;
  cleanup(): void;
}

export function makeWorkspace(prefix = 'sluice-e2e-'): Workspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = (...parts: string[]) => join(dir, ...parts);
  return {
    dir,
    path,
    write(rel, content) {
      const abs = path(rel);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, content);
      return abs;
    },
    pipeline(yaml, name = 'pipeline.yaml') {
      const abs = path(name);
      writeFileSync(abs, yaml);
      return abs;
    },
    files(rel) {
      return listFiles(path(rel));
    },
    read(rel) {
      return readFileSync(path(rel), 'utf8');
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The files a sink folder holds for its readers: `listFiles` without the local sink's temp
 * folder, where a write under way (or an attempt that failed a moment ago) has a file. What a
 * test waits for; what it asserts at the end stays `listFiles`, which shows a left temp file.
 */
export function deliveredFiles(root: string): string[] {
  return listFiles(root).filter((f) => !f.startsWith('.sluice-tmp/'));
}

/** All files under `root`, relative POSIX paths, sorted; [] when it does not exist. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries) {
      const abs = join(d, e);
      let isDir: boolean;
      try {
        isDir = statSync(abs).isDirectory();
      } catch {
        continue; // removed while we listed (a running pipeline moves files away)
      }
      if (isDir) walk(abs);
      else out.push(relative(root, abs).split('\\').join('/'));
    }
  };
  walk(root);
  return out.sort();
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return sha256(readFileSync(path));
}
