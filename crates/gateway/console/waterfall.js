// A trace's spans as a tree in time: parents from `parent_id` (a span whose parent was not
// recorded is a root), children in start order, each row indented by its depth and its bar
// placed by start and duration relative to the trace's first start. Pure layout, no fetching.

/** [{span, depth}] in display order, plus the trace's start and length in µs. */
export function layout(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId.has(s.parent_id) && s.parent_id !== s.span_id) {
      if (!children.has(s.parent_id)) children.set(s.parent_id, []);
      children.get(s.parent_id).push(s);
    } else {
      roots.push(s);
    }
  }
  const byStart = (a, b) => a.start_us - b.start_us || a.name.localeCompare(b.name);
  const rows = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s.span_id)) return;
    seen.add(s.span_id);
    rows.push({ span: s, depth });
    for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  // Spans caught in a parent cycle have no root: show them rather than drop them.
  for (const s of [...spans].sort(byStart)) walk(s, 0);
  const start = Math.min(...spans.map((s) => s.start_us));
  const end = Math.max(...spans.map((s) => s.start_us + s.duration_us));
  return { rows, start, total: Math.max(end - start, 1) };
}
