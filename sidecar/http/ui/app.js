// The hcsync dashboard: Preact components written with htm (tagged templates), loaded as ES modules
// with no build step. Every figure comes from the JSON API (/api/…); the page re-reads what changed when
// the server pushes a nudge (server-sent events from the database's LISTEN), and never polls.
import { h, render } from '/ui/vendor/preact.mjs';
import { useEffect, useState, useCallback } from '/ui/vendor/hooks.mjs';
import htm from '/ui/vendor/htm.mjs';

const html = htm.bind(h);

// ---- API ------------------------------------------------------------------------------------------
async function api(path, opts = {}) {
  const init = { method: opts.method ?? 'GET', headers: {} };
  if (init.method !== 'GET') init.headers['x-hcsync-csrf'] = '1';
  if (opts.body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const e = new Error((data && data.error) || `${res.status} ${res.statusText}`);
    e.hint = data && data.hint;
    e.status = res.status;
    throw e;
  }
  return data;
}

// ---- Live updates: one EventSource, components subscribe to kinds ---------------------------------
const listeners = new Set();
let live = 'connecting';
const liveListeners = new Set();
function setLive(s) { live = s; for (const f of liveListeners) f(s); }
const source = new EventSource('/api/events');
source.addEventListener('hello', () => { setLive('live'); for (const f of listeners) f('all'); });
source.addEventListener('nudge', (e) => { const { kind } = JSON.parse(e.data); for (const f of listeners) f(kind); });
source.onerror = () => setLive('reconnecting');

function useLive() {
  const [s, set] = useState(live);
  useEffect(() => { liveListeners.add(set); return () => liveListeners.delete(set); }, []);
  return s;
}

/** GET `path` now, and again whenever a nudge of one of `kinds` arrives. */
function useApi(path, kinds = ['control', 'writes', 'activity']) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const load = useCallback(() => {
    if (!path) return;
    api(path).then((data) => setState({ data, error: undefined }), (error) => setState((s) => ({ data: s.data, error })));
  }, [path]);
  useEffect(() => {
    load();
    const f = (kind) => { if (kind === 'all' || kinds.includes(kind)) load(); };
    listeners.add(f);
    return () => listeners.delete(f);
  }, [load]);
  return { ...state, reload: load };
}

// ---- Notices ---------------------------------------------------------------------------------------
let pushNotice = () => {};
function Notices() {
  const [items, setItems] = useState([]);
  pushNotice = (n) => {
    const id = Math.random();
    setItems((xs) => [...xs, { ...n, id }]);
    setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), n.kind === 'error' ? 10000 : 4000);
  };
  return html`<div class="notices" role="status">${items.map((n) => html`<div class=${'notice ' + n.kind}>${n.text}${n.hint ? html`<div class="hint">${n.hint}</div>` : ''}</div>`)}</div>`;
}

async function act(label, path, body) {
  try {
    const r = await api(path, { method: 'POST', body: body ?? {} });
    pushNotice({ kind: 'ok', text: `${label}: done${r && r.count !== undefined ? ` (${r.count})` : ''}` });
    return r;
  } catch (e) {
    pushNotice({ kind: 'error', text: `${label}: ${e.message}`, hint: e.hint });
    return undefined;
  }
}

// ---- Small pieces ----------------------------------------------------------------------------------
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '—');
const short = (t, n = 90) => (t.length > n ? t.slice(0, n) + '…' : t);
const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());
const Badge = ({ category, children }) => html`<span class=${'badge ' + (category || 'ok')}>${children}</span>`;

function Bars({ series, keys, colors, labels, height = 120 }) {
  if (!series) return html`<p class="muted">Loading…</p>`;
  const w = 720, pad = 28;
  const max = Math.max(1, ...series.map((b) => keys.reduce((n, k) => n + Number(b[k] || 0), 0)));
  const bw = (w - pad) / Math.max(1, series.length);
  return html`<svg class="chart" viewBox=${`0 0 ${w} ${height + 18}`} role="img">
    <text x="0" y="10" class="axis">${max}</text><text x="0" y=${height} class="axis">0</text>
    ${series.map((b, i) => {
      let y = height;
      return html`<g>
        <title>${fmtTime(b.bucket)}\n${keys.map((k, j) => `${labels[j]}: ${num(b[k])}`).join('\n')}</title>
        <rect x=${pad + i * bw} y="0" width=${bw} height=${height} class="hover" />
        ${keys.map((k, j) => {
          const hh = (Number(b[k] || 0) / max) * (height - 12);
          y -= hh;
          return hh > 0 ? html`<rect x=${pad + i * bw + 1} y=${y} width=${Math.max(1, bw - 2)} height=${hh} fill=${colors[j]} />` : '';
        })}
      </g>`;
    })}
    ${series.length ? html`<text x=${pad} y=${height + 16} class="axis">${fmtTime(series[0].bucket)}</text>
      <text x=${w} y=${height + 16} class="axis" text-anchor="end">${fmtTime(series[series.length - 1].bucket)}</text>` : ''}
  </svg>
  <div class="legend">${labels.map((l, j) => html`<span><i style=${`background:${colors[j]}`}></i>${l}</span>`)}</div>`;
}

