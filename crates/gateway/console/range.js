// The time range of the overview and function pages (`select#range`: 1h or 24h), kept while the
// operator moves between pages, and the bucket-aligned window the series and stats are asked for.

import { labelledSelect } from './dom.js';

export const RANGES = {
  '1h': { ms: 3600e3, step_s: 60, label: 'last hour', bucket: 'per minute' },
  '24h': { ms: 86400e3, step_s: 300, label: 'last 24 hours', bucket: 'per 5 minutes' },
};

let current = '1h';

export function currentRange() {
  return current;
}

/** `select#range` with its label; calls onChange after the range changed. */
export function rangeSelect(onChange) {
  const { wrap, select } = labelledSelect('range', 'Time range',
    [['1h', 'Last hour'], ['24h', 'Last 24 hours']], current);
  select.addEventListener('change', () => {
    current = RANGES[select.value] ? select.value : '1h';
    onChange(current);
  });
  return wrap;
}

/**
 * The window for the range ending now: until is the end of the current bucket, since is one
 * range before it, so every bucket is whole and the newest one holds the last requests.
 */
export function rangeWindow(key = current, now = Date.now()) {
  const r = RANGES[key] || RANGES['1h'];
  const step = r.step_s * 1000;
  const until = Math.ceil((now + 1) / step) * step;
  return { since_ms: until - r.ms, until_ms: until, step_s: r.step_s, ...r };
}
