// How numbers and times read in the console: local time for the operator's own clock, a
// schedule's own zone for its fire times, milliseconds with sensible precision, counts grouped.

const nf = new Intl.NumberFormat();
const timeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export const DASH = '—';

/** 12,345 */
export function count(n) {
  return n === null || n === undefined ? DASH : nf.format(n);
}

/** Milliseconds: 0.42, 9.86, 123.4, 4,210 (no unit; the column or caption says "ms"). */
export function ms(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return DASH;
  if (n < 100) return n.toFixed(2);
  if (n < 1000) return n.toFixed(1);
  return nf.format(Math.round(n));
}

/** Microseconds as a duration with a unit: "850 µs", "12.3 ms", "2.41 s". */
export function micros(us) {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

/** Epoch ms or RFC 3339 as local date and time. */
export function localTime(t) {
  const d = toDate(t);
  return d ? timeFmt.format(d) : DASH;
}

/** "5 min ago", "in 3 hours". */
export function relative(t, now = Date.now()) {
  const d = toDate(t);
  if (!d) return '';
  const s = (d.getTime() - now) / 1000;
  const a = Math.abs(s);
  if (a < 45) return rel.format(Math.round(s), 'second');
  if (a < 2700) return rel.format(Math.round(s / 60), 'minute');
  if (a < 64800) return rel.format(Math.round(s / 3600), 'hour');
  return rel.format(Math.round(s / 86400), 'day');
}

/** An RFC 3339 time in an IANA zone, with the zone's abbreviation; falls back to UTC. */
export function zonedTime(t, zone) {
  const d = toDate(t);
  if (!d) return DASH;
  const opts = {
    weekday: 'short', year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  };
  try {
    return new Intl.DateTimeFormat(undefined, { ...opts, timeZone: zone }).format(d);
  } catch {
    return `${new Intl.DateTimeFormat(undefined, { ...opts, timeZone: 'UTC' }).format(d)} (zone ${zone} unknown here)`;
  }
}

export function toDate(t) {
  if (t === null || t === undefined || t === '') return null;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A field name as a label: "timeout_ms" → "Timeout ms". */
export function humanize(key) {
  const s = String(key).replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}
