'use strict';
// The shop's orders service: an existing, long-running HTTP microservice (not a function).
// Gust's gateway fronts it (/orders/**) and starts it for local development (see gust.toml).
// It owns the orders (kept in memory and in a JSON file beside it) and publishes
// `order.created` to Gust so the invoice function runs asynchronously.
//
//   POST /orders            {"customer","currency","items":[{"sku","qty","price"}]} -> 201
//   GET  /orders/{id}       -> 200 | 404
//   GET  /orders?date=YYYY-MM-DD&tz=Europe/Berlin -> {"orders":[...]} created that local day
//   GET  /health            -> 200
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const port = Number(process.env.PORT || 4001);
const gateway = (process.env.GUST_GATEWAY_URL || '').replace(/\/+$/, '');
const dataFile = process.env.ORDERS_FILE
  || path.join(process.env.GUST_STATE_DIR || path.join(__dirname, '..', '.gust'), 'orders-service', 'orders.json');

let orders = new Map();
try {
  for (const o of JSON.parse(fs.readFileSync(dataFile, 'utf8'))) orders.set(o.id, o);
} catch { /* first start */ }

function save() {
  fs.mkdirSync(path.dirname(dataFile), { recursive: true });
  const tmp = `${dataFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify([...orders.values()]));
  fs.renameSync(tmp, dataFile);
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

function localDate(iso, tz) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(iso));
}

async function publish(order, traceparent) {
  if (!gateway) throw new Error('GUST_GATEWAY_URL is not set');
  const headers = { 'content-type': 'application/json', 'x-event-type': 'order.created', 'idempotency-key': order.id };
  if (traceparent) headers.traceparent = traceparent;
  const res = await fetch(`${gateway}/events/orders`, { method: 'POST', headers, body: JSON.stringify(order) });
  if (res.status !== 202) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
}

function validate(input) {
  if (!input || typeof input.customer !== 'string' || !input.customer.trim()) return 'customer is required';
  if (!Array.isArray(input.items) || input.items.length === 0) return 'items must be a non-empty list';
  for (const i of input.items) {
    if (!i || typeof i.sku !== 'string' || !Number.isInteger(i.qty) || i.qty < 1 || typeof i.price !== 'number' || i.price < 0) {
      return 'each item needs sku (string), qty (integer >= 1) and price (number >= 0)';
    }
  }
  return null;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 1e6) req.destroy(); });
  req.on('end', async () => {
    try {
      if (url.pathname === '/health') return send(res, 200, { status: 'ok', orders: orders.size });
      if (req.method === 'POST' && url.pathname === '/orders') {
        let input;
        try { input = JSON.parse(body || '{}'); } catch { return send(res, 400, { message: 'Request body must be valid JSON' }); }
        const problem = validate(input);
        if (problem) return send(res, 400, { message: problem });
        const order = {
          id: crypto.randomUUID(),
          customer: input.customer.trim(),
          currency: typeof input.currency === 'string' ? input.currency.toUpperCase() : 'EUR',
          items: input.items.map(({ sku, qty, price }) => ({ sku, qty, price })),
          createdAt: new Date().toISOString(),
        };
        orders.set(order.id, order);
        save();
        // The order id is the idempotency key: a retried publish never invoices twice.
        await publish(order, req.headers.traceparent);
        return send(res, 201, order, { location: `/orders/${order.id}` });
      }
      if (req.method === 'GET' && url.pathname === '/orders') {
        const date = url.searchParams.get('date');
        const tz = url.searchParams.get('tz') || 'UTC';
        const list = [...orders.values()].filter((o) => !date || localDate(o.createdAt, tz) === date);
        return send(res, 200, { orders: list });
      }
      const m = /^\/orders\/([0-9a-f-]{36})$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const order = orders.get(m[1]);
        return order ? send(res, 200, order) : send(res, 404, { message: 'Order not found' });
      }
      send(res, 404, { message: `no route ${req.method} ${url.pathname}` });
    } catch (err) {
      console.error(`orders-service: ${err.stack || err}`);
      send(res, 500, { message: 'Internal error' });
    }
  });
});

server.listen(port, '127.0.0.1', () => console.log(`orders-service listening on 127.0.0.1:${port}`));
// Stop at once on SIGTERM: finish nothing new, drop idle keep-alive connections.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
