// Schedules (`#/schedules`): each schedule's expression, its zone, the next fire times written
// in that zone (the zone is what the expression is read in, so 00:00 Europe/Berlin reads as
// 00:00), the last tick, the outcome of the function's latest scheduled run, and "run now".

import { h, fill, scrollWrap, thead, notice, outcomeBadge } from './dom.js';
import { api, describeError } from './api.js';
import { localTime, relative, zonedTime } from './format.js';
import { act } from './actions.js';

export function create(params, ctx) {
  const box = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const clock = h('p', { class: 'help' });
  const el = h('section', { class: 'schedules' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Schedules')), clock, box);

  async function load(io) {
    let answer;
    try {
      answer = await io.get('/gust/v1/schedules');
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      fill(box, notice('error', `Schedules unavailable: ${describeError(e)}`));
      return;
    }
    const list = answer.schedules || [];
    fill(clock, answer.now ? `Gust's clock: ${localTime(answer.now)} (your local time). Fire times are shown in each schedule's own zone.` : '');
    if (!list.length) {
      fill(box, notice('empty', 'This app has no schedules.'));
      return;
    }
    // The latest scheduled run of each schedule's function: its outcome.
    const runs = await io.all(list.map((s) => (s.last_outcome !== undefined ? Promise.resolve(null)
      : api('/gust/v1/invocations', {
        query: { function: s.function, trigger: 'schedule', limit: 1 }, signal: io.signal, quiet: true,
      }))));
    const table = h('table', { id: 'schedules', class: 'data' },
      thead('Schedule', 'Function', 'Expression', 'Zone', 'Next fire times', 'Last tick', 'Last run', ''),
      h('tbody', {}, list.map((s, k) => row(s, runs[k]))));
    fill(box, scrollWrap(table, 'Schedules'));
  }

  function row(s, run) {
    const button = h('button', { type: 'button', 'data-action': 'run', 'data-schedule': s.name }, 'Run now');
    button.addEventListener('click', () => act({
      button,
      question: `Run ${s.name} now? ${s.function} is invoked once, as a tick would invoke it (overlap: ${s.overlap}).`,
      yesLabel: 'Run now',
      call: { method: 'POST', path: `/gust/v1/schedules/${encodeURIComponent(s.name)}/run` },
      done: () => `Queued a run of ${s.name}`,
      reload: ctx.reload,
    }));
    return h('tr', { 'data-schedule': s.name, class: s.enabled ? null : 'internal' },
      h('th', { scope: 'row', 'data-col': 'name' }, s.name, s.enabled ? null : h('span', { class: 'badge' }, ' disabled')),
      h('td', { 'data-col': 'function' }, h('a', { href: `#/functions/${encodeURIComponent(s.function)}` }, s.function)),
      h('td', { 'data-col': 'expression' }, h('code', {}, s.expression)),
      h('td', { 'data-col': 'zone' }, s.timezone),
      h('td', { 'data-col': 'next' }, (s.next || []).length
        ? h('ol', { class: 'plain' }, s.next.map((t) => h('li', {},
          h('time', { datetime: t, title: `${localTime(t)} your time` }, zonedTime(t, s.timezone)),
          h('span', { class: 'muted' }, ` ${relative(t)}`))))
        : h('span', { class: 'muted' }, s.enabled ? 'none' : 'disabled')),
      h('td', { 'data-col': 'last' }, s.last_fired
        ? [h('time', { datetime: s.last_fired, title: `${localTime(s.last_fired)} your time` }, zonedTime(s.last_fired, s.timezone)),
          h('span', { class: 'muted' }, ` ${relative(s.last_fired)}`)]
        : h('span', { class: 'muted' }, 'never')),
      h('td', { 'data-col': 'outcome' }, outcomeCell(s, run)),
      h('td', { class: 'row-actions' }, button));
  }

  return { el, title: 'Schedules', nav: 'schedules', load, dispose() {} };
}

function outcomeCell(s, run) {
  if (s.last_outcome !== undefined) return s.last_outcome ? outcomeBadge(s.last_outcome) : h('span', { class: 'muted' }, 'no run yet');
  if (!run || !run.ok) return h('span', { class: 'muted', title: run ? describeError(run.error) : '' }, 'unknown');
  const last = (run.value.invocations || [])[0];
  if (!last) return h('span', { class: 'muted' }, 'no run yet');
  return [outcomeBadge(last.outcome), h('span', { class: 'muted' }, ` ${relative(last.start_ms)}`)];
}
