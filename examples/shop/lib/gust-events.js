'use strict';
// Publish events to a Gust topic from inside a function (Node 18+, no dependencies).
// The platform answers only once the event is durable; a repeated `id` within the dedup
// window is accepted and not delivered twice.

async function publish(topic, data, { type, id } = {}) {
  const api = process.env.GUST_API;
  if (!api) throw new Error('GUST_API is not set; cannot publish');
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${process.env.GUST_TOKEN}` };
  if (type) headers['x-event-type'] = type;
  if (id) headers['idempotency-key'] = id;
  // Continue this invocation's trace (Gust sets _X_AMZN_TRACE_ID per invocation, as Lambda does).
  if (process.env._X_AMZN_TRACE_ID) headers['x-amzn-trace-id'] = process.env._X_AMZN_TRACE_ID;
  const res = await fetch(`${api.replace(/\/+$/, '')}/gust/v1/events/${encodeURIComponent(topic)}`, {
    method: 'POST', headers, body: JSON.stringify(data), signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`publish to ${topic} failed: ${res.status} ${text}`);
  return JSON.parse(text).events[0];
}

module.exports = { publish };
