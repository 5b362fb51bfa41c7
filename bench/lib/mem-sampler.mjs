// Preloaded with `node --import` (bench/rss.mjs): samples process.memoryUsage() every 20 ms and,
// at exit, appends the peak of each field (bytes) as one JSON line to $BENCH_MEM_OUT.
import { appendFileSync } from 'node:fs';

const out = process.env.BENCH_MEM_OUT;
if (out) {
  const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  /** memoryUsage() at the moment RSS peaked. */
  let atPeak = {};
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
    if (m.rss >= peak.rss) atPeak = m;
  };
  // BENCH_MEM_GC=1 (with --expose-gc): a full GC before every 10th sample, so `livePeak` is what
  // survives a collection (live data) and the difference from `peak` is garbage not yet collected.
  const livePeak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  let n = 0;
  const collect = process.env.BENCH_MEM_GC && typeof globalThis.gc === 'function';
  sample();
  setInterval(() => {
    if (collect && ++n % 10 === 0) {
      globalThis.gc();
      const m = process.memoryUsage();
      for (const k of Object.keys(livePeak)) livePeak[k] = Math.max(livePeak[k], m[k]);
    }
    sample();
  }, 20).unref();
  process.on('exit', () => {
    sample();
    appendFileSync(out, `${JSON.stringify({ peak, atPeak, ...(collect ? { livePeak } : {}) })}\n`);
  });
}
