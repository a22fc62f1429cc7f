'use strict';
// GetUser: GET /users/{id}
const kv = require('../lib/gust-kv');

const json = (statusCode, body) => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

exports.handler = async (event) => {
  const id = event.pathParameters?.id;
  if (!id || !UUID.test(id)) return json(404, { message: 'User not found' });

  try {
    const user = await kv.getJSON(`users/by-id/${id.toLowerCase()}`);
    return user ? json(200, user) : json(404, { message: 'User not found' });
  } catch (err) {
    console.error('GetUser failed', err);
    return json(500, { message: 'Internal server error' });
  }
};