function Period({ hours, set }) {
  return html`<span class="period">${[[6, '6 hours'], [24, '24 hours'], [168, '7 days']].map(([hv, l]) =>
    html`<button class=${hv === hours ? 'on' : ''} onClick=${() => set(hv)}>${l}</button>`)}</span>`;
}

// ---- Tabs ------------------------------------------------------------------------------------------
function Banner({ conn }) {
  if (!conn) return '';
  const notes = [];
  if (conn.state_category === 'error') notes.push(`The connection is in an error state: ${conn.state_label}. ${conn.state_message ?? ''}`);
  if (Number(conn.errored_writes) > 0) notes.push(html`${num(conn.errored_writes)} write(s) to Salesforce failed. <a href="#errors">Review write errors</a>`);
  if (Number(conn.mappings_in_error) > 0) notes.push(html`${num(conn.mappings_in_error)} mapping(s) are in an error state. <a href="#mappings">Review mappings</a>`);
  return notes.length ? html`<div class="banner" data-test="banner">${notes.map((n) => html`<div>${n}</div>`)}</div>` : '';
}

function Overview({ conn }) {
  const [hours, setHours] = useState(24);
  const activity = useApi(`/api/activity?hours=${hours}`, ['writes', 'activity']);
  const usage = useApi(`/api/api-usage?hours=${hours}`, ['activity']);
  const last = (usage.data ?? []).filter((b) => b.api_limit).pop();
  const calls = (usage.data ?? []).reduce((n, b) => n + Number(b.calls), 0);
  return html`<section>
    <div class="cards">
      <div class="card"><h3>Connection</h3><p class="big"><${Badge} category=${conn?.state_category}>${conn?.state_label ?? '…'}</${Badge}></p>
        <p class="muted" data-test="state-message">${conn?.state_message ?? ''}</p></div>
      <div class="card"><h3>Mappings</h3><p class="big">${num(conn?.mapping_count)}</p><p class="muted">${num(conn?.mappings_in_error)} in error</p></div>
      <div class="card"><h3>Pending writes</h3><p class="big">${num(conn?.pending_writes)}</p><p class="muted">${num(conn?.errored_writes)} failed</p></div>
      <div class="card"><h3>API usage</h3><p class="big">${last ? `${num(last.api_used)} / ${num(last.api_limit)}` : '—'}</p>
        <p class="muted">${num(calls)} calls by hcsync in the period; the org's daily allowance as Salesforce last reported it</p></div>
    </div>
    <h2>Activity <${Period} hours=${hours} set=${setHours} /></h2>
    <${Bars} series=${activity.data} keys=${['inbound_rows', 'outbound_rows', 'inbound_errors', 'outbound_errors']}
      colors=${['#3b82f6', '#10b981', '#f59e0b', '#ef4444']} labels=${['Salesforce → Postgres rows', 'Postgres → Salesforce rows', 'Read errors', 'Write errors']} />
    <h2>API calls</h2>
    <${Bars} series=${usage.data} keys=${['calls', 'errors']} colors=${['#6366f1', '#ef4444']} labels=${['API calls', 'Failed calls']} height=${80} />
  </section>`;
}

