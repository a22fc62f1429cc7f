// Deployments (`#/deployments`): the running version and the ones kept for rollback, what
// changed when the answers say (a version's extra fields; the rollback's own answer: functions
// added, replaced, kept, removed, other manifest changes, warnings), and rollback (asked first).

import { h, fill, scrollWrap, thead, notice, pairs } from './dom.js';
import { describeError } from './api.js';
import { count, localTime, relative, humanize } from './format.js';
import { act } from './actions.js';
import { generic } from './config.js';

const KNOWN = new Set(['version', 'running', 'deployed_at', 'functions', 'code', 'changes']);
const CHANGE_FIELDS = ['added', 'replaced', 'removed', 'kept', 'manifest_changes', 'warnings'];

export function create(params, ctx) {
  const box = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const change = h('section', { id: 'last-change', class: 'detail', 'aria-labelledby': 'h-change', hidden: true });
  const el = h('section', { class: 'deployments' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Deployments')), change, box);

  async function load(io) {
    let answer;
    try {
      answer = await io.get('/gust/v1/deployments');
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      fill(box, notice('error', `Deployments unavailable: ${describeError(e)}`));
      return;
    }
    const versions = answer.versions || [];
    if (!versions.length) {
      fill(box, notice('empty', 'No versions are kept.'));
      return;
    }
    const running = versions.find((v) => v.running);
    const extra = versions.some((v) => Object.keys(v).some((k) => !KNOWN.has(k)));
    const table = h('table', { id: 'deployments', class: 'data' },
      h('caption', { class: 'sr-only' }, `Versions of ${answer.app}, newest first`),
      thead(['Version', 'num'], 'State', 'Deployed', ['Functions', 'num'], 'Code', 'What changed', extra ? 'More' : null, ''),
      h('tbody', {}, versions.map((v) => row(v, running, extra))));
    fill(box, h('p', { class: 'help' }, `App ${answer.app}: a rollback switches without downtime; the running version stays kept.`),
      scrollWrap(table, 'Deployments'));
  }

  function row(v, running, extra) {
    let action = null;
    if (!v.running) {
      action = h('button', { type: 'button', 'data-action': 'rollback', 'data-version': v.version }, `Roll back to ${v.version}`);
      action.addEventListener('click', () => act({
        button: action,
        question: `Roll back to version ${v.version}? Its functions and code start serving${running ? ` instead of version ${running.version}` : ''}, without downtime.`,
        yesLabel: 'Roll back',
        call: { method: 'POST', path: '/gust/v1/deployments/rollback', query: { to: v.version } },
        done: (a) => {
          showChange(v.version, a);
          return `Rolled back to version ${v.version}`;
        },
        reload: ctx.reload,
      }));
    }
    const changes = Object.entries(v).filter(([k]) => !KNOWN.has(k));
    return h('tr', { 'data-version': v.version, class: v.running ? 'current' : null },
      h('th', { scope: 'row', class: 'num', 'data-col': 'version' }, v.version),
      h('td', { 'data-col': 'state' }, v.running ? h('span', { class: 'badge good' }, 'running') : 'kept'),
      h('td', { 'data-col': 'deployed' }, localTime(v.deployed_at), h('br'), h('span', { class: 'muted' }, relative(v.deployed_at))),
      h('td', { 'data-col': 'functions', class: 'num' }, count(v.functions)),
      h('td', { 'data-col': 'code' }, (v.code || []).length
        ? (v.code || []).map((c) => h('code', { class: 'digest', title: c }, c.slice(0, 12)))
        : h('span', { class: 'muted' }, 'in place')),
      h('td', { 'data-col': 'changed' }, Array.isArray(v.changes) && v.changes.length
        ? h('ul', { class: 'plain' }, v.changes.map((c) => h('li', {}, c)))
        : h('span', { class: 'muted' }, v.version === 1 ? 'the version Gust started with' : 'nothing listed')),
      extra ? h('td', { 'data-col': 'more' }, changes.length
        ? pairs({ class: 'nested' }, changes.map(([k, x]) => [humanize(k), generic(x)])) : '') : null,
      h('td', { class: 'row-actions' }, action));
  }

  function showChange(to, a) {
    const entries = CHANGE_FIELDS.filter((k) => Array.isArray(a[k]) && a[k].length)
      .map((k) => [humanize(k), a[k].join(', ')]);
    if (a.upstreams_restarted) entries.push(['Upstreams', 'restarted']);
    if (a.duration_ms !== undefined) entries.push(['Switched in', `${count(a.duration_ms)} ms`]);
    fill(change,
      h('h2', { id: 'h-change' }, `Rolled back to version ${to}`,
        a.version !== undefined && a.version !== to ? ` (now serving as version ${a.version})` : ''),
      entries.length ? pairs({ class: 'config' }, entries) : notice('info', 'Nothing changed.'));
    change.hidden = false;
  }

  return { el, title: 'Deployments', nav: 'deployments', load, dispose() {} };
}
