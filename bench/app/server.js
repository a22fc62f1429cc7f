'use strict';
// The "no platform" baseline: handler.js behind Node's own `http` server, with the smallest
// API Gateway 2.0-shaped event the handlers need. `node server.js PORT`.
const http = require('node:http');
const handler = require('./handler');

const routes = {
  'GET /hello': handler.hello,
  'POST /users': handler.createUser,
};

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const [rawPath, rawQueryString = ''] = req.url.split('?');
    const routeKey = `${req.method} ${rawPath}`;
    const fn = routes[routeKey];
    if (!fn) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"message":"Not Found"}');
      return;
    }
    const event = {
      version: '2.0',
      routeKey,
      rawPath,
      rawQueryString,
      headers: req.headers,
      requestContext: { http: { method: req.method, path: rawPath } },
      body: chunks.length ? Buffer.concat(chunks).toString('utf8') : undefined,
      isBase64Encoded: false,
    };
    try {
      const out = await fn(event, {});
      res.writeHead(out.statusCode || 200, out.headers || {});
      res.end(out.body || '');
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"message":"Internal Server Error"}');
    }
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[2] || 8098), '127.0.0.1');
