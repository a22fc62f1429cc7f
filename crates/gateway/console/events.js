// Events (`#/events`): every subscription with its backlog, dead letters and, for a broker
// source, its connection state and last error; then each dead-letter queue that holds
// something, with the event and its last error, and redrive / purge (asked first).

import { h, fill, scrollWrap, thead, notice, labelledSelect } from './dom.js';
import { describeError } from './api.js';
import { count, localTime, relative } from './format.js';
import { act } from './actions.js';
import { chartSet, BACKLOG_SPECS } from './charts.js';
import { rangeWindow } from './range.js';

export function create(params, ctx) {
  const subsBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const dlqBox = h('div', {});
  // Backlog over time, for one subscription at a time (the one picked in the select).
  const backlogCharts = chartSet(BACKLOG_SPECS);
  const backlogPick = h('span', {});
  let picked = '';
  const el = h('section', { class: 'events' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Events')),
    h('section', { 'aria-labelledby': 'h-subs' }, h('h2', { id: 'h-subs' }, 'Subscriptions'), subsBox),
    h('section', { 'aria-labelledby': 'h-backlog' },
      h('div', { class: 'section-head' }, h('h2', { id: 'h-backlog' }, 'Backlog, last hour'), backlogPick),
      backlogCharts.el),
    h('section', { 'aria-labelledby': 'h-dlq' }, h('h2', { id: 'h-dlq' }, 'Dead letters'), dlqBox));

  async function load(io) {
    const [subs, dlq] = await io.all([io.get('/gust/v1/subscriptions'), io.get('/gust/v1/dlq')]);
    const list = subs.ok ? sortSubs(subs.value.subscriptions || []) : [];
    if (subs.ok) renderSubs(list);
    else fill(subsBox, notice('error', `Subscriptions unavailable: ${describeError(subs.error)}`));
    if (dlq.ok) renderDlq(list, dlq.value.dead_letters || []);
    else fill(dlqBox, notice('error', `Dead letters unavailable: ${describeError(dlq.error)}`));
    await loadBacklog(io, list);
  }

  async function loadBacklog(io, list) {
    if (!list.length) {
      backlogCharts.fail('no subscriptions');
      return;
    }
    if (!list.some((s) => s.name === picked)) {
      // The first of the app's own subscriptions (internal queues are listed last).
      picked = list[0].name;
      const { wrap, select } = labelledSelect('backlog-subscription', 'Subscription',
        list.map((s) => [s.name, s.name]), picked);
      select.addEventListener('change', () => { picked = select.value; ctx.reload(); });
      fill(backlogPick, wrap);
    }
    const win = rangeWindow('1h');
    const [r] = await io.all([io.get(`/gust/v1/subscriptions/${encodeURIComponent(picked)}/series`,
      { since_ms: win.since_ms, until_ms: win.until_ms, step_s: win.step_s })]);
    if (r.ok) backlogCharts.update(r.value, win);
    else backlogCharts.fail(describeError(r.error));
  }

  function renderSubs(list) {
    if (!list.length) {
      fill(subsBox, notice('empty', 'This app has no subscriptions.'));
      return;
    }
    const table = h('table', { id: 'subscriptions', class: 'data' },
      thead('Subscription', 'Topic', 'Function', ['Backlog', 'num'], ['Dead letters', 'num'], 'Source'),
      h('tbody', {}, list.map((s) => h('tr', {
        'data-subscription': s.name, class: s.name.startsWith('gust.') ? 'internal' : null,
      },
      h('th', { scope: 'row', 'data-col': 'name' }, s.name),
      h('td', { 'data-col': 'topic' }, s.topic),
      h('td', { 'data-col': 'function' }, h('a', { href: `#/functions/${encodeURIComponent(s.function)}` }, s.function)),
      h('td', { 'data-col': 'backlog', class: 'num', 'data-value': s.backlog }, count(s.backlog)),
      h('td', { 'data-col': 'dead_letters', class: `num${s.dead_letters ? ' bad-text' : ''}`, 'data-value': s.dead_letters },
        count(s.dead_letters)),
      h('td', { 'data-col': 'source' }, sourceCell(s.source))))));
    fill(subsBox, scrollWrap(table, 'Subscriptions'),
      h('p', { class: 'help' }, 'Subscriptions named gust.async.* and gust.schedule.* are the queues of asynchronous invocations and schedule runs.'));
  }

  function renderDlq(subs, letters) {
    const bySub = new Map();
    for (const d of letters) {
      if (!bySub.has(d.subscription)) bySub.set(d.subscription, []);
      bySub.get(d.subscription).push(d);
    }
    const names = [...new Set([...subs.filter((s) => s.dead_letters > 0).map((s) => s.name), ...bySub.keys()])];
    if (!names.length) {
      fill(dlqBox, notice('empty', 'No dead letters: every event was delivered or is still being retried.'));
      return;
    }
    fill(dlqBox, names.map((name) => dlqSection(name, bySub.get(name) || [], subs.find((s) => s.name === name))));
  }

  function dlqSection(name, letters, sub) {
    const n = letters.length || (sub ? sub.dead_letters : 0);
    const fnName = sub ? sub.function : 'its function';
    const redrive = h('button', { type: 'button', 'data-action': 'redrive', 'data-subscription': name }, `Redrive all ${count(n)}`);
    const purge = h('button', { type: 'button', class: 'danger', 'data-action': 'purge', 'data-subscription': name }, `Purge all ${count(n)}`);
    redrive.addEventListener('click', () => act({
      button: redrive,
      question: `Redrive ${plural(n, 'dead letter')} of ${name}? They are delivered to ${fnName} again.`,
      yesLabel: 'Redrive',
      call: { method: 'POST', path: `/gust/v1/dlq/${encodeURIComponent(name)}/redrive` },
      done: (a) => `Redriven ${a.redriven ?? n}`,
      reload: ctx.reload,
    }));
    purge.addEventListener('click', () => act({
      button: purge,
      question: `Delete ${plural(n, 'dead letter')} of ${name} for good? This cannot be undone.`,
      yesLabel: 'Purge',
      call: { method: 'DELETE', path: `/gust/v1/dlq/${encodeURIComponent(name)}` },
      done: (a) => `Purged ${a.purged ?? n}`,
      reload: ctx.reload,
    }));
    const hid = `h-dlq-${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
    const table = h('table', { class: 'data dlq', 'data-subscription': name },
      thead(['Seq', 'num'], 'Failed', ['Attempts', 'num'], 'Reason', 'Last error', 'Event', 'Data', 'One letter'),
      h('tbody', {}, letters.map((d) => letterRow(name, d, fnName))));
    return h('section', { class: 'dlq-section', 'aria-labelledby': hid },
      h('div', { class: 'section-head' },
        h('h3', { id: hid }, name, ' ', h('span', { class: 'muted' }, `(${plural(n, 'dead letter')})`)),
        h('div', { class: 'toolbar' }, redrive, purge)),
      letters.length ? scrollWrap(table, `Dead letters of ${name}`) : notice('info', 'The entries could not be listed.'));
  }

  function letterRow(sub, d, fnName) {
    const redrive = h('button', { type: 'button', class: 'small', 'data-action': 'redrive-one', 'data-seq': d.seq }, 'Redrive');
    const purge = h('button', { type: 'button', class: 'small danger', 'data-action': 'purge-one', 'data-seq': d.seq }, 'Purge');
    const path = `/gust/v1/dlq/${encodeURIComponent(sub)}`;
    redrive.addEventListener('click', () => act({
      button: redrive,
      question: `Redrive dead letter ${d.seq} of ${sub}? It is delivered to ${fnName} again.`,
      yesLabel: 'Redrive',
      call: { method: 'POST', path: `${path}/redrive`, query: { seq: d.seq } },
      done: (a) => `Redriven ${a.redriven ?? 1}`,
      reload: ctx.reload,
    }));
    purge.addEventListener('click', () => act({
      button: purge,
      question: `Delete dead letter ${d.seq} of ${sub} for good? This cannot be undone.`,
      yesLabel: 'Purge',
      call: { method: 'DELETE', path, query: { seq: d.seq } },
      done: (a) => `Purged ${a.purged ?? 1}`,
      reload: ctx.reload,
    }));
    const e = d.event || {};
    return h('tr', { 'data-seq': d.seq },
      h('td', { class: 'num', 'data-col': 'seq' }, d.seq),
      h('td', { 'data-col': 'failed' }, d.failed_at ? [localTime(d.failed_at), h('br'), h('span', { class: 'muted' }, relative(d.failed_at))] : '—'),
      h('td', { class: 'num', 'data-col': 'attempts' }, count(d.attempts)),
      h('td', { 'data-col': 'reason' }, d.reason),
      h('td', { 'data-col': 'last_error', class: 'wrap' }, d.last_error),
      h('td', { 'data-col': 'event' }, h('code', {}, e.type || '?'), h('br'), h('span', { class: 'muted', title: `source ${e.source || '?'}` }, e.id || '')),
      h('td', { 'data-col': 'data' }, h('details', {},
        h('summary', {}, e.data_base64 ? 'Data (base64)' : 'Data'),
        h('pre', { class: 'event-data' }, pretty(e.data, e.data_base64)))),
      h('td', { 'data-col': 'actions', class: 'row-actions' }, redrive, ' ', purge));
  }

  return { el, title: 'Events', nav: 'events', load, dispose() { backlogCharts.destroy(); } };
}

function sortSubs(list) {
  const internal = (s) => (s.name.startsWith('gust.') ? 1 : 0);
  return [...list].sort((a, b) => internal(a) - internal(b) || a.name.localeCompare(b.name));
}

function sourceCell(src) {
  if (!src) return h('span', { class: 'muted' }, 'Gust topic');
  const good = src.state === 'connected';
  return [
    h('span', { class: 'badge' }, src.type), ' ',
    h('span', { class: `badge ${good ? 'good' : 'bad'}` }, src.state),
    src.since ? h('span', { class: 'muted' }, ` since ${localTime(src.since)}`) : null,
    src.lag !== null && src.lag !== undefined ? ` · lag ${count(src.lag)}` : null,
    h('br'), h('span', { class: 'muted' }, `${src.address || ''} ${src.url ? `at ${src.url}` : ''} (${src.guarantee || ''})`),
    src.last_error ? [h('br'), h('span', { class: 'bad-text' }, `Last error: ${src.last_error}`)] : null,
  ];
}

function pretty(data, base64) {
  if (base64 || typeof data !== 'string') return String(data ?? '');
  try {
    return JSON.stringify(JSON.parse(data), null, 2);
  } catch {
    return data;
  }
}

function plural(n, word) {
  return `${count(n)} ${word}${n === 1 ? '' : 's'}`;
}
