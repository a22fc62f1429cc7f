// The overview (`#/`): the app's status line, what needs attention, the four charts summed
// over all functions, the functions table (configuration from /functions, figures from
// /stats), the GB-s used against always-on instances, and the sandbox's protections. It
// refreshes itself every 5 s (the router's background load); cells are updated in place, so
// a refresh neither flickers nor takes the keyboard focus away.

import { h, fill, scrollWrap, thead, notice } from './dom.js';
import { describeError } from './api.js';
import { count, ms, localTime, relative, DASH } from './format.js';
import { chartSet } from './charts.js';
import { rangeSelect, rangeWindow } from './range.js';

const COLS = ['requests', 'errors', 'p50', 'p99', 'cold', 'instances'];
const ATTENTION_LINKS = { dlq: '#/events', source: '#/events', schedule: '#/schedules' };

export function create(params, ctx) {
  const status = h('p', { id: 'app-status', class: 'status-line' }, 'Loading…');
  const attention = h('ul', { id: 'attention', class: 'attention' });
  const charts = chartSet();
  const tbody = h('tbody');
  const table = h('table', { id: 'functions', class: 'data' },
    h('caption', { class: 'sr-only' }, 'Functions and their figures in the selected range'),
    thead('Function', ['Memory (MB)', 'num'], ['Requests', 'num'], ['Errors', 'num'],
      ['p50 (ms)', 'num'], ['p99 (ms)', 'num'], ['Cold starts', 'num'], ['Instances', 'num']),
    tbody);
  const tableNote = h('div');
  const cost = h('p', { id: 'cost', class: 'cost' });
  const sandbox = h('ul', { class: 'sandbox' });
  const rows = new Map();
  let lastAttention = '';
  let lastSandbox = '';

  const el = h('section', { class: 'overview' },
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Overview'),
      h('div', { class: 'toolbar' }, rangeSelect(() => ctx.reload()))),
    status,
    h('section', { 'aria-labelledby': 'h-attention' }, h('h2', { id: 'h-attention' }, 'Needs attention'), attention),
    h('section', { 'aria-labelledby': 'h-activity' }, h('h2', { id: 'h-activity' }, 'Activity, all functions'), charts.el),
    h('section', { 'aria-labelledby': 'h-functions' },
      h('h2', { id: 'h-functions' }, 'Functions'), tableNote, scrollWrap(table, 'Functions'), cost),
    h('section', { 'aria-labelledby': 'h-sandbox' }, h('h2', { id: 'h-sandbox' }, 'Sandbox'), sandbox));

  async function load(io) {
    const win = rangeWindow();
    const [st, fns, stats, series] = await io.all([
      io.get('/gust/v1/status'),
      io.get('/gust/v1/functions'),
      io.get('/gust/v1/stats', { since_ms: win.since_ms }),
      io.get('/gust/v1/series', { since_ms: win.since_ms, until_ms: win.until_ms, step_s: win.step_s }),
    ]);
    if (st.ok) renderStatus(st.value);
    else await statusFallback(io, st.error);
    if (series.ok) charts.update(series.value, win);
    else charts.fail(describeError(series.error));
    renderFunctions(fns, stats);
    renderCost(win, fns, stats, series);
  }

  function renderStatus(s) {
    const started = s.started_at ? ` · running since ${localTime(s.started_at)} (${relative(s.started_at)})` : '';
    fill(status, h('strong', {}, s.app), ` · version ${s.version}${started}`);
    const items = Array.isArray(s.attention) ? s.attention : [];
    const key = JSON.stringify(items);
    if (key !== lastAttention) {
      lastAttention = key;
      fill(attention, items.length
        ? items.map((a) => h('li', { 'data-kind': a.kind },
          h('span', { class: `badge kind-${a.kind}` }, a.kind), ' ',
          ATTENTION_LINKS[a.kind] ? h('a', { href: ATTENTION_LINKS[a.kind] }, a.subject) : h('strong', {}, a.subject),
          ': ', a.message))
        : h('li', { class: 'empty' }, 'Nothing needs attention'));
    }
    const prot = Array.isArray(s.sandbox) ? s.sandbox : [];
    const skey = JSON.stringify(prot);
    if (skey !== lastSandbox) {
      lastSandbox = skey;
      fill(sandbox, prot.length
        ? prot.map((p) => h('li', { class: p.enforced ? 'ok' : 'warn' },
          h('span', { class: 'mark', 'aria-hidden': 'true' }, p.enforced ? '✓' : '!'), ' ',
          h('strong', {}, p.protection), `: ${p.enforced ? 'enforced' : 'not enforced'}`,
          p.detail ? h('span', { class: 'muted' }, ` (${p.detail})`) : null))
        : h('li', { class: 'empty' }, 'No sandbox information.'));
    }
  }

  async function statusFallback(io, error) {
    const text = describeError(error);
    lastAttention = '';
    lastSandbox = '';
    fill(attention, h('li', { class: 'error' }, `What needs attention is unavailable: ${text}`));
    fill(sandbox, h('li', { class: 'error' }, `Unavailable: ${text}`));
    const [dep] = await io.all([io.get('/gust/v1/deployments')]);
    const running = dep.ok ? (dep.value.versions || []).find((v) => v.running) : null;
    fill(status, dep.ok ? [h('strong', {}, dep.value.app), running ? ` · version ${running.version}` : ''] : '',
      h('span', { class: 'muted' }, `${dep.ok ? ' · ' : ''}status unavailable (${text})`));
  }

  function renderFunctions(fns, stats) {
    if (!fns.ok) {
      fill(tableNote, notice('error', `Functions unavailable: ${describeError(fns.error)}`));
      return;
    }
    fill(tableNote, stats.ok ? null : notice('error', `Figures unavailable: ${describeError(stats.error)}`));
    const byName = new Map((stats.ok ? stats.value.functions || [] : []).map((s) => [s.function, s]));
    const list = [...(fns.value.functions || [])].sort((a, b) => a.name.localeCompare(b.name));
    const seen = new Set();
    list.forEach((f) => {
      seen.add(f.name);
      let row = rows.get(f.name);
      if (!row) {
        row = makeRow(f.name);
        rows.set(f.name, row);
      }
      const s = byName.get(f.name);
      const i = f.instances || {};
      const inst = `${count(i.total ?? 0)}${i.idle || i.waiting ? ` (${count(i.idle)} idle${i.waiting ? `, ${count(i.waiting)} waiting` : ''})` : ''}`;
      const have = stats.ok;
      set(row.memory, count(f.memory_mb), f.memory_mb);
      set(row.requests, have ? count(s ? s.requests : 0) : DASH, s ? s.requests : 0);
      set(row.errors, have ? count(s ? s.errors : 0) : DASH, s ? s.errors : 0);
      set(row.p50, s ? ms(s.p50_ms) : DASH, s ? s.p50_ms : null);
      set(row.p99, s ? ms(s.p99_ms) : DASH, s ? s.p99_ms : null);
      set(row.cold, have ? count(s ? s.cold_starts : 0) : DASH, s ? s.cold_starts : 0);
      set(row.instances, inst, i.total ?? 0);
      row.tr.classList.toggle('has-errors', Boolean(s && s.errors));
    });
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        rows.delete(name);
      }
    }
    const order = list.map((f) => rows.get(f.name).tr);
    if (order.some((tr, k) => tbody.children[k] !== tr)) tbody.append(...order);
    if (!list.length) fill(tableNote, notice('empty', 'No functions are deployed.'));
  }

  function makeRow(name) {
    const cells = {};
    const tr = h('tr', { 'data-function': name },
      h('th', { scope: 'row', 'data-col': 'name' }, h('a', { href: `#/functions/${encodeURIComponent(name)}` }, name)),
      (cells.memory = h('td', { class: 'num', 'data-col': 'memory' })),
      COLS.map((c) => (cells[c] = h('td', { class: 'num', 'data-col': c }))));
    return { tr, ...cells };
  }

  function renderCost(win, fns, stats, series) {
    if (!fns.ok) {
      fill(cost, 'Cost unavailable: the functions could not be read.');
      return;
    }
    let billed = null;
    if (stats.ok) billed = (stats.value.functions || []).reduce((a, s) => a + (s.billed_mb_ms || 0), 0);
    else if (series.ok) billed = (series.value.points || []).reduce((a, p) => a + (p.billed_mb_ms || 0), 0);
    if (billed === null) {
      fill(cost, `Cost unavailable: ${describeError(stats.error)}`);
      return;
    }
    const list = fns.value.functions || [];
    const used = billed / 1024 / 1000;
    const seconds = win.ms / 1000;
    const alwaysOn = list.reduce((a, f) => a + (f.memory_mb / 1024) * seconds, 0);
    const share = alwaysOn > 0 ? (used / alwaysOn) * 100 : 0;
    fill(cost, h('strong', {}, 'Compute: '),
      `${gbs(used)} GB-s billed in the ${win.label}, against ${gbs(alwaysOn)} GB-s for one always-on instance of each of the ${list.length} functions (at its memory): `,
      h('strong', {}, `${share < 0.01 && share > 0 ? '<0.01' : share.toFixed(2)} %`), ' of that.');
  }

  return { el, title: 'Overview', nav: 'overview', autoRefreshMs: 5000, load, dispose: () => charts.destroy() };
}

function set(td, text, raw) {
  if (td.textContent !== text) td.textContent = text;
  const v = raw === null || raw === undefined ? '' : String(raw);
  if (td.dataset.value !== v) td.dataset.value = v;
}

function gbs(v) {
  if (v === 0) return '0';
  if (v < 10) return v.toFixed(3);
  return Math.round(v).toLocaleString();
}
