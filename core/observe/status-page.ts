/**
 * The status page served at `/`: one self-contained HTML document that polls `/status` and
 * `/api/runs` (every second while a pass runs, else every 2 s) and renders each pipeline (state,
 * throughput, the last pass apart from the last delivery, the pass in progress with percent and
 * ETA, in-flight items, recent failures one row per file with a count, the last reload, recent
 * runs, parked files with "Retry" and "Retry all") with a "Run now" button (the control API; the
 * token is asked once and kept in sessionStorage, so it leaves with the tab). Readable from a
 * phone (390 px) to a desktop: times never wrap, rows become lines on narrow screens. Text is
 * inserted with textContent only, so file names cannot inject markup.
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
  header { display:flex; flex-wrap:wrap; align-items:baseline; gap:.2rem 1rem; padding:1rem 1.5rem; border-bottom:1px solid var(--line); }
  header h1 { font-size:1.2rem; margin:0; }
  header .meta { color:var(--muted); }
  main { padding:1rem 1.5rem; display:grid; gap:1rem; grid-template-columns:repeat(auto-fill, minmax(min(520px, 100%), 1fr)); }
  .card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem 1.2rem; }
  .head { display:flex; flex-wrap:wrap; align-items:center; gap:.6rem; }
  .head h2 { font-size:1.1rem; margin:0; }
  .state { font-size:.75rem; font-weight:600; text-transform:uppercase; padding:.1rem .5rem; border-radius:999px; border:1px solid currentColor; }
  .state.running, .state.waiting, .state.finished { color:var(--ok); }
  .state.draining, .state.starting { color:var(--warn); }
  .state.invalid, .state.failed { color:var(--bad); }
  .state.stopped { color:var(--muted); }
  .sub { color:var(--muted); font-size:.85rem; margin:.2rem 0 .8rem; overflow-wrap:anywhere; }
  .figures { display:grid; grid-template-columns:repeat(auto-fit, minmax(88px, 1fr)); gap:.5rem; margin-bottom:.8rem; }
  .fig { border:1px solid var(--line); border-radius:8px; padding:.4rem .6rem; }
  .fig b { display:block; font-size:1.25rem; }
  .fig span { color:var(--muted); font-size:.75rem; }
  .fig.bad b { color:var(--bad); }
  h3 { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:.8rem 0 .3rem; }
  table { width:100%; border-collapse:collapse; font-size:.85rem; }
  td { padding:.25rem .3rem; border-top:1px solid var(--line); vertical-align:top; overflow-wrap:anywhere; }
  /* Times and counts never wrap (a narrow column broke "11s ago" letter by letter). */
  td.when { white-space:nowrap; width:1%; color:var(--muted); }
  .count { display:inline-block; margin-left:.4rem; padding:0 .4rem; border-radius:999px; background:var(--line); font-size:.75rem; white-space:nowrap; }
  .progress { width:120px; height:8px; background:var(--line); border-radius:4px; overflow:hidden; }
  .progress div { height:100%; background:var(--bar); }
  .reason { color:var(--bad); }
  .none { color:var(--muted); font-style:italic; }
  .reload.ok, .reload.unchanged { color:var(--ok); } .reload.invalid { color:var(--bad); white-space:pre-wrap; overflow-wrap:anywhere; }
  #error { color:var(--bad); padding:0 1.5rem; }
  .head button { margin-left:auto; font:inherit; font-size:.85rem; padding:.25rem .8rem; border-radius:6px; border:1px solid var(--bar); background:var(--bar); color:#fff; cursor:pointer; }
  .head button:disabled { opacity:.5; cursor:default; }
  .pass { margin:.2rem 0 .8rem; }
  .pass .bar { height:14px; background:var(--line); border-radius:7px; overflow:hidden; }
  .pass .bar div { height:100%; background:var(--bar); transition:width .4s; }
  .pass .label { font-size:.85rem; color:var(--muted); margin-top:.2rem; }
  .outcome { font-weight:600; }
  .outcome.succeeded { color:var(--ok); } .outcome.failed { color:var(--bad); } .outcome.cancelled, .outcome.queued { color:var(--warn); } .outcome.running, .outcome.listing { color:var(--bar); }
  .notice { color:var(--muted); font-size:.85rem; }
  button.retry { font:inherit; font-size:.75rem; padding:.1rem .6rem; border-radius:6px; border:1px solid var(--bar); background:transparent; color:var(--bar); cursor:pointer; text-transform:none; letter-spacing:0; }
  button.retry:disabled { opacity:.5; cursor:default; }
  table.parked td:nth-child(n+3) { white-space:nowrap; overflow-wrap:normal; width:1%; }
  /* A phone: less padding, and table rows as wrapping lines (the reason on a line of its own). */
  @media (max-width: 640px) {
    header, main { padding:.75rem; }
    #error { padding:0 .75rem; }
    .card { padding:.8rem; }
    table, tbody { display:block; }
    tr { display:flex; flex-wrap:wrap; align-items:baseline; gap:0 .6rem; border-top:1px solid var(--line); padding:.3rem 0; }
    td { display:block; border-top:0; padding:0; }
    td:first-child { flex:1 1 12rem; }
    td.reason { flex-basis:100%; order:5; }
    td.when, table.parked td:nth-child(n+3) { width:auto; }
  }
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
const TOKEN_KEY = 'sluice.apiToken';
const notices = {};
// The token is asked once per tab; a request that needs it retries once after asking.
async function call(path, init, ask) {
  const headers = Object.assign({}, (init || {}).headers);
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (!token && ask) { token = prompt('Sluice API token (--api-token-file / SLUICE_API_TOKEN)'); if (token) sessionStorage.setItem(TOKEN_KEY, token); }
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(path, Object.assign({ cache: 'no-store' }, init, { headers }));
  if (res.status === 401 && ask !== false) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (!ask) return call(path, init, true);
  }
  return res;
}
// "Run now" (route runs, body {}) and "Retry" (route retry, body {paths} or {all}) start a run alike.
async function ask(name, button, route, request, what) {
  button.disabled = true;
  try {
    const res = await call('/api/pipelines/' + encodeURIComponent(name) + '/' + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) }, true);
    const body = await res.json().catch(() => ({}));
    notices[name] = res.status === 202 ? (body.reopened ? body.reopened.length + ' parked item(s) re-opened; ' : '') + 'run ' + body.run_id.slice(0, 8) + ' asked for at ' + new Date().toLocaleTimeString() : what + ' refused (' + res.status + '): ' + (body.error || res.statusText) + (body.details ? ' — ' + body.details.join('; ') : '');
  } catch (err) {
    notices[name] = what + ' failed: ' + err;
  }
  refresh();
}
const runNow = (name, button) => ask(name, button, 'runs', {}, 'run');
const retryButton = (name, label, request, title) => { const b = el('button', { class: 'retry', type: 'button', title }, label); b.addEventListener('click', () => ask(name, b, 'retry', request, 'retry')); return b; };
const secs = (n) => n === null || n === undefined ? '—' : n < 60 ? n + 's' : n < 3600 ? Math.floor(n / 60) + 'm ' + (n % 60) + 's' : Math.floor(n / 3600) + 'h ' + Math.floor((n % 3600) / 60) + 'm';
// "nothing new" (a pass that found nothing to do) is not "never delivered": both are said.
const lastPassText = (p) => {
  const l = p.lastPass;
  if (!l) return p.currentPass ? 'in progress' : 'none yet';
  const what = l.ok + l.failed === 0 ? 'nothing new' + (l.skipped ? ' (' + l.skipped + ' done before)' : '') : l.ok + ' delivered' + (l.failed ? ', ' + l.failed + ' failed' : '');
  return what + (l.endedAt ? ', ' + ago(l.endedAt) : '');
};
const fig = (value, label, cls) => el('div', { class: 'fig' + (cls ? ' ' + cls : '') }, el('b', {}, value), el('span', {}, label));

