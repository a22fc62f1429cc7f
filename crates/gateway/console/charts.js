// The four charts of the overview and function pages, drawn with uPlot from `/gust/v1/series`
// points: requests, errors and cold starts per bucket (bars), p50/p99 duration (lines; p99
// dashed, so the two differ by more than colour). Each figure carries `data-total` (the sum of
// the plotted counts, or the largest p99 shown with 2 decimals) and a visually hidden text
// summary, so tests and screen readers can read it. A chart is created once and then only fed
// new data (`setData`); a ResizeObserver keeps it as wide as its box. Times are local.

import uPlot from './vendor/uPlot.esm.js';
import { h, fill } from './dom.js';
import { count, ms, localTime } from './format.js';
import { RANGES } from './range.js';

const HEIGHT = 170;

const SPECS = [
  { key: 'requests', title: 'Requests', unit: 'requests', kind: 'count',
    series: [{ field: 'requests', label: 'Requests', color: '#1d4ed8' }] },
  { key: 'errors', title: 'Errors', unit: 'errors', kind: 'count',
    series: [{ field: 'errors', label: 'Errors', color: '#b91c1c' }] },
  { key: 'duration', title: 'Duration (ms)', unit: 'ms', kind: 'duration',
    series: [
      { field: 'p50_ms', label: 'p50', color: '#0f766e' },
      { field: 'p99_ms', label: 'p99', color: '#6d28d9', dash: [6, 4] },
    ] },
  { key: 'cold', title: 'Cold starts', unit: 'cold starts', kind: 'count',
    series: [{ field: 'cold_starts', label: 'Cold starts', color: '#b45309' }] },
];

/** A subscription's backlog over time (`/gust/v1/subscriptions/{name}/series`): the most
 * records waiting and the age of the oldest in each step (gauges: `data-total` is the largest). */
export const BACKLOG_SPECS = [
  { key: 'backlog', title: 'Backlog', unit: 'records', kind: 'gauge',
    series: [{ field: 'backlog', label: 'Waiting', color: '#1d4ed8' }] },
  { key: 'age', title: 'Oldest waiting (s)', unit: 's', kind: 'gauge',
    series: [{ field: 'oldest_age_s', label: 'Age', color: '#b45309' }] },
];

/** Charts in a grid (the four invocation charts unless told): {el, update(answer, window), fail(text), destroy()}. */
export function chartSet(specs = SPECS) {
  const charts = specs.map(createChart);
  return {
    el: h('div', { class: 'charts' }, charts.map((c) => c.el)),
    update(answer, win) { for (const c of charts) c.update(answer, win); },
    fail(text) { for (const c of charts) c.fail(text); },
    destroy() { for (const c of charts) c.destroy(); },
  };
}