function Mappings({ admin }) {
  const { data } = useApi('/api/mappings', ['control', 'writes', 'activity']);
  if (!data) return html`<p class="muted">Loading…</p>`;
  return html`<section>
    <p class="muted">Salesforce row counts cost an API call each and are not read here; Postgres counts are estimates above 100,000 rows.</p>
    <table class="grid" data-test="mappings">
      <thead><tr><th>Object</th><th>Table</th><th>State</th><th>Access</th><th>Fields</th><th>Postgres rows</th><th>Pending writes</th><th>Errored writes</th><th>Last poll</th><th></th></tr></thead>
      <tbody>${data.map((m) => html`<tr>
        <td><a href=${`#mapping/${m.object_name}`}>${m.object_name}</a></td><td>${m.table_name}</td>
        <td><${Badge} category=${m.state_category}>${m.state_label}</${Badge}>${m.requested ? html` <span class="muted">(${m.requested} requested)</span>` : ''}</td>
        <td>${m.access}</td><td>${num(m.field_count)}</td><td>${num(m.pg_rows)}</td><td>${num(m.pending_writes)}</td>
        <td class=${Number(m.errored_writes) ? 'bad' : ''}>${num(m.errored_writes)}</td><td>${fmtTime(m.last_poll_at)}</td>
        <td class="actions">
          <button disabled=${!admin} onClick=${() => act(`Reload ${m.object_name}`, `/api/mappings/${m.object_name}/reload`)}>Reload</button>
          <button disabled=${!admin} onClick=${() => act(`Poll ${m.object_name}`, `/api/mappings/${m.object_name}/poll`)}>Poll now</button>
          <button disabled=${!admin} onClick=${() => act(`Abort ${m.object_name}`, `/api/mappings/${m.object_name}/abort`)}>Abort</button>
          <a class="button" href=${`#logs/${m.object_name}`}>Logs</a>
        </td></tr>`)}</tbody>
    </table>
  </section>`;
}

function MappingDetail({ object }) {
  const m = useApi(`/api/mappings/${encodeURIComponent(object)}`, ['control', 'activity']);
  const activity = useApi(`/api/activity?hours=24&object=${encodeURIComponent(object)}`, ['writes', 'activity']);
  if (m.error) return html`<p class="error">${m.error.message}</p>`;
  if (!m.data) return html`<p class="muted">Loading…</p>`;
  const d = m.data;
  return html`<section>
    <p><a href="#mappings">← Mappings</a></p>
    <h2>${d.object_name} <small class="muted">→ ${d.schema_name}.${d.table_name}</small> <${Badge} category=${d.state_category}>${d.state_label}</${Badge}></h2>
    <p class="muted">${d.state_message ?? ''}</p>
    <div class="cards">
      <div class="card"><h3>Postgres rows</h3><p class="big">${num(d.pg_rows)}</p></div>
      <div class="card"><h3>Pending writes</h3><p class="big">${num(d.pending_writes)}</p></div>
      <div class="card"><h3>Errored writes</h3><p class="big">${num(d.errored_writes)}</p></div>
      <div class="card"><h3>Access</h3><p class="big">${d.access}</p><p class="muted">upsert field: ${d.config?.upsert_field ?? '—'}</p></div>
    </div>
    <h2>Activity, last 24 hours</h2>
    <${Bars} series=${activity.data} keys=${['inbound_rows', 'outbound_rows', 'inbound_errors', 'outbound_errors']}
      colors=${['#3b82f6', '#10b981', '#f59e0b', '#ef4444']} labels=${['Salesforce → Postgres rows', 'Postgres → Salesforce rows', 'Read errors', 'Write errors']} />
    <h2>Fields</h2>
    <table class="grid"><thead><tr><th>Field</th><th>Column</th><th>Salesforce type</th><th>Postgres type</th><th>External id</th><th>Updateable</th></tr></thead>
      <tbody>${d.fields.map((f) => html`<tr><td>${f.field_name}</td><td>${f.column_name}</td><td>${f.sf_type}</td><td>${f.pg_type}</td><td>${f.external_id ? 'yes' : ''}</td><td>${f.updateable ? 'yes' : ''}</td></tr>`)}</tbody></table>
  </section>`;
}

