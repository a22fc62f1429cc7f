'use strict';
// CreateOrder: POST /orders {"customer": "...", "currency": "EUR", "items": [{"sku","qty","price"}]}
// Stores the order and publishes `order.created`; invoicing happens asynchronously.
const crypto = require('crypto');
const kv = require('../lib/gust-kv');
const { publish } = require('../lib/gust-events');

const json = (statusCode, body) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

exports.handler = async (event) => {
  let input;
  try {
    const raw = event.isBase64Encoded ? Buffer.from(event.body || '', 'base64').toString() : event.body;
    input = JSON.parse(raw || '{}');
  } catch {
    return json(400, { message: 'Request body must be valid JSON' });
  }
  if (!input || typeof input.customer !== 'string' || !input.customer.trim()) return json(400, { message: 'customer is required' });
  if (!Array.isArray(input.items) || input.items.length === 0) return json(400, { message: 'items must be a non-empty list' });
  for (const item of input.items) {
    if (!item || typeof item.sku !== 'string' || !Number.isInteger(item.qty) || item.qty < 1 || typeof item.price !== 'number' || item.price < 0) {
      return json(400, { message: 'each item needs sku (string), qty (integer >= 1) and price (number >= 0)' });
    }
  }
  const order = {
    id: crypto.randomUUID(),
    customer: input.customer.trim(),
    currency: typeof input.currency === 'string' ? input.currency.toUpperCase() : 'EUR',
    items: input.items.map(({ sku, qty, price }) => ({ sku, qty, price })),
    createdAt: new Date().toISOString(),
  };
  await kv.putJSON(`orders/${order.id}`, order);
  // The order id is the idempotency key: a retried request never invoices twice.
  await publish('orders', order, { type: 'order.created', id: order.id });
  return { statusCode: 201, headers: { 'content-type': 'application/json', location: `/orders/${order.id}` }, body: JSON.stringify(order) };
};
