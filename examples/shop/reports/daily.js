'use strict';
// DailyReport: runs at 00:00 in REPORT_TIME_ZONE (see the schedule in gust.toml) and reports
// the previous local day's orders and invoices as JSON and CSV in the blob store.
// Invoked by hand, `{"date": "YYYY-MM-DD"}` picks the day.
const kv = require('../lib/gust-kv');
const blobs = require('../lib/gust-blobs');

const zone = () => process.env.REPORT_TIME_ZONE || 'UTC';

// The local calendar date of an instant in the report's zone.
function localDate(instant) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone(), year: 'numeric', month: '2-digit', day: '2-digit' }).format(instant);
}

exports.handler = async (event) => {
  // A scheduled run fires at local midnight: the report is for the day that just ended.
  const date = event.date || localDate(new Date(new Date(event.time || Date.now()).getTime() - 60 * 1000));
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`bad date ${date}`);
  const rows = [];
  // The orders service owns the orders; reach it by name.
  const res = await fetch(`${process.env.GUST_SERVICE_ORDERS_URL}/orders?date=${date}&tz=${encodeURIComponent(zone())}`);
  if (res.status !== 200) throw new Error(`orders service answered ${res.status}`);
  for (const order of (await res.json()).orders) {
    const invoice = await kv.getJSON(`invoices/${order.id}`);
    const amount = order.items.reduce((s, i) => s + i.qty * i.price, 0);
    rows.push({ orderId: order.id, customer: order.customer, currency: order.currency, amount: Math.round(amount * 100) / 100, invoiced: !!invoice, totalEur: invoice ? invoice.totalEur : null });
  }
  const report = {
    date,
    timeZone: zone(),
    orders: rows.length,
    invoiced: rows.filter((r) => r.invoiced).length,
    revenueEur: Math.round(rows.reduce((s, r) => s + (r.totalEur || 0), 0) * 100) / 100,
    generatedAt: new Date().toISOString(),
    rows,
  };
  const csv = ['orderId,customer,currency,amount,invoiced,totalEur']
    .concat(rows.map((r) => [r.orderId, JSON.stringify(r.customer), r.currency, r.amount, r.invoiced, r.totalEur ?? ''].join(',')))
    .join('\n') + '\n';
  // The CSV first: once the JSON report exists (what GET /reports/{date} looks for), so does its CSV.
  await blobs.put(`reports/${date}.csv`, csv);
  await blobs.put(`reports/${date}.json`, JSON.stringify(report, null, 2));
  console.log(`report ${date}: ${report.orders} orders, ${report.revenueEur} EUR`);
  return { date, orders: report.orders, revenueEur: report.revenueEur };
};
