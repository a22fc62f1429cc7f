// Building DOM without innerHTML: every text the API gives (function names, log lines, event
// data) goes in as a text node, so nothing it contains is ever parsed as markup.

/**
 * h('a', {href: '#/', class: 'x', 'data-col': 'requests', onclick: fn}, 'text', child, ...)
 * Attribute values null/undefined/false are skipped; true sets an empty attribute. Children may
 * be strings, numbers, nodes, arrays of them, or null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table inside a horizontally scrolling, keyboard-focusable region (works at 360 px). */
export function scrollWrap(table, label, extraClass = '') {
  return h('div', { class: `table-scroll ${extraClass}`.trim(), role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

/**
 * `<thead>` with `<th scope="col">` cells; a cell may be [text, className]; null is skipped;
 * '' is a column without a visible heading (its text, "Actions", is for screen readers).
 */
export function thead(...cols) {
  return h('thead', {}, h('tr', {}, cols.filter((c) => c !== null && c !== undefined).map((c) => {
    if (c === '') return h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions'));
    return Array.isArray(c) ? h('th', { scope: 'col', class: c[1] }, c[0]) : h('th', { scope: 'col' }, c);
  })));
}

/** A notice paragraph: kind "error", "empty" or "info". */
export function notice(kind, ...text) {
  return h('p', { class: `notice ${kind}` }, ...text);
}

/** A `<dl>` from [term, description] pairs (descriptions may be nodes). */
export function pairs(attrs, entries) {
  return h('dl', attrs, entries.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A labelled `<select>`: returns {wrap, select}. */
export function labelledSelect(id, label, options, value = '') {
  const select = h('select', { id, name: id },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  return { select, wrap: h('span', { class: 'field' }, h('label', { for: id }, label), select) };
}

/** An invocation's outcome as a badge: the word itself, marked (by more than colour) unless success. */
export function outcomeBadge(outcome) {
  return h('span', { class: `badge ${outcome === 'success' ? 'good' : 'bad'}` }, outcome);
}