function createChart(spec) {
  const total = h('span', { class: 'chart-total' });
  const bucket = h('span', { class: 'muted' });
  const plot = h('div', { class: 'plot', 'aria-hidden': 'true' });
  const summary = h('p', { class: 'sr-only' });
  const message = h('p', { class: 'chart-message', hidden: true });
  const el = h('figure', { class: 'chart', id: `chart-${spec.key}`, 'aria-busy': 'true' },
    h('figcaption', {}, h('span', { class: 'chart-title' }, spec.title, ' ', bucket), total),
    plot, message, summary);
  let chart = null;
  let lastWidth = 0;
  const resize = new ResizeObserver(() => {
    const width = plot.clientWidth;
    if (chart && width > 0 && width !== lastWidth) {
      lastWidth = width;
      chart.setSize({ width, height: HEIGHT });
    }
  });
  resize.observe(plot);

  function update(answer, win) {
    const points = Array.isArray(answer && answer.points) ? answer.points : [];
    const step = (answer && answer.step_s) || win.step_s;
    const x = points.length ? points.map((p) => p.t_ms / 1000) : emptyAxis(win, step);
    const ys = spec.series.map((s) => (points.length
      ? points.map((p) => value(p[s.field], spec.kind))
      : x.map(() => (spec.kind === 'count' ? 0 : null))));
    const data = [x, ...ys];
    const per = bucketLabel(step);
    bucket.textContent = spec.kind === 'count' ? per : '';
    describe(spec, ys, x, win, per);
    el.removeAttribute('data-error');
    el.removeAttribute('aria-busy');
    message.hidden = true;
    plot.hidden = false;
    if (chart) {
      chart.setData(data);
    } else {
      lastWidth = Math.max(plot.clientWidth, 240);
      chart = new uPlot(options(spec, lastWidth), data, plot);
    }
  }

  function describe(s, ys, x, win, per) {
    if (s.kind === 'count') {
      const y = ys[0];
      const sum = y.reduce((a, v) => a + (v || 0), 0);
      el.dataset.total = String(sum);
      total.textContent = count(sum);
      let peak = 0;
      for (let i = 1; i < y.length; i++) if (y[i] > y[peak]) peak = i;
      summary.textContent = sum
        ? `${s.title} over the ${win.label}: ${count(sum)} in total, at most ${count(y[peak])} ${per} (at ${localTime(x[peak] * 1000)}).`
        : `${s.title} over the ${win.label}: none.`;
    } else if (s.kind === 'gauge') {
      const top = ys[0].reduce((a, v) => (v === null ? a : Math.max(a, v)), -Infinity);
      const sampled = Number.isFinite(top);
      el.dataset.total = sampled ? String(+top.toFixed(2)) : '0';
      total.textContent = sampled ? `max ${trimMs(top)} ${s.unit}` : 'no samples';
      summary.textContent = sampled
        ? `${s.title} over the ${win.label}: at most ${trimMs(top)} ${s.unit}.`
        : `${s.title} over the ${win.label}: not sampled yet (Gust samples once a minute).`;
    } else {
      const maxOf = (y) => y.reduce((a, v) => (v === null ? a : Math.max(a, v)), -Infinity);
      const p50 = maxOf(ys[0]);
      const p99 = maxOf(ys[1]);
      const top = Number.isFinite(p99) ? p99 : 0;
      el.dataset.total = top.toFixed(2);
      total.textContent = Number.isFinite(p99) ? `max p99 ${ms(p99)} ms` : 'no requests';
      summary.textContent = Number.isFinite(p99)
        ? `Duration over the ${win.label}: p50 at most ${ms(p50)} ms, p99 at most ${ms(p99)} ms.`
        : `Duration over the ${win.label}: no requests.`;
    }
  }

  function fail(text) {
    el.removeAttribute('aria-busy');
    el.removeAttribute('data-total');
    el.dataset.error = 'true';
    total.textContent = '';
    plot.hidden = true;
    message.hidden = false;
    fill(message, `Chart unavailable: ${text}`);
    summary.textContent = `${spec.title}: unavailable (${text}).`;
  }

  function destroy() {
    resize.disconnect();
    if (chart) chart.destroy();
    chart = null;
  }

  return { el, update, fail, destroy };
}

function value(v, kind) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return kind === 'count' ? 0 : null;
  return Number(v);
}

function emptyAxis(win, step) {
  const x = [];
  for (let t = win.since_ms; t < win.until_ms; t += step * 1000) x.push(t / 1000);
  return x;
}

function bucketLabel(step) {
  const known = Object.values(RANGES).find((r) => r.step_s === step);
  if (known) return known.bucket;
  return step % 60 === 0 ? `per ${step / 60} minutes` : `per ${step} s`;
}

function options(spec, width) {
  const isCount = spec.kind === 'count';
  const fmt = isCount || spec.kind === 'gauge'
    ? (v) => (v === null ? '—' : `${count(v)}${spec.kind === 'gauge' ? ` ${spec.unit}` : ''}`)
    : (v) => (v === null ? '—' : `${ms(v)} ms`);
  return {
    width,
    height: HEIGHT,
    cursor: { sync: { key: 'gust-console' }, points: { size: 6 } },
    legend: { show: true, live: true },
    scales: {
      x: { time: true },
      y: { range: (u, lo, hi) => [0, niceMax(hi, isCount)] },
    },
    axes: [
      { stroke: '#3f3f46', grid: { stroke: '#e4e4e7' }, ticks: { stroke: '#d4d4d8' }, font: '11px system-ui, sans-serif' },
      {
        stroke: '#3f3f46', grid: { stroke: '#e4e4e7' }, ticks: { stroke: '#d4d4d8' },
        font: '11px system-ui, sans-serif', size: 48,
        incrs: isCount ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6] : undefined,
        values: (u, vals) => vals.map((v) => (isCount ? count(v) : trimMs(v))),
      },
    ],
    series: [
      { label: 'Time', value: (u, v) => (v === null ? '—' : localTime(v * 1000)) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: isCount ? 0 : 2,
        dash: s.dash,
        fill: isCount ? `${s.color}b3` : undefined,
        paths: isCount ? uPlot.paths.bars({ size: [0.8, 24] }) : undefined,
        points: isCount ? { show: false } : { show: true, size: 4, fill: s.color },
        spanGaps: false,
        value: (u, v) => fmt(v),
      })),
    ],
  };
}

function niceMax(hi, isCount) {
  if (!Number.isFinite(hi) || hi <= 0) return isCount ? 4 : 1;
  const mag = 10 ** Math.floor(Math.log10(hi));
  const n = [1, 2, 2.5, 5, 10].find((f) => f * mag >= hi * 1.05) || 10;
  const top = n * mag;
  return isCount ? Math.max(4, Math.ceil(top)) : top;
}

function trimMs(v) {
  return v >= 100 ? String(Math.round(v)) : String(+v.toFixed(2));
}
