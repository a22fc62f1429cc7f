'use strict';
// DeleteUser: DELETE /users/{id}
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
  const userKey = `users/by-id/${id.toLowerCase()}`;

  try {
    const user = await kv.getJSON(userKey);
    if (!user) return json(404, { message: 'User not found' });

    // Release the email claim first (only if it is still ours), then the record:
    // if we fail in between, retrying the DELETE finishes the job.
    const emailKey = `users/by-email/${user.email}`;
    if ((await kv.get(emailKey)) === user.id) await kv.delete(emailKey);
    await kv.delete(userKey);

    return { statusCode: 204, headers: {}, body: '' };
  } catch (err) {
    console.error('DeleteUser failed', err);
    return json(500, { message: 'Internal server error' });
  }
};
