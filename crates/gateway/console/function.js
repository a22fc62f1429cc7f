// A function's page (`#/functions/NAME`): its configuration, the four charts for it, its
// invocations (filtered by the API: outcome, trigger, cold, since the range's start), one
// invocation's detail with its log lines and trace link, and the live tail of its logs.

import { h, fill, scrollWrap, thead, notice, pairs, labelledSelect, outcomeBadge } from './dom.js';
import { api, describeError } from './api.js';
import { count, ms, localTime, relative, DASH } from './format.js';
import { chartSet } from './charts.js';
import { rangeSelect, rangeWindow } from './range.js';
import { configList } from './config.js';
import { liveTail } from './tail.js';

const OUTCOMES = ['', 'success', 'error', 'timeout', 'crash', 'out_of_memory', 'init_error'];
const TRIGGERS = ['', 'http', 'event', 'schedule', 'direct'];
const LIMIT = 100;
const lineTime = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

export function create([name], ctx) {
  const config = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const charts = chartSet();
  const outcome = labelledSelect('filter-outcome', 'Outcome', OUTCOMES.map((o) => [o, o ? o.replace(/_/g, ' ') : 'any']));
  const trigger = labelledSelect('filter-trigger', 'Trigger', TRIGGERS.map((t) => [t, t || 'any']));
  const cold = labelledSelect('filter-cold', 'Start', [['', 'any'], ['true', 'cold'], ['false', 'warm']]);
  for (const f of [outcome, trigger, cold]) f.select.addEventListener('change', () => ctx.reload());
  const tbody = h('tbody');
  const table = h('table', { id: 'invocations', class: 'data clickable' },
    h('caption', { class: 'sr-only' }, `Invocations of ${name}, newest first; choose one to see its logs`),
    thead('Time', 'Trigger', 'Outcome', ['Duration (ms)', 'num'], 'Cold start', 'Error'), tbody);
  const invNote = h('div');
  const detail = h('section', { id: 'invocation-detail', class: 'detail', 'aria-labelledby': 'h-detail', hidden: true });
  const tail = liveTail(name);
  let selected = null;

  const el = h('section', { class: 'function' },
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, h('span', { class: 'kicker' }, 'Function '), name),
      h('div', { class: 'toolbar' }, rangeSelect(() => ctx.reload()))),
    h('p', { class: 'back' }, h('a', { href: '#/' }, '← All functions')),
    h('section', { 'aria-labelledby': 'h-config' }, h('h2', { id: 'h-config' }, 'Configuration'), config),
    h('section', { 'aria-labelledby': 'h-activity' }, h('h2', { id: 'h-activity' }, 'Activity'), charts.el),
    h('section', { 'aria-labelledby': 'h-invocations' },
      h('h2', { id: 'h-invocations' }, 'Invocations'),
      h('div', { class: 'toolbar filters', role: 'group', 'aria-label': 'Filter invocations' }, outcome.wrap, trigger.wrap, cold.wrap),
      invNote, scrollWrap(table, 'Invocations', 'tall'), detail),
    h('section', { 'aria-labelledby': 'h-tail' }, h('h2', { id: 'h-tail' }, 'Live logs'), tail.el));

  async function load(io) {
    const win = rangeWindow();
    const path = `/gust/v1/functions/${encodeURIComponent(name)}`;
    const [cfg, series, inv] = await io.all([
      io.get(path),
      io.get('/gust/v1/series', { function: name, since_ms: win.since_ms, until_ms: win.until_ms, step_s: win.step_s }),
      io.get('/gust/v1/invocations', {
        function: name, limit: LIMIT, since_ms: win.since_ms,
        outcome: outcome.select.value, trigger: trigger.select.value, cold: cold.select.value,
      }),
    ]);
    if (cfg.ok) fill(config, configList(cfg.value));
    else await configFallback(io, cfg.error);
    if (series.ok) charts.update(series.value, win);
    else charts.fail(describeError(series.error));
    if (inv.ok) renderInvocations(inv.value.invocations || [], win);
    else fill(invNote, notice('error', `Invocations unavailable: ${describeError(inv.error)}`));
    if (selected) {
      const again = (inv.ok ? inv.value.invocations || [] : []).find((i) => i.request_id === selected.request_id);
      await showDetail(again || selected, io, false);
    }
  }

  async function configFallback(io, error) {
    const [list] = await io.all([io.get('/gust/v1/functions')]);
    const basic = list.ok ? (list.value.functions || []).find((f) => f.name === name) : null;
    if (error && error.status === 404 && list.ok && !basic) {
      fill(config, notice('error', `No function ${name} is deployed now. Its history is below.`));
      return;
    }
    fill(config, notice('error', `The full configuration is unavailable (${describeError(error)})${basic ? '; the basics:' : '.'}`),
      basic ? configList(basic) : null);
  }

  function renderInvocations(list, win) {
    const filtered = outcome.select.value || trigger.select.value || cold.select.value;
    fill(invNote, list.length ? (list.length >= LIMIT ? notice('info', `The newest ${LIMIT} in the ${win.label}.`) : null)
      : notice('empty', filtered ? `No invocations match these filters in the ${win.label}.` : `No invocations in the ${win.label}.`));
    fill(tbody, list.map((i) => {
      const tr = h('tr', {
        'data-request-id': i.request_id, class: i.outcome !== 'success' ? 'bad-row' : null,
        'aria-current': selected && selected.request_id === i.request_id ? 'true' : null,
        onclick: () => showDetail(i, null, true),
      },
      h('td', { 'data-col': 'time' }, h('button', { type: 'button', class: 'link', title: `Show invocation ${i.request_id}` },
        localTime(i.start_ms))),
      h('td', { 'data-col': 'trigger' }, i.trigger),
      h('td', { 'data-col': 'outcome' }, outcomeBadge(i.outcome)),
      h('td', { 'data-col': 'duration', class: 'num', 'data-value': i.duration_ms }, ms(i.duration_ms)),
      h('td', { 'data-col': 'cold', 'data-value': String(i.cold_start) }, i.cold_start ? 'yes' : 'no'),
      h('td', { 'data-col': 'error' }, i.error_type || ''));
      return tr;
    }));
  }

  async function showDetail(inv, io, focus) {
    selected = inv;
    for (const tr of tbody.children) {
      if (tr.dataset.requestId === inv.request_id) tr.setAttribute('aria-current', 'true');
      else tr.removeAttribute('aria-current');
    }
    const logs = h('pre', { id: 'invocation-logs', class: 'logs', tabindex: '0' }, 'Loading log lines…');
    const heading = h('h3', { id: 'h-detail', tabindex: '-1' }, 'Invocation ', h('code', {}, inv.request_id));
    fill(detail,
      h('div', { class: 'detail-head' }, heading,
        h('button', { type: 'button', class: 'small', onclick: closeDetail }, 'Close')),
      pairs({ class: 'config' }, [
        ['Started', `${localTime(inv.start_ms)} (${relative(inv.start_ms)})`],
        ['Trigger', inv.trigger],
        ['Outcome', outcomeBadge(inv.outcome)],
        ['Error type', inv.error_type || DASH],
        ['Duration', `${ms(inv.duration_ms)} ms (billed ${count(inv.billed_ms)} ms)`],
        ['Memory', `${count(inv.memory_mb)} MB`],
        ['Start', inv.cold_start ? `cold${inv.init_ms !== null && inv.init_ms !== undefined ? `, init ${ms(inv.init_ms)} ms` : ''}` : 'warm'],
        ['Trace', inv.trace_id
          ? h('a', { id: 'trace-link', href: `#/traces/${encodeURIComponent(inv.trace_id)}` }, inv.trace_id)
          : 'none recorded'],
      ]),
      h('h4', {}, 'Log lines'), logs);
    detail.hidden = false;
    if (focus) {
      heading.focus();
      detail.scrollIntoView({ block: 'nearest' });
    }
    const get = io ? io.get : (p, q) => api(p, { query: q });
    try {
      const res = await get('/gust/v1/logs', { request: inv.request_id, limit: 1000 });
      if (selected !== inv) return;
      const lines = res.lines || [];
      logs.textContent = lines.length
        ? lines.map((l) => `${lineTime.format(new Date(l.ts_ms))} ${l.stream === 'stderr' ? '[stderr] ' : ''}${l.line}`).join('\n')
        : 'No log lines were kept for this invocation.';
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (selected === inv) logs.textContent = `Log lines unavailable: ${describeError(e)}`;
    }
  }

  function closeDetail() {
    selected = null;
    detail.hidden = true;
    for (const tr of tbody.children) tr.removeAttribute('aria-current');
    tbody.querySelector('button')?.focus();
  }

  return {
    el, title: name, nav: 'overview', load,
    dispose() {
      tail.stop();
      charts.destroy();
    },
  };
}