function Logs({ object: initial, mappings }) {
  const [object, setObject] = useState(initial ?? '');
  const [level, setLevel] = useState('');
  const [direction, setDirection] = useState('');
  const q = new URLSearchParams();
  if (object) q.set('object', object);
  if (level) q.set('level', level);
  if (direction) q.set('direction', direction);
  q.set('limit', '200');
  const { data } = useApi(`/api/logs?${q}`, ['activity', 'control']);
  return html`<section>
    <div class="filters">
      <label>Mapping <select data-test="log-object" value=${object} onChange=${(e) => setObject(e.target.value)}>
        <option value="">all</option>${(mappings ?? []).map((m) => html`<option value=${m.object_name}>${m.object_name}</option>`)}</select></label>
      <label>Level at least <select data-test="log-level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
        <option value="">any</option>${['info', 'warn', 'error'].map((l) => html`<option value=${l}>${l}</option>`)}</select></label>
      <label>Direction <select value=${direction} onChange=${(e) => setDirection(e.target.value)}>
        <option value="">both</option><option value="inbound">Salesforce → Postgres</option><option value="outbound">Postgres → Salesforce</option></select></label>
    </div>
    <table class="grid logs" data-test="logs"><thead><tr><th>When</th><th>Level</th><th>Mapping</th><th>Direction</th><th>Event</th><th>Message</th></tr></thead>
      <tbody>${(data ?? []).map((l) => html`<tr class=${'lvl-' + l.level}><td>${fmtTime(l.at)}</td><td>${l.level}</td><td>${l.object_name ?? ''}</td><td>${l.direction ?? ''}</td><td>${l.event}</td><td>${l.message ?? ''}</td></tr>`)}</tbody></table>
    ${data && !data.length ? html`<p class="muted">Nothing logged for this filter.</p>` : ''}
  </section>`;
}

function WriteErrors({ admin }) {
  const { data } = useApi('/api/write-errors', ['writes', 'control', 'activity']);
  const [sel, setSel] = useState(new Set());
  if (!data) return html`<p class="muted">Loading…</p>`;
  const toggle = (id) => { const s = new Set(sel); s.has(id) ? s.delete(id) : s.add(id); setSel(s); };
  const ids = [...sel].filter((id) => data.some((e) => e.trigger_log_id === id));
  const done = () => setSel(new Set());
  return html`<section>
    <div class="toolbar">
      <button disabled=${!admin || !ids.length} onClick=${() => act('Retry selected', '/api/write-errors/retry', { ids }).then(done)}>Retry selected (${ids.length})</button>
      <button disabled=${!admin || !ids.length} onClick=${() => act('Discard selected', '/api/write-errors/discard', { ids }).then(done)}>Discard selected</button>
      <button disabled=${!admin || !data.length} onClick=${() => act('Retry all', '/api/write-errors/retry', { all: true }).then(done)}>Retry all</button>
      <button disabled=${!admin || !data.length} onClick=${() => confirm(`Discard all ${data.length} failed writes? Nothing of them is sent.`) && act('Discard all', '/api/write-errors/discard', { all: true }).then(done)}>Discard all</button>
    </div>
    ${data.length ? html`<table class="grid" data-test="write-errors"><thead><tr><th></th><th>Id</th><th>Object</th><th>Row</th><th>Action</th><th>Salesforce said</th><th>When</th><th></th></tr></thead>
      <tbody>${data.map((e) => html`<tr>
        <td><input type="checkbox" aria-label=${`select ${e.trigger_log_id}`} checked=${sel.has(e.trigger_log_id)} onChange=${() => toggle(e.trigger_log_id)} /></td>
        <td>${e.trigger_log_id}${e.archived ? html` <span class="muted">(archived)</span>` : ''}</td><td>${e.object_name ?? e.table_name}</td>
        <td>${e.record_id}${e.sfid ? html` <span class="muted">${e.sfid}</span>` : ''}</td><td>${e.action}</td><td class="msg">${e.sf_message}</td><td>${fmtTime(e.updated_at)}</td>
        <td class="actions"><button disabled=${!admin} onClick=${() => act(`Retry ${e.trigger_log_id}`, '/api/write-errors/retry', { ids: [e.trigger_log_id] })}>Retry</button>
          <button disabled=${!admin} onClick=${() => act(`Discard ${e.trigger_log_id}`, '/api/write-errors/discard', { ids: [e.trigger_log_id] })}>Discard</button></td>
      </tr>`)}</tbody></table>` : html`<p class="muted" data-test="no-write-errors">No failed writes.</p>`}
  </section>`;
}