function card(p, runs) {
  const c = el('section', { class: 'card', 'data-pipeline': p.name });
  const button = el('button', { class: 'run-now', type: 'button', title: 'Start a run of ' + p.name + ' (queued behind the pass in progress)' }, 'Run now');
  button.addEventListener('click', () => runNow(p.name, button));
  c.append(el('div', { class: 'head' }, el('h2', {}, p.name), el('span', { class: 'state ' + p.state }, p.state), button));
  if (notices[p.name]) c.append(el('div', { class: 'notice' }, notices[p.name]));
  c.append(el('div', { class: 'sub' }, p.file + ' · version ' + (p.hash || '—') + ' · trigger ' + (p.trigger || '—') + (p.nextPassAt ? ' · next pass ' + new Date(p.nextPassAt).toLocaleTimeString() : '')));
  c.append(el('div', { class: 'figures' },
    fig(p.totals.ok, 'ok'), fig(p.totals.failed, 'failed', p.totals.failed ? 'bad' : ''), fig(p.totals.skipped, 'skipped'),
    fig(p.throughput.filesPerMinute, 'files/min'), fig(bytes(p.throughput.bytesPerSecond) + '/s', 'throughput')));
  c.append(el('div', { class: 'sub' }, 'bytes in ' + bytes(p.totals.bytesIn) + ' · out ' + bytes(p.totals.bytesOut) + ' · retries ' + p.totals.retries));
  c.append(el('div', { class: 'sub lastpass' }, 'last pass: ' + lastPassText(p) + ' · last delivered: ' + ago(p.lastSuccessAt)));

  // The pass in progress; between passes, the last run asked for (so its bar is seen at its end).
  const lastRun = runs === null ? undefined : runs.find((r) => r.pipeline === p.name);
  const bar = (percent) => { const b = el('div', { class: 'bar' }); b.append(el('div', { style: 'width:' + percent + '%' })); return b; };
  if (p.currentPass) {
    const cp = p.currentPass;
    c.append(el('h3', {}, 'Pass in progress'), el('div', { class: 'pass', 'data-percent': String(cp.percent) }, bar(cp.percent),
      el('div', { class: 'label' }, (cp.total === null ? 'listing… ' + (cp.done + cp.failed + cp.skipped) + ' handled' : cp.percent + ' % · ' + (cp.done + cp.failed + cp.skipped) + ' of ' + cp.total) + ' · ETA ' + secs(cp.etaSeconds) + ' · ' + bytes(cp.bytesPerSecond) + '/s' + (p.queuedRuns ? ' · ' + p.queuedRuns + ' run(s) queued' : ''))));
  } else if (lastRun && lastRun.ended_at) {
    c.append(el('h3', {}, 'Last run'), el('div', { class: 'pass', 'data-percent': String(lastRun.percent) }, bar(lastRun.percent),
      el('div', { class: 'label' }, lastRun.percent + ' % · ' + lastRun.state + ' · ' + lastRun.done + ' ok, ' + lastRun.failed + ' failed · ended ' + ago(lastRun.ended_at))));
  }
  c.append(el('h3', {}, 'In flight (' + p.inFlightCount + ')'));
  if (p.inFlight.length === 0) c.append(el('div', { class: 'none' }, 'nothing in flight'));
  else c.append(el('table', { class: 'inflight' }, ...p.inFlight.map((i) => el('tr', {},
    el('td', {}, i.source + ':' + i.path),
    el('td', {}, i.progress === null ? bytes(i.bytesRead) : (() => { const b = el('div', { class: 'progress' }); b.append(el('div', { style: 'width:' + Math.round(i.progress * 100) + '%' })); return b; })()),
    el('td', { class: 'when' }, (i.ms / 1000).toFixed(1) + 's')))));

  c.append(el('h3', {}, 'Recent failures'));
  if (p.recentFailures.length === 0) c.append(el('div', { class: 'none' }, 'no failures'));
  // One row per file: its latest failure, and how often it failed since when.
  else c.append(el('table', { class: 'failures' }, ...p.recentFailures.slice(0, 8).map((f) => el('tr', { 'data-path': f.source + ':' + f.path },
    el('td', {}, f.source + ':' + f.path, f.count > 1 ? el('span', { class: 'count', title: 'failed ' + f.count + ' times since ' + new Date(f.firstAt).toLocaleString() }, '×' + f.count) : null),
    el('td', { class: 'reason' }, '[' + f.code + '] ' + f.error), el('td', { class: 'when' }, ago(f.at))))));

  // Parked: held back after failing for good, until they change or are retried (each listed once).
  const parked = p.parked || { count: 0, items: [] };
  if (parked.count > 0) {
    c.append(el('h3', { class: 'parked-head' }, 'Parked (' + parked.count + ') ', retryButton(p.name, 'Retry all', { all: true }, 'Re-open every parked item of ' + p.name + ' and start a run')));
    c.append(el('table', { class: 'parked' }, ...parked.items.map((i) => el('tr', { 'data-path': i.source + ':' + i.path },
      el('td', {}, i.source + ':' + i.path), el('td', { class: 'reason' }, i.error), el('td', { class: 'when', title: i.since }, 'since ' + ago(i.since)),
      el('td', {}, retryButton(p.name, 'Retry', { paths: [i.source + ':' + i.path] }, 'Re-open ' + i.path + ' and start a run'))))));
    if (parked.count > parked.items.length) c.append(el('div', { class: 'none' }, '… and ' + (parked.count - parked.items.length) + ' more (Retry all takes them too; sluice history --state failed lists them)'));
  }

  c.append(el('h3', {}, 'Last reload'));
  if (!p.lastReload) c.append(el('div', { class: 'none' }, 'none since start'));
  else c.append(el('div', { class: 'reload ' + p.lastReload.result },
    (p.lastReload.result === 'ok' ? 'ok → version ' + p.lastReload.hash : p.lastReload.result === 'unchanged' ? 'file re-read: same as the running version ' + p.lastReload.hash : 'rejected, previous version kept: ' + p.lastReload.error) + ' (' + ago(p.lastReload.at) + ')'));
  if (p.lastError) c.append(el('div', { class: 'reason' }, 'last pass error: ' + p.lastError));

  c.append(el('h3', {}, 'Recent runs'));
  const mine = runs === null ? null : runs.filter((r) => r.pipeline === p.name).slice(0, 6);
  if (mine === null) c.append(el('div', { class: 'none' }, 'runs not available (control API token needed)'));
  else if (mine.length === 0) c.append(el('div', { class: 'none' }, 'no runs asked for'));
  else c.append(el('table', { class: 'runs' }, ...mine.map((r) => el('tr', { 'data-run': r.id },
    el('td', {}, el('span', { class: 'outcome ' + r.state }, r.state)),
    el('td', {}, r.percent + ' %'),
    el('td', {}, r.done + ' ok · ' + r.failed + ' failed' + (r.failures.length ? ' (' + r.failures[0].path + ': ' + r.failures[0].reason + ')' : '')),
    el('td', { class: 'when' }, ago(r.requested_at))))));
  return c;
}

