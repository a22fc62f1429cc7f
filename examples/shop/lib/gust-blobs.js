'use strict';
// Gust's blob store for batch outputs (Node 18+, no dependencies): files the platform keeps
// per app, reached through GUST_API with the function's token.

function url(key) {
  const api = process.env.GUST_API;
  if (!api) throw new Error('GUST_API is not set; cannot reach the blob store');
  return `${api.replace(/\/+$/, '')}/gust/v1/blobs/${key.split('/').map(encodeURIComponent).join('/')}`;
}

const auth = () => ({ authorization: `Bearer ${process.env.GUST_TOKEN}` });

async function put(key, data) {
  const res = await fetch(url(key), { method: 'PUT', headers: auth(), body: data, signal: AbortSignal.timeout(30000) });
  if (res.status !== 200) throw new Error(`blob put ${key} failed: ${res.status} ${await res.text()}`);
}

async function get(key) {
  const res = await fetch(url(key), { headers: auth(), signal: AbortSignal.timeout(30000) });
  if (res.status === 404) { await res.arrayBuffer(); return null; }
  if (res.status !== 200) throw new Error(`blob get ${key} failed: ${res.status} ${await res.text()}`);
  return Buffer.from(await res.arrayBuffer());
}

module.exports = { put, get };
