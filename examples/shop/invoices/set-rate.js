'use strict';
// SetRate: PUT /rates/{currency} {"perEur": 1.08}: how many units of the currency one euro buys.
const kv = require('../lib/gust-kv');

exports.handler = async (event) => {
  const currency = (event.pathParameters.currency || '').toUpperCase();
  let body;
  try { body = JSON.parse(event.body || '{}'); } catch { body = {}; }
  if (!/^[A-Z]{3}$/.test(currency)) return { statusCode: 400, body: JSON.stringify({ message: 'currency must be a 3-letter code' }) };
  if (typeof body.perEur !== 'number' || !(body.perEur > 0)) return { statusCode: 400, body: JSON.stringify({ message: 'perEur must be a positive number' }) };
  await kv.put(`rates/${currency}`, String(body.perEur));
  return { statusCode: 200, body: JSON.stringify({ currency, perEur: body.perEur }) };
};
