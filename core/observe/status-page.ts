/**
 * The status page served at `/`: one self-contained HTML document that polls `/status` every
 * 2 s and renders each pipeline (state, throughput, in-flight items, recent failures, last
 * reload). Text is inserted with textContent only, so file names cannot inject markup.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sluice status</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#667085; --ok:#137a3a; --bad:#b42318; --warn:#b54708; --line:#e4e7ec; --bar:#2e6bd6; }
  @media (prefers-color-scheme: dark) { :root { --bg:#111418; --card:#1a1f26; --ink:#e6e9ef; --muted:#98a2b3; --line:#2b323c; --ok:#4ade80; --bad:#f87171; --warn:#fbbf24; --bar:#60a5fa; } }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:baseline; gap:1rem; padding:1rem 1.5rem; border-bottom:1px solid var(--line); }
  header h1 { font-size:1.2rem; margin:0; }
  header .meta { color:var(--muted); }
  main { padding:1rem 1.5rem; display:grid; gap:1rem; grid-template-columns:repeat(auto-fill, minmax(520px, 1fr)); }
  .card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem 1.2rem; }
  .head { display:flex; align-items:center; gap:.6rem; }
  .head h2 { font-size:1.1rem; margin:0; }
  .state { font-size:.75rem; font-weight:600; text-transform:uppercase; padding:.1rem .5rem; border-radius:999px; border:1px solid currentColor; }
  .state.running, .state.waiting, .state.finished { color:var(--ok); }
  .state.draining, .state.starting { color:var(--warn); }
  .state.invalid, .state.failed { color:var(--bad); }
  .state.stopped { color:var(--muted); }
  .sub { color:var(--muted); font-size:.85rem; margin:.2rem 0 .8rem; word-break:break-all; }
  .figures { display:grid; grid-template-columns:repeat(5, 1fr); gap:.5rem; margin-bottom:.8rem; }
  .fig { border:1px solid var(--line); border-radius:8px; padding:.4rem .6rem; }
  .fig b { display:block; font-size:1.25rem; }
  .fig span { color:var(--muted); font-size:.75rem; }
  .fig.bad b { color:var(--bad); }
  h3 { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:.8rem 0 .3rem; }
  table { width:100%; border-collapse:collapse; font-size:.85rem; }
  td { padding:.25rem .3rem; border-top:1px solid var(--line); vertical-align:top; word-break:break-all; }
  .progress { width:120px; height:8px; background:var(--line); border-radius:4px; overflow:hidden; }
  .progress div { height:100%; background:var(--bar); }
  .reason { color:var(--bad); }
  .none { color:var(--muted); font-style:italic; }
  .reload.ok { color:var(--ok); } .reload.invalid { color:var(--bad); white-space:pre-wrap; }
  #error { color:var(--bad); padding:0 1.5rem; }
</style>
</head>
<body>
<header><h1>Sluice</h1><span class="meta" id="meta">loading…</span></header>
<p id="error"></p>
<main id="pipelines"></main>
<script>
const el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
};
const bytes = (n) => { if (n < 1024) return n + ' B'; const u = ['KiB','MiB','GiB','TiB']; let i = -1; do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1); return n.toFixed(1) + ' ' + u[i]; };
const ago = (iso) => { if (!iso) return 'never'; const s = Math.round((Date.now() - Date.parse(iso)) / 1000); return s < 60 ? s + 's ago' : s < 3600 ? Math.round(s / 60) + 'm ago' : Math.round(s / 3600) + 'h ago'; };
const fig = (value, label, cls) => el('div', { class: 'fig' + (cls ? ' ' + cls : '') }, el('b', {}, value), el('span', {}, label));

function card(p) {
  const c = el('section', { class: 'card', 'data-pipeline': p.name });
  c.append(el('div', { class: 'head' }, el('h2', {}, p.name), el('span', { class: 'state ' + p.state }, p.state)));
  c.append(el('div', { class: 'sub' }, p.file + ' · version ' + (p.hash || '—') + ' · trigger ' + (p.trigger || '—') + (p.nextPassAt ? ' · next pass ' + new Date(p.nextPassAt).toLocaleTimeString() : '')));
  c.append(el('div', { class: 'figures' },
    fig(p.totals.ok, 'ok'), fig(p.totals.failed, 'failed', p.totals.failed ? 'bad' : ''), fig(p.totals.skipped, 'skipped'),
    fig(p.throughput.filesPerMinute, 'files/min'), fig(bytes(p.throughput.bytesPerSecond) + '/s', 'throughput')));
  c.append(el('div', { class: 'sub' }, 'bytes in ' + bytes(p.totals.bytesIn) + ' · out ' + bytes(p.totals.bytesOut) + ' · retries ' + p.totals.retries + ' · last success ' + ago(p.lastSuccessAt)));

  c.append(el('h3', {}, 'In flight (' + p.inFlightCount + ')'));
  if (p.inFlight.length === 0) c.append(el('div', { class: 'none' }, 'nothing in flight'));
  else c.append(el('table', { class: 'inflight' }, ...p.inFlight.map((i) => el('tr', {},
    el('td', {}, i.source + ':' + i.path),
    el('td', {}, i.progress === null ? bytes(i.bytesRead) : (() => { const b = el('div', { class: 'progress' }); b.append(el('div', { style: 'width:' + Math.round(i.progress * 100) + '%' })); return b; })()),
    el('td', {}, (i.ms / 1000).toFixed(1) + 's')))));

  c.append(el('h3', {}, 'Recent failures'));
  if (p.recentFailures.length === 0) c.append(el('div', { class: 'none' }, 'no failures'));
  else c.append(el('table', { class: 'failures' }, ...p.recentFailures.slice(0, 8).map((f) => el('tr', {},
    el('td', {}, f.source + ':' + f.path), el('td', { class: 'reason' }, '[' + f.code + '] ' + f.error), el('td', {}, ago(f.at))))));

  c.append(el('h3', {}, 'Last reload'));
  if (!p.lastReload) c.append(el('div', { class: 'none' }, 'none since start'));
  else c.append(el('div', { class: 'reload ' + p.lastReload.result },
    (p.lastReload.result === 'ok' ? 'ok → version ' + p.lastReload.hash : 'rejected, previous version kept: ' + p.lastReload.error) + ' (' + ago(p.lastReload.at) + ')'));
  if (p.lastError) c.append(el('div', { class: 'reason' }, 'last pass error: ' + p.lastError));
  return c;
}

async function refresh() {
  try {
    const res = await fetch('/status', { cache: 'no-store' });
    const s = await res.json();
    document.getElementById('error').textContent = '';
    document.getElementById('meta').textContent = 'v' + s.sluice.version + ' · ' + s.sluice.command + ' · pid ' + s.sluice.pid + ' · up ' + ago(s.sluice.startedAt).replace(' ago', '') + ' · updated ' + new Date().toLocaleTimeString();
    const main = document.getElementById('pipelines');
    main.replaceChildren(...s.pipelines.map(card));
    if (s.pipelines.length === 0) main.append(el('div', { class: 'none' }, 'no pipelines loaded'));
  } catch (err) {
    document.getElementById('error').textContent = 'cannot reach Sluice: ' + err;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
