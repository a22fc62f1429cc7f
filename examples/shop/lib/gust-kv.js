'use strict';
// Minimal client for the Gust key-value store (Node 18+, no dependencies).
// Reads GUST_API and GUST_TOKEN from the environment at call time.

const TIMEOUT_MS = 10000;

class KVError extends Error {
  constructor(message, { status, code, requestId } = {}) {
    super(message);
    this.name = 'KVError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

function keyUrl(key) {
  if (typeof key !== 'string') throw new TypeError('KV key must be a string');
  const bytes = Buffer.byteLength(key);
  if (bytes < 1 || bytes > 1024) throw new RangeError('KV key must be 1..1024 bytes');
  return `/gust/v1/kv/${encodeURIComponent(key)}`;
}

async function request(method, path, { body, headers = {} } = {}) {
  const api = process.env.GUST_API;
  if (!api) throw new KVError('GUST_API is not set; cannot reach the Gust KV store', { code: 'config' });
  if (process.env.GUST_TOKEN) headers.authorization = `Bearer ${process.env.GUST_TOKEN}`;
  return fetch(api.replace(/\/+$/, '') + path, {
    method, body, headers, signal: AbortSignal.timeout(TIMEOUT_MS),
  });
}

async function fail(res, what) {
  const text = await res.text().catch(() => '');
  let err = {};
  try { err = JSON.parse(text).error || {}; } catch { /* not a JSON error body */ }
  const code = err.code || `http_${res.status}`;
  throw new KVError(`Gust KV ${what} failed: ${res.status} ${code}${err.message ? `: ${err.message}` : ''}`,
    { status: res.status, code, requestId: err.request_id });
}

// Read and discard a body so the keep-alive connection can be reused.
const drain = (res) => res.arrayBuffer().catch(() => {});

function versionOf(res) {
  const tag = (res.headers.get('etag') || '').replace(/^W\//, '').replace(/"/g, '');
  return /^\d+$/.test(tag) ? Number(tag) : tag || null;
}

// -> {value: string, version} or null if the key is absent.
async function getEntry(key) {
  const res = await request('GET', keyUrl(key));
  if (res.status === 404) { await drain(res); return null; }
  if (res.status !== 200) return fail(res, `GET ${key}`);
  return { value: await res.text(), version: versionOf(res) };
}

async function get(key) {
  const entry = await getEntry(key);
  return entry && entry.value;
}

async function getJSON(key) {
  const value = await get(key);
  return value === null ? null : JSON.parse(value);
}

// opts.ifAbsent: create only if the key does not exist.
// opts.ifVersion: compare-and-set against a version from getEntry()/put()/list().
// -> {created, version}, or {conflict: true} when the precondition failed (412).
async function put(key, value, { ifAbsent = false, ifVersion, contentType = 'application/octet-stream' } = {}) {
  if (ifAbsent && ifVersion !== undefined) throw new TypeError('use either ifAbsent or ifVersion, not both');
  const headers = { 'content-type': contentType };
  if (ifAbsent) headers['if-none-match'] = '*';
  if (ifVersion !== undefined) headers['if-match'] = `"${ifVersion}"`;
  const res = await request('PUT', keyUrl(key), { body: value, headers });
  if (res.status === 412) { await drain(res); return { conflict: true }; }
  if (res.status !== 200 && res.status !== 201) return fail(res, `PUT ${key}`);
  await drain(res);
  return { created: res.status === 201, version: versionOf(res) };
}

function putJSON(key, value, opts = {}) {
  return put(key, JSON.stringify(value), { ...opts, contentType: 'application/json' });
}

// -> true if deleted, false if the key was absent.
async function del(key) {
  const res = await request('DELETE', keyUrl(key));
  if (res.status === 404) { await drain(res); return false; }
  if (res.status !== 204 && res.status !== 200) return fail(res, `DELETE ${key}`);
  await drain(res);
  return true;
}

// -> {keys: [{key, version}], next: string|null}; pass `next` as opts.after for the next page.
async function list(prefix = '', { limit, after } = {}) {
  const qs = new URLSearchParams({ prefix });
  if (limit !== undefined) qs.set('limit', String(limit));
  if (after !== undefined && after !== null) qs.set('after', after);
  const res = await request('GET', `/gust/v1/kv?${qs}`);
  if (res.status !== 200) return fail(res, `LIST ${prefix}`);
  const { keys = [], next = null } = await res.json();
  return { keys, next };
}

module.exports = { get, getEntry, getJSON, put, putJSON, delete: del, list, KVError };
