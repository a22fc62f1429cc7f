'use strict';
// RegisterUser: POST /users  {"email": "...", "name": "..."}
const crypto = require('node:crypto');
const kv = require('../lib/gust-kv');

const json = (statusCode, body, headers = {}) => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

function parseBody(event) {
  if (!event.body) return {};
  const raw = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  return JSON.parse(raw);
}

exports.handler = async (event) => {
  let body;
  try {
    body = parseBody(event);
  } catch {
    return json(400, { message: 'Request body must be valid JSON' });
  }

  const input = body && typeof body === 'object' ? body : {};
  const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : '';
  if (!email) return json(400, { message: 'Email is required' });
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email)) return json(400, { message: 'Email is invalid' });
  if (input.name !== undefined && input.name !== null && typeof input.name !== 'string') {
    return json(400, { message: 'Name must be a string' });
  }

  const user = {
    id: crypto.randomUUID(),
    email,
    name: input.name?.trim() || null,
    createdAt: new Date().toISOString(),
  };
  const emailKey = `users/by-email/${email}`;

  try {
    // Claim the email first: create-if-absent makes uniqueness race-free.
    const claim = await kv.put(emailKey, user.id, { ifAbsent: true });
    if (claim.conflict) return json(409, { message: 'Email already registered' });
  } catch (err) {
    console.error('RegisterUser: claiming email failed', err);
    return json(500, { message: 'Internal server error' });
  }

  try {
    await kv.putJSON(`users/by-id/${user.id}`, user, { ifAbsent: true });
  } catch (err) {
    console.error('RegisterUser: writing user failed', err);
    await kv.delete(emailKey).catch((e) => console.error('RegisterUser: releasing email claim failed', e));
    return json(500, { message: 'Internal server error' });
  }

  return json(201, user, { location: `/users/${user.id}` });
};