let timer;
let askedForStatus = false;
async function refresh() {
  clearTimeout(timer);
  let busy = false;
  try {
    // A server bound beyond loopback wants the token for /status too: asked once per page load.
    const res = await call('/status', {}, askedForStatus ? false : undefined);
    askedForStatus = true;
    if (res.status === 401) throw new Error('an API token is needed to read the status: reload the page to enter it');
    const s = await res.json();
    const runsRes = await call('/api/runs?limit=100', {}, false);
    const runs = runsRes.ok ? (await runsRes.json()).runs : null;
    busy = s.pipelines.some((p) => p.currentPass) || (runs || []).some((r) => r.state === 'queued' || r.state === 'listing' || r.state === 'running');
    document.getElementById('error').textContent = '';
    document.getElementById('meta').textContent = 'v' + s.sluice.version + ' · ' + s.sluice.command + ' · pid ' + s.sluice.pid + ' · up ' + ago(s.sluice.startedAt).replace(' ago', '') + ' · updated ' + new Date().toLocaleTimeString();
    const main = document.getElementById('pipelines');
    main.replaceChildren(...s.pipelines.map((p) => card(p, runs)));
    if (s.pipelines.length === 0) main.append(el('div', { class: 'none' }, 'no pipelines loaded'));
  } catch (err) {
    document.getElementById('error').textContent = 'cannot reach Sluice: ' + err;
  }
  timer = setTimeout(refresh, busy ? 1000 : 2000);
}
refresh();
</script>
</body>
</html>
`;
