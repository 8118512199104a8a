// The hcsync dashboard: Preact components written with htm (tagged templates), loaded as ES modules
// with no build step. Every figure comes from the JSON API (/api/…); the page re-reads what changed when
// the server pushes a nudge (server-sent events from the database's LISTEN), and never polls.
import { h, render } from '/ui/vendor/preact.mjs';
import { useEffect, useState, useCallback, useRef } from '/ui/vendor/hooks.mjs';
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
  // (the stream may have said hello between the first render and this subscription: catch up with it)
  useEffect(() => { liveListeners.add(set); set(live); return () => liveListeners.delete(set); }, []);
  return s;
}

/**
 * GET `path` now, and again whenever a nudge of one of `kinds` arrives. Only the answer to the latest
 * request is shown: an earlier one (another filter's, say) that arrives later must not replace it.
 */
function useApi(path, kinds = ['control', 'writes', 'activity']) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const latest = useRef(0);
  const load = useCallback(() => {
    if (!path) return;
    const n = ++latest.current;
    api(path).then(
      (data) => n === latest.current && setState({ data, error: undefined }),
      (error) => n === latest.current && setState((s) => ({ data: s.data, error })),
    );
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

// A bar chart of time buckets. Hovering a bucket shows its values below the chart (and as a tooltip).
function Bars({ series, keys, colors, labels, height = 120, name }) {
  const [hover, setHover] = useState();
  if (!series) return html`<p class="muted">Loading…</p>`;
  const w = 720, pad = 28;
  const max = Math.max(1, ...series.map((b) => keys.reduce((n, k) => n + Number(b[k] || 0), 0)));
  const bw = (w - pad) / Math.max(1, series.length);
  const at = hover === undefined ? undefined : series[hover];
  return html`<svg class="chart" viewBox=${`0 0 ${w} ${height + 18}`} role="img" data-test=${name && `${name}-chart`} onMouseLeave=${() => setHover(undefined)}>
    <text x="0" y="10" class="axis">${max}</text><text x="0" y=${height} class="axis">0</text>
    ${series.map((b, i) => {
      let y = height;
      return html`<g data-bucket=${i} data-at=${b.bucket} onMouseEnter=${() => setHover(i)}>
        <title>${fmtTime(b.bucket)}\n${keys.map((k, j) => `${labels[j]}: ${num(b[k])}`).join('\n')}</title>
        <rect x=${pad + i * bw} y="0" width=${bw} height=${height} class=${'hover' + (i === hover ? ' on' : '')} />
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
  <div class="legend" data-test=${name && `${name}-readout`}>${at
    ? html`<strong>${fmtTime(at.bucket)}</strong>${labels.map((l, j) => html`<span><i style=${`background:${colors[j]}`}></i>${l}: ${num(at[keys[j]])}</span>`)}`
    : labels.map((l, j) => html`<span><i style=${`background:${colors[j]}`}></i>${l}</span>`)}</div>`;
}

// The org's API use over time against its daily allowance: per bucket, the use Salesforce last reported
// (Sforce-Limit-Info, kept in the hc.api_calls ledger; carried forward through buckets without a call),
// drawn under the allowance and the governor's slow and pause thresholds (hc.api_budget).
function Allowance({ series, budget }) {
  const [hover, setHover] = useState();
  if (!series || !budget) return html`<p class="muted">Loading…</p>`;
  const reported = [...series].reverse().find((b) => b.api_limit);
  const allowance = Number(budget.allowance ?? reported?.api_limit ?? 0);
  if (!allowance) {
    return html`<p class="muted" data-test="allowance-unknown">Salesforce has not reported the org's API use in the last 24 hours (it does with every call hcsync makes).</p>`;
  }
  let carried = null;
  const pts = series.map((b) => {
    if (b.api_used !== null && b.api_used !== undefined) carried = Number(b.api_used);
    return { bucket: b.bucket, used: carried, limit: Number(b.api_limit ?? allowance), calls: Number(b.calls) };
  });
  const w = 720, pad = 28, height = 110;
  const top = Math.max(allowance, ...pts.map((p) => p.used ?? 0)) * 1.2;
  const y = (v) => height - (v / top) * height;
  const bw = (w - pad) / Math.max(1, pts.length);
  const pct = (v) => `${Math.round((1000 * v) / allowance) / 10} %`;
  const lines = [
    ['allowance', allowance, `daily allowance ${num(allowance)}`],
    ['slow', (allowance * budget.slow_percent) / 100, `slow from ${budget.slow_percent} %`],
    ['paused', (allowance * budget.pause_percent) / 100, `paused from ${budget.pause_percent} %`],
  ];
  const at = hover === undefined ? undefined : pts[hover];
  return html`<svg class="chart" viewBox=${`0 0 ${w} ${height + 18}`} role="img" data-test="allowance-chart" onMouseLeave=${() => setHover(undefined)}>
    ${pts.map((p, i) => html`<g data-bucket=${i} onMouseEnter=${() => setHover(i)}>
      <title>${fmtTime(p.bucket)}\n${p.used === null ? 'no figure reported yet' : `org's use: ${num(p.used)} of ${num(p.limit)} (${pct(p.used)})`}\nhcsync's calls: ${num(p.calls)}</title>
      <rect x=${pad + i * bw} y="0" width=${bw} height=${height} class=${'hover' + (i === hover ? ' on' : '')} />
      ${p.used ? html`<rect x=${pad + i * bw + 1} y=${y(p.used)} width=${Math.max(1, bw - 2)} height=${height - y(p.used)}
        fill=${p.used * 100 >= allowance * budget.pause_percent ? '#ef4444' : p.used * 100 >= allowance * budget.slow_percent ? '#f59e0b' : '#6366f1'} />` : ''}
    </g>`)}
    ${lines.map(([cls, v, label]) => html`<g class=${'limit ' + cls} data-test=${`${cls}-line`} data-value=${Math.round(v)}>
      <line x1=${pad} x2=${w} y1=${y(v)} y2=${y(v)} /><text x=${w - 4} y=${cls === 'allowance' ? y(v) - 3 : y(v) + 10} text-anchor="end" class="axis">${label}</text></g>`)}
    <text x="0" y=${height} class="axis">0</text>
    ${pts.length ? html`<text x=${pad} y=${height + 16} class="axis">${fmtTime(pts[0].bucket)}</text>
      <text x=${w} y=${height + 16} class="axis" text-anchor="end">${fmtTime(pts[pts.length - 1].bucket)}</text>` : ''}
  </svg>
  <div class="legend" data-test="allowance-readout">${at
    ? html`<strong>${fmtTime(at.bucket)}</strong><span>${at.used === null ? 'no figure reported yet' : `Org's use ${num(at.used)} of ${num(at.limit)} (${pct(at.used)})`}</span><span>hcsync's calls: ${num(at.calls)}</span>`
    : html`<span><i style="background:#6366f1"></i>The org's API use (all clients) as Salesforce reported it</span><span><i class="line"></i>Daily allowance and the budget's thresholds</span>`}</div>`;
}

function Period({ hours, set }) {
  return html`<span class="period">${[[6, '6 hours'], [24, '24 hours'], [168, '7 days']].map(([hv, l]) =>
    html`<button class=${hv === hours ? 'on' : ''} onClick=${() => set(hv)}>${l}</button>`)}</span>`;
}

// ---- Tabs ------------------------------------------------------------------------------------------
const KIND_LINK = { writes_failed: ['#errors', 'Review write errors'], mapping_error: ['#mappings', 'Review mappings'], connection_error: ['#settings', 'Settings'] };

function Banner({ conn }) {
  // Notifications (sql/000045_notifications.sql) whose condition still holds, newest first.
  const notes_ = useApi('/api/notifications?limit=20', ['notifications', 'writes', 'control']);
  if (!conn) return '';
  const active = (notes_.data ?? []).filter((n) => n.active);
  if (active.length) {
    return html`<div class="banner" data-test="banner">${active.slice(0, 5).map((n) => html`<div data-test="notification">
      <strong>${fmtTime(n.at)}</strong> ${n.message} <a href=${KIND_LINK[n.kind][0]}>${KIND_LINK[n.kind][1]}</a></div>`)}
      ${Number(conn.errored_writes) > 0 ? html`<div>${num(conn.errored_writes)} write(s) to Salesforce failed in all.</div>` : ''}</div>`;
  }
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
  const budget = useApi('/api/api-budget', ['activity', 'control']);
  // (read when the tab opens: the count is written with the API-call ledger, which sends no nudge)
  const counted = useApi('/api/connection', ['activity', 'control']);
  const calls = (usage.data ?? []).reduce((n, b) => n + Number(b.calls), 0);
  const b = budget.data;
  return html`<section>
    <div class="cards">
      <div class="card"><h3>Connection</h3><p class="big"><${Badge} category=${conn?.state_category}>${conn?.state_label ?? '…'}</${Badge}></p>
        <p class="muted" data-test="state-message">${conn?.state_message ?? ''}${conn?.state === 'PAUSED'
          ? html`${conn.state_message ? '. ' : ''}<span data-test="resume-hint">Nothing is synced until it resumes: Resume in <a href="#settings">Settings</a>, or select hc.resume();</span>` : ''}</p></div>
      <div class="card"><h3>Mappings</h3><p class="big">${num(conn?.mapping_count)}</p><p class="muted">${num(conn?.mappings_in_error)} in error</p></div>
      <div class="card"><h3>Pending writes</h3><p class="big">${num(conn?.pending_writes)}</p><p class="muted">${num(conn?.errored_writes)} failed</p></div>
      <div class="card" data-test="events-delivered"><h3>Change events</h3><p class="big">${num(counted.data?.events_delivered_24h ?? conn?.events_delivered_24h)}</p>
        <p class="muted">delivered in 24 hours: what the sync spends of the org's daily event delivery allowance</p></div>
      <div class="card" data-test="api-budget"><h3>API usage</h3>
        <p class="big">${b?.allowance ? html`${num(b.used)} / ${num(b.allowance)} <small class="muted">${b.used_percent} %</small>` : '—'}</p>
        <p class="muted">${b?.allowance ? html`the org's use of its daily allowance as Salesforce last reported it; hcsync made ${num(b.own_calls_24h)} calls in 24 hours${b.forecast_percent !== null ? `, forecast for the day ${b.forecast_percent} %` : ''}` : 'not reported by Salesforce in the last 24 hours'}</p>
        ${b?.message ? html`<p class=${b.level === 'paused' ? 'error' : 'warn'} data-test="api-budget-message">${b.message}</p>` : ''}</div>
    </div>
    <h2>Activity <${Period} hours=${hours} set=${setHours} /></h2>
    <${Bars} name="activity" series=${activity.data} keys=${['inbound_rows', 'outbound_rows', 'inbound_errors', 'outbound_errors']}
      colors=${['#3b82f6', '#10b981', '#f59e0b', '#ef4444']} labels=${['Salesforce → Postgres rows', 'Postgres → Salesforce rows', 'Read errors', 'Write errors']} />
    <h2>API usage against the daily allowance</h2>
    <${Allowance} series=${usage.data} budget=${budget.data} />
    <h2>API calls by hcsync <small class="muted">${num(calls)} in the period</small></h2>
    <${Bars} name="api-calls" series=${usage.data} keys=${['calls', 'errors']} colors=${['#6366f1', '#ef4444']} labels=${['API calls', 'Failed calls']} height=${80} />
  </section>`;
}

function SfCount({ object }) {
  const [c, setC] = useState();
  const [busy, setBusy] = useState(false);
  if (c) return html`<span data-test="sf-count" title=${`${c.calls} API call(s)`}>${c.estimate ? `~${num(c.count)} (estimate)` : num(c.count)}</span>`;
  return html`<button class="small" disabled=${busy} title="Costs 1–2 API calls" onClick=${async () => {
    setBusy(true);
    try { setC(await api(`/api/mappings/${encodeURIComponent(object)}/salesforce-count`)); }
    catch (e) { pushNotice({ kind: 'error', text: `Count ${object}: ${e.message}`, hint: e.hint }); }
    finally { setBusy(false); }
  }}>Count</button>`;
}

async function remove(m) {
  if (!confirm(`Delete the mapping ${m.object_name}? Its table ${m.table_name} and its rows are dropped; Salesforce is not touched.`)) return;
  try {
    await api(`/api/mappings/${encodeURIComponent(m.object_name)}`, { method: 'DELETE' });
    pushNotice({ kind: 'ok', text: `Delete ${m.object_name}: done` });
  } catch (e) { pushNotice({ kind: 'error', text: `Delete ${m.object_name}: ${e.message}`, hint: e.hint }); }
}

function Mappings({ admin }) {
  const { data } = useApi('/api/mappings', ['control', 'writes', 'activity']);
  if (!data) return html`<p class="muted">Loading…</p>`;
  return html`<section>
    <div class="toolbar"><a class=${'button' + (admin ? '' : ' disabled')} href=${admin ? '#mapping-new' : '#mappings'} data-test="create-mapping">Create mapping</a></div>
    <p class="muted">Counting an object's Salesforce rows costs API calls (one or two each), so it happens only when you click Count; above 1,000,000 rows the figure is Salesforce's estimate, as in Heroku Connect. Postgres counts are estimates above 100,000 rows.</p>
    <table class="grid" data-test="mappings">
      <thead><tr><th>Object</th><th>Table</th><th>State</th><th>Access</th><th>Fields</th><th>Salesforce rows</th><th>Postgres rows</th><th>Pending writes</th><th>Errored writes</th><th>Last poll</th><th></th></tr></thead>
      <tbody>${data.map((m) => html`<tr>
        <td><a href=${`#mapping/${m.object_name}`}>${m.object_name}</a></td><td>${m.table_name}</td>
        <td><${Badge} category=${m.state_category}>${m.state_label}</${Badge}>${m.requested ? html` <span class="muted">(${m.requested} requested)</span>` : ''}</td>
        <td>${m.access}</td><td>${num(m.field_count)}</td><td><${SfCount} object=${m.object_name} /></td><td>${num(m.pg_rows)}</td><td>${num(m.pending_writes)}</td>
        <td class=${Number(m.errored_writes) ? 'bad' : ''}>${num(m.errored_writes)}</td><td>${fmtTime(m.last_poll_at)}</td>
        <td class="actions wrap">
          <a class=${'button' + (admin ? '' : ' disabled')} href=${admin ? `#mapping-edit/${m.object_name}` : '#mappings'}>Edit</a>
          <button disabled=${!admin} onClick=${() => act(`Reload ${m.object_name}`, `/api/mappings/${m.object_name}/reload`)}>Reload</button>
          <button disabled=${!admin} onClick=${() => act(`Poll ${m.object_name}`, `/api/mappings/${m.object_name}/poll`)}>Poll now</button>
          <button disabled=${!admin} onClick=${() => act(`Abort ${m.object_name}`, `/api/mappings/${m.object_name}/abort`)}>Abort</button>
          <a class="button" href=${`#logs/${m.object_name}`}>Logs</a>
          <a class="button" href=${`#explorer/${m.object_name}`}>Explorer</a>
          <button disabled=${!admin} onClick=${() => remove(m)}>Delete</button>
        </td></tr>`)}</tbody>
    </table>
  </section>`;
}

// Create or edit a mapping: the field picker is built from the object's describe (one API call).
const SYSTEM_FIELDS = ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate'];

function MappingEditor({ object: editing }) {
  const existing = useApi(editing ? `/api/mappings/${encodeURIComponent(editing)}` : null, []);
  const [objects, setObjects] = useState();
  const [object, setObject] = useState(editing ?? '');
  const [describe, setDescribe] = useState();
  const [picked, setPicked] = useState(new Set(SYSTEM_FIELDS));
  const [access, setAccess] = useState('read_only');
  const [upsert, setUpsert] = useState('');
  const [cdc, setCdc] = useState(true);
  const [polling, setPolling] = useState(600);
  const [filter, setFilter] = useState('');
  const [saving, setSaving] = useState(false);
  const cfg = existing.data?.config;
  useEffect(() => {
    if (!cfg) return;
    setPicked(new Set(Object.keys(cfg.fields ?? {})));
    setAccess(cfg.access ?? 'read_only');
    setUpsert(cfg.upsert_field ?? '');
    setCdc(cfg.sf_notify_enabled !== false);
    setPolling(cfg.sf_polling_seconds ?? 600);
  }, [cfg]);
  useEffect(() => {
    if (editing) return;
    api('/api/salesforce/objects').then(setObjects, (e) => pushNotice({ kind: 'error', text: `Objects: ${e.message}` }));
  }, [editing]);
  useEffect(() => {
    setDescribe(undefined);
    if (!object) return;
    api(`/api/salesforce/objects/${encodeURIComponent(object)}`).then(setDescribe, (e) => pushNotice({ kind: 'error', text: `Describe ${object}: ${e.message}`, hint: e.hint }));
  }, [object]);
  const toggle = (f) => { const s = new Set(picked); s.has(f) ? s.delete(f) : s.add(f); setPicked(s); };
  const fields = (describe?.fields ?? []).filter((f) => !filter || f.name.toLowerCase().includes(filter.toLowerCase()) || String(f.label).toLowerCase().includes(filter.toLowerCase()));
  const upsertable = (describe?.fields ?? []).filter((f) => f.externalId || f.idLookup && f.name !== 'Id');
  const save = async () => {
    const have = new Set((describe?.fields ?? []).map((f) => f.name));
    const names = [...picked].filter((f) => have.has(f));
    if (upsert && !names.includes(upsert)) names.push(upsert);
    const config = {
      ...(cfg ?? {}),
      access,
      fields: Object.fromEntries(names.map((f) => [f, cfg?.fields?.[f] ?? {}])),
      indexes: { ...(cfg?.indexes ?? {}), Id: { unique: true }, ...(have.has('SystemModstamp') ? { SystemModstamp: { unique: false } } : {}), ...(upsert ? { [upsert]: { unique: true } } : {}) },
      sf_notify_enabled: cdc,
      sf_polling_seconds: Number(polling),
    };
    if (upsert) config.upsert_field = upsert; else delete config.upsert_field;
    setSaving(true);
    try {
      if (editing) await api(`/api/mappings/${encodeURIComponent(editing)}`, { method: 'PUT', body: { config } });
      else await api('/api/mappings', { method: 'POST', body: { object_name: object, config } });
      pushNotice({ kind: 'ok', text: `${editing ? 'Saved' : 'Created'} ${object}: the sidecar ${editing ? 'alters' : 'creates and loads'} the table` });
      location.hash = `mapping/${object}`;
    } catch (e) {
      pushNotice({ kind: 'error', text: `${editing ? 'Save' : 'Create'} ${object}: ${e.message}`, hint: e.hint });
    } finally { setSaving(false); }
  };
  return html`<section data-test="mapping-editor">
    <p><a href="#mappings">← Mappings</a></p>
    <h2>${editing ? `Edit mapping ${editing}` : 'Create mapping'}</h2>
    <p class="muted">The object list and its fields are read from Salesforce when this page opens: one API call each.</p>
    <div class="filters">
      ${editing ? '' : html`<label>Object <select data-test="editor-object" value=${object} onChange=${(e) => { setObject(e.target.value); setPicked(new Set(SYSTEM_FIELDS)); setUpsert(''); }}>
        <option value="">${objects ? 'choose…' : 'loading…'}</option>${(objects ?? []).map((o) => html`<option value=${o.name}>${o.label} (${o.name})</option>`)}</select></label>`}
      <label>Access <select data-test="editor-access" value=${access} onChange=${(e) => setAccess(e.target.value)}>
        <option value="read_only">read only (Salesforce → Postgres)</option><option value="read_write">read-write (both ways)</option></select></label>
      <label>Upsert field <select data-test="editor-upsert" value=${upsert} onChange=${(e) => setUpsert(e.target.value)}>
        <option value="">none</option>${upsertable.map((f) => html`<option value=${f.name}>${f.name}</option>`)}</select></label>
      <label><input type="checkbox" checked=${cdc} onChange=${(e) => setCdc(e.target.checked)} /> Accelerate with change events</label>
      <label>Poll every <input type="number" min="1" max="86400" value=${polling} onInput=${(e) => setPolling(e.target.value)} style="min-width:80px" /> s</label>
    </div>
    ${access === 'read_write' && !upsert ? html`<p class="error">A read-write mapping needs an upsert field (a unique External ID) so that writes match records, as in Heroku Connect.</p>` : ''}
    ${describe ? html`<div class="filters"><label>Filter fields <input value=${filter} onInput=${(e) => setFilter(e.target.value)} /></label>
        <span class="muted">${picked.size} selected</span>
        <button data-test="editor-save" disabled=${saving || !object || (access === 'read_write' && !upsert)} onClick=${save}>${editing ? 'Save' : 'Create mapping'}</button></div>
      <table class="grid" data-test="field-picker"><thead><tr><th></th><th>Field</th><th>Label</th><th>Type</th><th>External id</th><th>Updateable</th></tr></thead>
        <tbody>${fields.map((f) => html`<tr><td><input type="checkbox" aria-label=${`field ${f.name}`} checked=${picked.has(f.name) || f.name === upsert} disabled=${f.name === 'Id' || f.name === upsert} onChange=${() => toggle(f.name)} /></td>
          <td>${f.name}</td><td>${f.label}</td><td>${f.type}${f.length ? `(${f.length})` : ''}${f.calculated ? ' · formula' : ''}</td>
          <td>${f.externalId ? (f.unique ? 'yes, unique' : 'yes') : ''}</td><td>${f.updateable ? 'yes' : ''}</td></tr>`)}</tbody></table>`
      : object ? html`<p class="muted">Reading ${object}'s fields…</p>` : ''}
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
    <h2>${d.object_name} <small class="muted">→ ${d.schema_name}.${d.table_name}</small> <${Badge} category=${d.state_category}>${d.state_label}</${Badge}>
      <a class="button" href=${`#mapping-edit/${encodeURIComponent(d.object_name)}`}>Edit</a>
      <a class="button" href=${`#explorer/${encodeURIComponent(d.object_name)}`}>Explorer</a>
      <a class="button" href=${`#logs/${encodeURIComponent(d.object_name)}`}>Logs</a></h2>
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
  const [event, setEvent] = useState('');
  const q = new URLSearchParams();
  if (object) q.set('object', object);
  if (level) q.set('level', level);
  if (direction) q.set('direction', direction);
  if (event) q.set('event', event);
  q.set('limit', '200');
  const { data } = useApi(`/api/logs?${q}`, ['activity', 'control']);
  // The types logged this week (read again when the operator acts, not on every new line).
  const events = useApi('/api/log-events?hours=168', ['control']);
  const types = (events.data ?? []).map((e) => e.event);
  if (event && !types.includes(event)) types.unshift(event);
  const count = new Map((events.data ?? []).map((e) => [e.event, e.lines]));
  return html`<section>
    <div class="filters">
      <label>Mapping <select data-test="log-object" value=${object} onChange=${(e) => setObject(e.target.value)}>
        <option value="">all</option>${(mappings ?? []).map((m) => html`<option value=${m.object_name}>${m.object_name}</option>`)}</select></label>
      <label>Type <select data-test="log-event" value=${event} onChange=${(e) => setEvent(e.target.value)}>
        <option value="">any</option>${types.map((t) => html`<option value=${t}>${t}${count.has(t) ? ` (${num(count.get(t))} this week)` : ''}</option>`)}</select></label>
      <label>Level at least <select data-test="log-level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
        <option value="">any</option>${['info', 'warn', 'error'].map((l) => html`<option value=${l}>${l}</option>`)}</select></label>
      <label>Direction <select data-test="log-direction" value=${direction} onChange=${(e) => setDirection(e.target.value)}>
        <option value="">both</option><option value="inbound">Salesforce → Postgres</option><option value="outbound">Postgres → Salesforce</option></select></label>
    </div>
    <table class="grid logs" data-test="logs"><thead><tr><th>When</th><th>Level</th><th>Mapping</th><th>Direction</th><th>Type</th><th>Message</th></tr></thead>
      <tbody>${(data ?? []).map((l) => html`<tr class=${'lvl-' + l.level} data-id=${l.id}><td>${fmtTime(l.at)}</td><td>${l.level}</td><td>${l.object_name ?? ''}</td><td>${l.direction ?? ''}</td><td>${l.event}</td><td>${l.message ?? ''}</td></tr>`)}</tbody></table>
    ${data && !data.length ? html`<p class="muted">Nothing logged for this filter.</p>` : ''}
  </section>`;
}

function WriteErrors({ admin, mappings }) {
  const [table, setTable] = useState('');
  const [text, setText] = useState('');
  const q = new URLSearchParams();
  if (table) q.set('table', table);
  if (text.trim()) q.set('q', text.trim());
  const { data } = useApi(`/api/write-errors?${q}`, ['writes', 'control', 'activity']);
  const [sel, setSel] = useState(new Set());
  const filtered = Boolean(table || text.trim());
  // "All that match": the filter itself goes to the server, which picks the writes it matches at that moment.
  const pick = filtered ? { ...(table ? { table } : {}), ...(text.trim() ? { match: text.trim() } : {}) } : { all: true };
  const what = [table && `of ${table}`, text.trim() && `whose message contains "${text.trim()}"`].filter(Boolean).join(' ');
  const toggle = (id) => { const s = new Set(sel); s.has(id) ? s.delete(id) : s.add(id); setSel(s); };
  const ids = [...sel].filter((id) => (data ?? []).some((e) => e.trigger_log_id === id));
  const done = () => setSel(new Set());
  const n = data ? data.length : 0;
  return html`<section>
    <div class="filters">
      <label>Mapping <select data-test="errors-object" value=${table} onChange=${(e) => setTable(e.target.value)}>
        <option value="">all</option>${(mappings ?? []).map((m) => html`<option value=${m.object_name}>${m.object_name}</option>`)}</select></label>
      <label>Message contains <input data-test="errors-match" placeholder="e.g. DUPLICATE_VALUE" value=${text} onInput=${(e) => setText(e.target.value)} /></label>
      ${filtered ? html`<span class="muted" data-test="errors-matching">${num(n)} failed write(s) match</span>` : ''}
    </div>
    <div class="toolbar">
      <button disabled=${!admin || !ids.length} onClick=${() => act('Retry selected', '/api/write-errors/retry', { ids }).then(done)}>Retry selected (${ids.length})</button>
      <button disabled=${!admin || !ids.length} onClick=${() => act('Discard selected', '/api/write-errors/discard', { ids }).then(done)}>Discard selected</button>
      <button data-test="retry-matching" disabled=${!admin || !n} onClick=${() => act(filtered ? 'Retry all that match' : 'Retry all', '/api/write-errors/retry', pick).then(done)}>${filtered ? `Retry all that match (${num(n)})` : 'Retry all'}</button>
      <button data-test="discard-matching" disabled=${!admin || !n} onClick=${() => confirm(filtered ? `Discard the ${n} failed write(s) ${what}? Nothing of them is sent.` : `Discard all ${n} failed writes? Nothing of them is sent.`)
        && act(filtered ? 'Discard all that match' : 'Discard all', '/api/write-errors/discard', pick).then(done)}>${filtered ? `Discard all that match (${num(n)})` : 'Discard all'}</button>
    </div>
    ${!data ? html`<p class="muted">Loading…</p>` : data.length ? html`<table class="grid" data-test="write-errors"><thead><tr><th></th><th>Id</th><th>Object</th><th>Row</th><th>Action</th><th>Salesforce said</th><th>When</th><th></th></tr></thead>
      <tbody>${data.map((e) => html`<tr data-id=${e.trigger_log_id}>
        <td><input type="checkbox" aria-label=${`select ${e.trigger_log_id}`} checked=${sel.has(e.trigger_log_id)} onChange=${() => toggle(e.trigger_log_id)} /></td>
        <td>${e.trigger_log_id}${e.archived ? html` <span class="muted">(archived)</span>` : ''}</td><td>${e.object_name ?? e.table_name}</td>
        <td>${e.record_id}${e.sfid ? html` <span class="muted">${e.sfid}</span>` : ''}</td><td>${e.action}</td><td class="msg">${e.sf_message}</td><td>${fmtTime(e.updated_at)}</td>
        <td class="actions"><button disabled=${!admin} onClick=${() => act(`Retry ${e.trigger_log_id}`, '/api/write-errors/retry', { ids: [e.trigger_log_id] })}>Retry</button>
          <button disabled=${!admin} onClick=${() => act(`Discard ${e.trigger_log_id}`, '/api/write-errors/discard', { ids: [e.trigger_log_id] })}>Discard</button></td>
      </tr>`)}</tbody></table>` : html`<p class="muted" data-test="no-write-errors">${filtered ? 'No failed write matches.' : 'No failed writes.'}</p>`}
  </section>`;
}

function Settings({ conn, admin }) {
  const audit = useApi('/api/audit', ['control']);
  const orphans = useApi('/api/orphans', ['control', 'activity']);
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
      <tr><th>Instance</th><td data-test="instance-url">${c.instance_url ?? '—'}</td></tr><tr><th>Login URL</th><td>${c.login_url}</td></tr><tr><th>API version</th><td>${c.api_version ?? c.configured_api_version}</td></tr>
      <tr><th>Write algorithm</th><td><select data-test="write-algorithm" disabled=${!admin} value=${c.write_algorithm}
        onChange=${(e) => act(`Write algorithm ${e.target.value}`, '/api/connection/write-algorithm', { algorithm: e.target.value })}>
        <option value="ordered">Ordered writes (each change in capture order)</option><option value="merged">Merged writes (changes per record folded)</option></select></td></tr>
      <tr><th>State</th><td><${Badge} category=${c.state_category}>${c.state_label}</${Badge}> <span class="muted">${c.state_message ?? ''}</span></td></tr>
    </table>
    <div class="toolbar">
      <button disabled=${!admin} onClick=${() => act('Pause', '/api/connection/pause')}>Pause</button>
      <button disabled=${!admin} onClick=${() => act('Resume', '/api/connection/resume')}>Resume</button>
      <button disabled=${!admin} onClick=${() => act('Recover', '/api/connection/recover')}>Recover from error</button>
    </div>
    <h2>Orphaned mappings <button disabled=${!admin} data-test="check-orphans" title="Reads the org's object list: 1 API call"
        onClick=${() => act('Check for removed objects', '/api/orphans/check').then((r) => r && pushNotice({ kind: 'ok', text: r.orphaned.length ? `Orphaned: ${r.orphaned.join(', ')}` : 'No mapped object is missing from Salesforce' }))}>Check Salesforce</button></h2>
    ${orphans.data && orphans.data.length ? html`<table class="grid" data-test="orphans"><thead><tr><th>Object</th><th>Table</th><th>Postgres rows</th><th>Why</th><th></th></tr></thead>
      <tbody>${orphans.data.map((o) => html`<tr><td>${o.object_name}</td><td>${o.table_name}</td><td>${num(o.pg_rows)}</td><td class="msg">${o.state_message ?? ''}</td>
        <td><button disabled=${!admin} onClick=${() => confirm(`Remove the mapping ${o.object_name}? Its table ${o.table_name} and its rows are kept.`) && act(`Remove ${o.object_name}`, `/api/orphans/${encodeURIComponent(o.object_name)}/remove`)}>Remove</button></td></tr>`)}</tbody></table>`
      : html`<p class="muted">None: every mapped object exists in Salesforce (as of the last check).</p>`}
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

// ---- Conflicts: a field changed on both sides (sql/000050_conflicts.sql) -----------------------------
const SIDE = { pg: 'Postgres', sf: 'Salesforce', values: 'chosen values' };
const KIND = { update: 'changed on both sides', pg_delete: 'deleted in Postgres, changed in Salesforce', sf_delete: 'deleted in Salesforce, changed in Postgres' };
const vals = (v, cols) => (v ? html`${cols.map((c) => html`<div><span class="muted">${c}:</span> ${show(v[c])}</div>`)}` : html`<span class="muted">—</span>`);

async function resolveConflict(k, choice) {
  const change = k.kind === 'update'
    ? `${k.fields.join(', ')} ${k.fields.length > 1 ? 'take' : 'takes'} ${choice === 'pg' ? "Postgres's" : "Salesforce's"} value${k.fields.length > 1 ? 's' : ''}, written to ${choice === 'pg' ? 'Salesforce' : 'Postgres'}`
    : k.kind === 'pg_delete' ? (choice === 'pg' ? 'the record is deleted in Salesforce too' : 'the row comes back from Salesforce')
    : (choice === 'sf' ? 'the row is removed from Postgres' : 'the record is created again in Salesforce from the row');
  if (!confirm(`Resolve conflict ${k.id} (${k.object_name} ${k.sfid ?? k.record_id}) for ${SIDE[choice]}: ${change}?`)) return;
  try {
    await api(`/api/conflicts/${k.id}/resolve`, { method: 'POST', body: { choice } });
    pushNotice({ kind: 'ok', text: `Conflict ${k.id}: resolved for ${SIDE[choice]}` });
  } catch (e) { pushNotice({ kind: 'error', text: `Conflict ${k.id}: ${e.message}`, hint: e.hint }); }
}

function Conflicts({ admin, mappings }) {
  const [state, setState] = useState('all');
  const [object, setObject] = useState('');
  const q = new URLSearchParams({ state });
  if (object) q.set('object', object);
  const { data, error } = useApi(`/api/conflicts?${q}`, ['control', 'activity', 'writes']);
  return html`<section>
    <p class="muted">A conflict is a field changed on both sides since the value both last agreed on. Each mapping's
      conflict_policy decides it (sf_wins, pg_wins, latest), or parks it (manual): then each side keeps its value and
      nothing of those fields is synced until you choose here.</p>
    <div class="filters">
      <label>Mapping <select data-test="conflicts-object" value=${object} onChange=${(e) => setObject(e.target.value)}>
        <option value="">all</option>${(mappings ?? []).map((m) => html`<option value=${m.object_name}>${m.object_name}</option>`)}</select></label>
      <label>State <select data-test="conflicts-state" value=${state} onChange=${(e) => setState(e.target.value)}>
        <option value="all">parked and resolved</option><option value="open">parked</option><option value="resolved">resolved</option></select></label>
    </div>
    ${error ? html`<p class="error">${error.message}</p>` : ''}
    ${!data ? html`<p class="muted">Loading…</p>` : data.length ? html`<table class="grid" data-test="conflicts"><thead><tr><th>Id</th><th>Mapping</th><th>Record</th><th>Conflict</th>
        <th>Postgres</th><th>Salesforce</th><th>Agreed before</th><th>Changed</th><th>Policy</th><th>Outcome</th><th></th></tr></thead>
      <tbody>${data.map((k) => {
        const cols = k.columns.length ? k.columns : Object.keys(k.sf_values ?? k.pg_values ?? {});
        return html`<tr data-id=${k.id} class=${k.open ? 'parked' : ''}>
          <td>${k.id}</td><td>${k.object_name}</td>
          <td>${k.record_id ? html`<a href=${`#explorer/${encodeURIComponent(k.object_name)}/${k.record_id}`}>${k.record_id}</a>` : ''} <span class="muted">${k.sfid ?? ''}</span></td>
          <td>${k.kind === 'update' ? k.fields.join(', ') : ''} <span class="muted">${KIND[k.kind]}</span></td>
          <td data-test="pg-values">${k.kind === 'pg_delete' ? html`<em>deleted</em>` : vals(k.pg_values, cols)}</td>
          <td data-test="sf-values">${k.kind === 'sf_delete' ? html`<em>deleted</em>` : vals(k.sf_values, cols)}</td>
          <td>${vals(k.base_values, cols)}</td>
          <td><div><span class="muted">Postgres</span> ${fmtTime(k.pg_at)}</div><div><span class="muted">Salesforce</span> ${fmtTime(k.sf_at)}</div></td>
          <td>${k.policy}</td>
          <td data-test="outcome">${k.open
            ? html`<${Badge} category="temporary">parked</${Badge}> <div class="muted">since ${fmtTime(k.detected_at)}</div>`
            : html`<${Badge}>${SIDE[k.winner] ?? k.winner}</${Badge}><div class="muted">${k.resolution === 'operator' ? `by ${k.resolved_by}` : `by ${k.resolution}`}, ${fmtTime(k.resolved_at)}</div>`}</td>
          <td class="actions">${k.open ? html`
            <button disabled=${!admin} title="Postgres's value is written to Salesforce" onClick=${() => resolveConflict(k, 'pg')}>Keep Postgres</button>
            <button disabled=${!admin} title="Salesforce's value is written to Postgres" onClick=${() => resolveConflict(k, 'sf')}>Take Salesforce</button>` : ''}</td>
        </tr>`;
      })}</tbody></table>` : html`<p class="muted" data-test="no-conflicts">No conflicts${state === 'open' ? ' are parked' : ''}.</p>`}
  </section>`;
}

// ---- Sync Explorer: a row's Postgres values beside its Salesforce values -----------------------------
const LASTOPS = ['SYNCED', 'INSERTED', 'UPDATED', 'PENDING', 'FAILED'];
const show = (v) => (v === null || v === undefined ? html`<span class="muted">null</span>` : typeof v === 'object' ? JSON.stringify(v) : String(v));

function Explorer({ object: initial, id, mappings }) {
  const objects = (mappings ?? []).map((m) => m.object_name);
  const object = initial || objects[0] || '';
  const [state, setState] = useState('');
  const [q, setQ] = useState('');
  const [typed, setTyped] = useState('');
  const params = new URLSearchParams({ limit: '100' });
  if (state) params.set('state', state);
  if (q) params.set('q', q);
  const rows = useApi(object ? `/api/explorer/${encodeURIComponent(object)}?${params}` : null, ['writes', 'activity']);
  const go = (o, rid) => { location.hash = `explorer/${encodeURIComponent(o)}${rid ? '/' + rid : ''}`; };
  if (!objects.length) return html`<p class="muted">No mappings yet.</p>`;
  return html`<section>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); setQ(typed.trim()); }}>
      <label>Mapping <select data-test="explorer-object" value=${object} onChange=${(e) => go(e.target.value)}>
        ${objects.map((o) => html`<option value=${o}>${o}</option>`)}</select></label>
      <label>Sync state <select data-test="explorer-state" value=${state} onChange=${(e) => setState(e.target.value)}>
        <option value="">any</option>${LASTOPS.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Search <input data-test="explorer-search" placeholder="id, sfid, error or name" value=${typed} onInput=${(e) => setTyped(e.target.value)} /></label>
      <button type="submit">Search</button>
    </form>
    ${id ? html`<${Record} object=${object} id=${id} />` : ''}
    <table class="grid" data-test="explorer-rows"><thead><tr><th>Id</th><th>sfid</th><th>Name</th><th>Sync state</th><th>Error</th><th>SystemModstamp</th></tr></thead>
      <tbody>${(rows.data ?? []).map((r) => html`<tr class=${String(r.id) === String(id) ? 'on' : ''}>
        <td><a href=${`#explorer/${encodeURIComponent(object)}/${r.id}`}>${r.id}</a></td><td>${r.sfid ?? ''}</td><td>${r.name ?? ''}</td>
        <td>${r._hc_lastop ?? ''}</td><td class="msg">${r._hc_err ?? ''}</td><td>${fmtTime(r.systemmodstamp)}</td></tr>`)}</tbody></table>
    ${rows.error ? html`<p class="error">${rows.error.message}</p>` : rows.data && !rows.data.length ? html`<p class="muted">No rows match.</p>` : ''}
  </section>`;
}

function Record({ object, id }) {
  const rec = useApi(`/api/explorer/${encodeURIComponent(object)}/${id}`, ['writes']);
  const [sf, setSf] = useState();
  const [busy, setBusy] = useState(false);
  useEffect(() => setSf(undefined), [object, id]);
  const lookup = async () => {
    setBusy(true);
    try { setSf(await api(`/api/explorer/${encodeURIComponent(object)}/${id}/salesforce`)); }
    catch (e) { pushNotice({ kind: 'error', text: `Salesforce lookup: ${e.message}`, hint: e.hint }); }
    finally { setBusy(false); }
  };
  if (rec.error) return html`<p class="error">${rec.error.message}</p>`;
  if (!rec.data) return html`<p class="muted">Loading…</p>`;
  const r = rec.data.row;
  const bySf = new Map((sf?.fields ?? []).map((f) => [f.field_name, f]));
  const diffs = (sf?.fields ?? []).filter((f) => f.differs).length;
  return html`<div class="record" data-test="record">
    <h2>${object} row ${r.id} <small class="muted">${r.sfid ?? 'no sfid yet'} · ${r._hc_lastop ?? ''}</small>
      <button data-test="read-salesforce" disabled=${busy || !r.sfid} onClick=${lookup}>Read from Salesforce (1 API call)</button>
      <a class="button" href=${`#explorer/${encodeURIComponent(object)}`}>Close</a></h2>
    ${r._hc_err ? html`<p class="error">${r._hc_err}</p>` : ''}
    ${sf ? html`<p data-test="differences" class=${diffs ? 'bad' : ''}>${diffs ? `${diffs} field(s) differ` : 'Postgres and Salesforce agree'}</p>` : html`<p class="muted">Salesforce is read only when you ask: each lookup costs one API call.</p>`}
    <table class="grid"><thead><tr><th>Field</th><th>Column</th><th>Type</th><th>Postgres</th><th>Salesforce</th></tr></thead>
      <tbody>${rec.data.fields.map((f) => {
        const s = bySf.get(f.field_name);
        return html`<tr class=${s?.differs ? 'diff' : ''} data-field=${f.field_name}><td>${f.field_name}</td><td>${f.column_name}</td><td>${f.sf_type}</td>
          <td>${show(r[f.column_name])}</td><td>${s ? (s.compared ? show(s.salesforce) : html`<span class="muted">not compared</span>`) : ''}</td></tr>`;
      })}</tbody></table>
  </div>`;
}

// ---- The shell -------------------------------------------------------------------------------------
const TABS = [['overview', 'Overview'], ['mappings', 'Mappings'], ['logs', 'Logs'], ['explorer', 'Sync Explorer'], ['errors', 'Write errors'], ['conflicts', 'Conflicts'], ['settings', 'Settings']];

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
  const parked = useApi('/api/conflicts?state=open', ['control', 'activity', 'writes']);
  const status = useLive();
  const admin = who.data?.role === 'admin';
  const c = conn.data;
  const current = tab.startsWith('mapping') ? 'mappings' : tab;
  let body;
  if (tab === 'mapping-new') body = html`<${MappingEditor} />`;
  else if (tab === 'mapping-edit') body = html`<${MappingEditor} object=${decodeURIComponent(arg)} />`;
  else if (tab === 'mapping') body = html`<${MappingDetail} object=${decodeURIComponent(arg)} />`;
  else if (tab === 'mappings') body = html`<${Mappings} admin=${admin} />`;
  else if (tab === 'logs') body = html`<${Logs} object=${arg && decodeURIComponent(arg)} mappings=${mappings.data} />`;
  else if (tab === 'explorer') body = html`<${Explorer} object=${arg && decodeURIComponent(arg)} id=${hash.split('/')[2]} mappings=${mappings.data} />`;
  else if (tab === 'errors') body = html`<${WriteErrors} admin=${admin} mappings=${mappings.data} />`;
  else if (tab === 'conflicts') body = html`<${Conflicts} admin=${admin} mappings=${mappings.data} />`;
  else if (tab === 'settings') body = html`<${Settings} conn=${c} admin=${admin} />`;
  else body = html`<${Overview} conn=${c} />`;
  return html`<header>
      <h1>hcsync <small>${c ? `${c.name} · ${c.schema_name}` : ''}</small></h1>
      <span class=${'live ' + status} data-test="live">${status}</span>
      <span class="muted">${who.data ? who.data.principal : ''}</span>
    </header>
    <nav>${TABS.map(([id, label]) => html`<a href=${'#' + id} class=${current === id ? 'on' : ''}>${label}${id === 'errors' && c && Number(c.errored_writes) ? html` <span class="count">${num(c.errored_writes)}</span>` : ''}${id === 'conflicts' && parked.data?.length ? html` <span class="count" data-test="parked-count">${parked.data.length >= 200 ? '200+' : parked.data.length}</span>` : ''}</a>`)}</nav>
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
