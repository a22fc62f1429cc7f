'use strict';
// The benchmark's Node.js handlers: the same file runs on Gust, on serverless-offline and
// behind the plain `http` server (server.js). No storage: validation and a JSON answer only.
const crypto = require('node:crypto');

const json = (statusCode, body) => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

// GET /hello
exports.hello = async () => json(200, { message: 'hello' });

// POST /users  {"email": "...", "name": "..."} -> 201 with the user, or 400.
exports.createUser = async (event) => {
  let input;
  try {
    const raw = !event.body
      ? '{}'
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
    input = JSON.parse(raw);
  } catch {
    return json(400, { message: 'Request body must be valid JSON' });
  }
  const email = input && typeof input.email === 'string' ? input.email.trim() : '';
  if (!email) return json(400, { message: 'Email is required' });
  return json(201, {
    id: crypto.randomUUID(),
    email,
    name: typeof input.name === 'string' ? input.name : null,
    createdAt: new Date().toISOString(),
  });
};
