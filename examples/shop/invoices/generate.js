'use strict';
// GenerateInvoice: subscribed to `order.created` events on the `orders` topic (SQS-shaped
// batches). Reads the order from the orders service by name (GUST_SERVICE_ORDERS_URL, no
// address in the code), prices it in EUR with the exchange rate stored under `rates/<CURRENCY>`;
// an order in a currency with no rate fails (a "poison" order): after its retries it lands
// in the subscription's dead-letter queue, until someone adds the rate and redrives it.
const crypto = require('crypto');
const kv = require('../lib/gust-kv');

// Invoices are signed with a secret Gust grants this function (`gust secrets set
// INVOICE_SIGNING_KEY`); without it they are issued unsigned, with a warning.
function sign(invoice) {
  const key = process.env.INVOICE_SIGNING_KEY;
  if (!key) {
    console.warn('INVOICE_SIGNING_KEY is not set: the invoice is unsigned');
    return null;
  }
  return crypto.createHmac('sha256', key).update(JSON.stringify(invoice)).digest('hex');
}

exports.handler = async (event) => {
  const failures = [];
  for (const record of event.Records) {
    try {
      const { id } = JSON.parse(record.body);
      const res = await fetch(`${process.env.GUST_SERVICE_ORDERS_URL}/orders/${id}`, {
        headers: { 'x-amzn-trace-id': process.env._X_AMZN_TRACE_ID || '' },
      });
      if (res.status !== 200) throw new Error(`orders service answered ${res.status} for order ${id}`);
      const order = await res.json();
      const rate = order.currency === 'EUR' ? 1 : Number(await kv.get(`rates/${order.currency}`));
      if (!rate) throw new Error(`no exchange rate for ${order.currency}: PUT /rates/${order.currency} first`);
      const lines = order.items.map((i) => ({ sku: i.sku, qty: i.qty, unitPrice: i.price, amount: round(i.qty * i.price) }));
      const subtotal = round(lines.reduce((s, l) => s + l.amount, 0));
      const invoice = {
        orderId: order.id,
        customer: order.customer,
        currency: order.currency,
        lines,
        subtotal,
        totalEur: round(subtotal / rate),
        issuedAt: new Date().toISOString(),
      };
      invoice.signature = sign(invoice);
      await kv.putJSON(`invoices/${order.id}`, invoice);
      console.log(`invoiced order ${order.id}: ${invoice.totalEur} EUR`);
    } catch (err) {
      console.error(`invoice for message ${record.messageId} failed: ${err.message}`);
      failures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures: failures };
};

function round(x) { return Math.round(x * 100) / 100; }
