'use strict';
// GetInvoice: GET /invoices/{orderId}
const kv = require('../lib/gust-kv');

exports.handler = async (event) => {
  const id = event.pathParameters && event.pathParameters.orderId;
  const invoice = id && await kv.getJSON(`invoices/${id}`);
  if (!invoice) return { statusCode: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'Invoice not found (yet)' }) };
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(invoice) };
};
