// A trace's page (`#/traces/ID`): the waterfall of its spans (`#waterfall`, one `div.span` per
// span) and the chosen span's attributes (`dl#span-attrs`). Errors are marked with a word and
// a pattern as well as a colour.

import { h, fill, notice, pairs } from './dom.js';
import { describeError } from './api.js';
import { localTime, micros } from './format.js';
import { layout } from './waterfall.js';

const FUNCTION_SPAN = /^(?:invoke|cold start) (.+)$/;

export function create([id]) {
  const summary = h('p', { class: 'status-line' }, 'Loading…');
  let selectedId = null;
  const waterfall = h('div', { id: 'waterfall', class: 'waterfall' });
  const attrs = h('div', { class: 'span-detail' }, notice('info', 'Choose a span to see its attributes.'));
  const body = h('div', { hidden: true },
    h('section', { 'aria-labelledby': 'h-waterfall' }, h('h2', { id: 'h-waterfall' }, 'Spans'), waterfall),
    h('section', { 'aria-labelledby': 'h-span' }, h('h2', { id: 'h-span' }, 'Span attributes'), attrs));
  const el = h('section', { class: 'trace' },
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, h('span', { class: 'kicker' }, 'Trace '), h('code', {}, id))),
    summary, body);

  async function load(io) {
    let trace;
    try {
      trace = await io.get(`/gust/v1/traces/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      fill(summary, notice('error', `This trace is unavailable: ${describeError(e)}`));
      body.hidden = true;
      return;
    }
    const spans = trace.spans || [];
    if (!spans.length) {
      fill(summary, notice('empty', 'No spans were recorded for this trace.'));
      body.hidden = true;
      return;
    }
    const { rows, start, total } = layout(spans);
    const errors = spans.filter((s) => s.error).length;
    fill(summary, `${spans.length} spans · ${micros(total)} · started ${localTime(start / 1000)}`,
      errors ? [' · ', h('strong', { class: 'bad-text' }, `${errors} with an error`)] : ' · no errors');
    const ticks = h('div', { class: 'span-scale', 'aria-hidden': 'true' },
      h('span', { class: 'span-label' }),
      h('span', { class: 'track' }, [0, 0.25, 0.5, 0.75, 1].map((f) => {
        const t = h('span', { class: 'tick' }, micros(total * f));
        t.style.left = `${f * 100}%`;
        return t;
      })));
    fill(waterfall, ticks, rows.map(({ span, depth }) => spanRow(span, depth, start, total)));
    body.hidden = false;
    const again = selectedId && [...waterfall.querySelectorAll('.span')].find((r) => r.dataset.spanId === selectedId);
    const span = again && spans.find((x) => x.span_id === selectedId);
    if (span) select(again, span, span.start_us - start);
  }

  function spanRow(s, depth, start, total) {
    const offset = s.start_us - start;
    const bar = h('span', { class: 'bar' });
    bar.style.left = `${(offset / total) * 100}%`;
    bar.style.width = `${Math.max((s.duration_us / total) * 100, 0.2)}%`;
    const label = h('button', { type: 'button', class: 'span-label', 'aria-describedby': null },
      s.error ? h('span', { class: 'badge bad' }, 'error') : null, s.error ? ' ' : null,
      h('span', { class: 'span-name' }, s.name), ' ',
      h('span', { class: 'muted' }, `${s.kind} · +${micros(offset)} · ${micros(s.duration_us)}`));
    label.style.paddingLeft = `${0.5 + depth * 1.1}rem`;
    const row = h('div', {
      class: `span${s.error ? ' error' : ''}`, 'data-span-id': s.span_id, 'data-parent-id': s.parent_id || '',
      'data-name': s.name, 'data-depth': depth,
    }, label, h('span', { class: 'track' }, bar));
    row.addEventListener('click', () => select(row, s, offset));
    return row;
  }

  function select(row, s, offset) {
    selectedId = s.span_id;
    for (const r of waterfall.querySelectorAll('.span[aria-current]')) r.removeAttribute('aria-current');
    row.setAttribute('aria-current', 'true');
    const fnName = FUNCTION_SPAN.exec(s.name);
    const entries = [
      ['Name', s.name],
      ['Kind', s.kind],
      ['Status', s.error ? h('span', { class: 'badge bad' }, 'error') : 'ok'],
      ['Start', `+${micros(offset)} (${localTime(s.start_us / 1000)})`],
      ['Duration', micros(s.duration_us)],
      ['Span id', h('code', {}, s.span_id)],
      ['Parent id', s.parent_id ? h('code', {}, s.parent_id) : 'none (root)'],
    ];
    if (fnName) entries.push(['Function', h('a', { href: `#/functions/${encodeURIComponent(fnName[1])}` }, fnName[1])]);
    for (const [k, v] of Object.entries(s.attributes || {}).sort(([a], [b]) => a.localeCompare(b))) {
      entries.push([h('code', {}, k), String(v)]);
    }
    fill(attrs, pairs({ id: 'span-attrs', class: 'config', 'aria-label': `Attributes of ${s.name}` }, entries));
  }

  return { el, title: `Trace ${id.slice(0, 12)}`, nav: null, load, dispose() {} };
}
