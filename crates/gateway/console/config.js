// A function's configuration as a `<dl>`: the fields the console knows get a unit and a
// wording, any other field the server adds is shown generically (lists as lists, objects as
// nested lists), so a new field appears without a console change.

import { h, pairs } from './dom.js';
import { count, humanize, DASH } from './format.js';

const KNOWN = {
  runtime: ['Runtime', (v) => h('code', {}, v)],
  handler: ['Handler', (v) => h('code', {}, v)],
  memory_mb: ['Memory', (v) => `${count(v)} MB`],
  timeout_ms: ['Timeout', (v) => (v % 1000 === 0 ? `${v / 1000} s` : `${count(v)} ms`)],
  concurrency: ['Concurrency', (v) => (v === null ? 'no limit set' : count(v))],
  instances: ['Instances', (v) => `${count(v.total)} started, ${count(v.idle)} idle, ${count(v.waiting)} waiting`],
  routes: ['Routes', (v) => list(v, (r) => h('code', {}, r), 'none')],
  triggers: ['Triggers', (v) => list(v, (t) => (t && typeof t === 'object' && 'kind' in t
    ? [h('span', { class: 'badge' }, t.kind), ' ', t.detail ?? '']
    : generic(t)), 'none')],
  grants: ['Grants', (v) => list(v, (g) => g, 'none')],
  network: ['Network', (v) => v],
};
const SKIP = new Set(['name']);

/** `dl#function-config` for the function's answer. */
export function configList(f) {
  const entries = [];
  for (const [key, [label, show]] of Object.entries(KNOWN)) {
    if (key in f) entries.push([label, f[key] === null && key !== 'concurrency' ? DASH : safe(show, f[key])]);
  }
  for (const [key, v] of Object.entries(f)) {
    if (!(key in KNOWN) && !SKIP.has(key)) entries.push([humanize(key), generic(v)]);
  }
  return pairs({ id: 'function-config', class: 'config' }, entries);
}

function safe(show, v) {
  try {
    return show(v);
  } catch {
    return generic(v);
  }
}

function list(items, show, empty) {
  if (!Array.isArray(items)) return generic(items);
  if (!items.length) return h('span', { class: 'muted' }, empty);
  return h('ul', { class: 'plain' }, items.map((i) => h('li', {}, show(i))));
}

/** Any JSON value, readable. */
export function generic(v) {
  if (v === null || v === undefined) return DASH;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return Number.isInteger(v) ? count(v) : v.toLocaleString(undefined, { maximumSignificantDigits: 6 });
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return list(v, generic, 'none');
  return pairs({ class: 'nested' }, Object.entries(v).map(([k, x]) => [humanize(k), generic(x)]));
}
