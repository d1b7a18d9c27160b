/* Vitals dashboard: shared helpers (DOM, API calls with the signed-in key, formatting,
   sortable tables, empty states). Plain browser JavaScript, no build step. */
'use strict';

const V = (window.Vitals = {});

V.KEY_STORE = 'vitals.apiKey';
V.REFRESH_MS = 10000;
V.session = null;
V.pages = {};

/** el('div', {class: 'x', onclick: fn}, child, 'text') — text always goes in as text. */
V.el = function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

V.key = () => sessionStorage.getItem(V.KEY_STORE);

class ApiFailure extends Error {
  constructor(status, body) {
    super((body && (body.message || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}
V.ApiFailure = ApiFailure;

/** Call a Vitals route with the signed-in key; JSON in, JSON out (or text for text routes). */
V.api = async function api(path, { method = 'GET', body, text = false } = {}) {
  const headers = { Accept: text ? 'text/plain' : 'application/json' };
  const key = V.key();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (text && res.ok) return res.text();
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) throw new ApiFailure(res.status, data);
  return data;
};

/** ClearML-style `POST /events.<action>`: the `data` of the envelope. */
V.events = async (action, body) => (await V.api(`/events.${action}`, { method: 'POST', body })).data;

V.qs = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x)); else u.append(k, v);
  }
  return u.toString();
};

V.num = function num(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
};
V.pct = (v, digits = 1) => (v === null || v === undefined ? '—' : `${V.num(v * 100, digits)}%`);
V.ms = (v) => (v === null || v === undefined ? '—' : `${V.num(v, 1)} ms`);
V.ago = function ago(ts, now) {
  if (!ts) return '—';
  const s = Math.max(0, (now || Date.now() / 1000) - ts);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
};
V.time = (ts) => (ts ? new Date(ts * 1000).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '—');

V.emptyState = (title, text, example) => V.el('div', { class: 'empty-state', 'data-empty': '' },
  V.el('h3', {}, title), V.el('p', {}, text), example ? V.el('pre', {}, example) : null);

V.errorBox = (err) => {
  const status = err && err.status;
  let msg = err && err.message ? err.message : String(err);
  if (status === 403) msg = `Not allowed with this key: ${msg}`;
  return V.el('div', { class: 'card error', role: 'alert', 'data-error': status || '' }, msg);
};

V.setStatus = (text) => { document.getElementById('status').textContent = text; };

/**
 * A sortable table. columns: [{key, label, num?, render?(row) → node|text, sort?(row) → value}].
 * Clicking a header sorts by it (again: reverses). onRow(row) makes rows clickable.
 */
V.table = function table(columns, rows, { onRow, sortKey, desc = false, id } = {}) {
  const state = { key: sortKey, desc };
  const wrap = V.el('div', { class: 'scroll' });
  const draw = () => {
    const col = columns.find((c) => c.key === state.key);
    const sorted = rows.slice();
    if (col) {
      const val = col.sort || ((r) => r[col.key]);
      sorted.sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        const c = x < y ? -1 : 1;
        return state.desc ? -c : c;
      });
    }
    const head = V.el('tr', {}, columns.map((c) => V.el('th', {
      class: `sortable${c.num ? ' num' : ''}`, 'data-key': c.key,
      onclick: () => { state.desc = state.key === c.key ? !state.desc : !!c.num; state.key = c.key; draw(); },
    }, c.label, state.key === c.key ? V.el('span', { class: 'arrow' }, state.desc ? ' ▼' : ' ▲') : null)));
    const body = sorted.map((r) => V.el('tr', {
      class: onRow ? 'click' : null, onclick: onRow ? () => onRow(r) : null,
    }, columns.map((c) => V.el('td', { class: c.num ? 'num' : null, 'data-col': c.key },
      c.render ? c.render(r) : V.num(r[c.key])))));
    wrap.replaceChildren(V.el('table', { id }, V.el('thead', {}, head), V.el('tbody', {}, body)));
  };
  draw();
  return wrap;
};

V.tile = (label, value, sub, attrs = {}) => V.el('div', { class: 'tile', ...attrs },
  V.el('div', { class: 'label' }, label), V.el('div', { class: 'value' }, value),
  sub ? V.el('div', { class: 'sub' }, sub) : null);

/** Load a vendored script once (Plotly is only fetched by pages that draw plots). */
V.loadScript = (() => {
  const loaded = {};
  return (src) => (loaded[src] = loaded[src] || new Promise((resolve, reject) => {
    const s = V.el('script', { src });
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  }));
})();