function Settings({ conn, admin }) {
  const audit = useApi('/api/audit', ['control']);
  const [imported, setImported] = useState();
  const onFile = async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    const r = await act(`Import ${f.name}`, '/api/import', await f.text());
    if (r) setImported(r);
    e.target.value = '';
  };
  const c = conn ?? {};
  return html`<section>
    <h2>Connection</h2>
    <table class="kv">
      <tr><th>Name</th><td>${c.name}</td></tr><tr><th>Schema</th><td>${c.schema_name}</td></tr>
      <tr><th>Organization id</th><td>${c.organization_id ?? '—'}</td></tr><tr><th>User</th><td>${c.username ?? '—'}</td></tr>
      <tr><th>Login URL</th><td>${c.login_url}</td></tr><tr><th>API version</th><td>${c.api_version ?? c.configured_api_version}</td></tr>
      <tr><th>Write algorithm</th><td>${c.write_algorithm}</td></tr>
      <tr><th>State</th><td><${Badge} category=${c.state_category}>${c.state_label}</${Badge}> <span class="muted">${c.state_message ?? ''}</span></td></tr>
    </table>
    <div class="toolbar">
      <button disabled=${!admin} onClick=${() => act('Pause', '/api/connection/pause')}>Pause</button>
      <button disabled=${!admin} onClick=${() => act('Resume', '/api/connection/resume')}>Resume</button>
      <button disabled=${!admin} onClick=${() => act('Recover', '/api/connection/recover')}>Recover from error</button>
    </div>
    <h2>Mapping configuration</h2>
    <div class="toolbar">
      <a class="button" href="/api/export?download=1" download>Export JSON</a>
      <label class=${'button' + (admin ? '' : ' disabled')}>Import JSON… <input type="file" accept="application/json,.json" data-test="import" disabled=${!admin} onChange=${onFile} hidden /></label>
    </div>
    ${imported ? html`<p data-test="import-result">Imported: created ${imported.created.join(', ') || 'none'}; updated ${imported.updated.join(', ') || 'none'}; unchanged ${imported.unchanged.join(', ') || 'none'}.</p>` : ''}
    <h2>Audit trail <a class="button" href="/api/audit.csv" download>Download CSV</a></h2>
    <table class="grid"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Mapping</th><th>Detail</th></tr></thead>
      <tbody>${(audit.data ?? []).slice(0, 15).map((a) => html`<tr><td>${fmtTime(a.at)}</td><td>${a.principal ? `${a.principal} (${a.actor})` : a.actor}</td><td>${a.action}</td><td>${a.object_name ?? ''}</td><td class="msg" title=${a.detail ? JSON.stringify(a.detail) : ''}>${a.detail ? short(JSON.stringify(a.detail)) : ''}</td></tr>`)}</tbody></table>
  </section>`;
}

// ---- The shell -------------------------------------------------------------------------------------
const TABS = [['overview', 'Overview'], ['mappings', 'Mappings'], ['logs', 'Logs'], ['errors', 'Write errors'], ['settings', 'Settings']];

function useHash() {
  const [hash, setHash] = useState(location.hash.slice(1) || 'overview');
  useEffect(() => {
    const f = () => setHash(location.hash.slice(1) || 'overview');
    addEventListener('hashchange', f);
    return () => removeEventListener('hashchange', f);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  const [tab, arg] = hash.split('/');
  const conn = useApi('/api/connection', ['control', 'writes', 'activity']);
  const mappings = useApi('/api/mappings', ['control']);
  const who = useApi('/api/whoami', []);
  const status = useLive();
  const admin = who.data?.role === 'admin';
  const c = conn.data;
  const current = tab === 'mapping' ? 'mappings' : tab;
  let body;
  if (tab === 'mapping') body = html`<${MappingDetail} object=${decodeURIComponent(arg)} />`;
  else if (tab === 'mappings') body = html`<${Mappings} admin=${admin} />`;
  else if (tab === 'logs') body = html`<${Logs} object=${arg && decodeURIComponent(arg)} mappings=${mappings.data} />`;
  else if (tab === 'errors') body = html`<${WriteErrors} admin=${admin} />`;
  else if (tab === 'settings') body = html`<${Settings} conn=${c} admin=${admin} />`;
  else body = html`<${Overview} conn=${c} />`;
  return html`<header>
      <h1>hcsync <small>${c ? `${c.name} · ${c.schema_name}` : ''}</small></h1>
      <span class=${'live ' + status} data-test="live">${status}</span>
      <span class="muted">${who.data ? who.data.principal : ''}</span>
    </header>
    <nav>${TABS.map(([id, label]) => html`<a href=${'#' + id} class=${current === id ? 'on' : ''}>${label}${id === 'errors' && c && Number(c.errored_writes) ? html` <span class="count">${num(c.errored_writes)}</span>` : ''}</a>`)}</nav>
    <main>
      ${conn.error ? html`<div class="banner">${conn.error.message}</div>` : ''}
      <${Banner} conn=${c} />
      ${body}
    </main>
    <${Notices} />`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading…" shown until this script runs
render(html`<${App} />`, root);
