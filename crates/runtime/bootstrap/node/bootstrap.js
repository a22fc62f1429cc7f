'use strict';
/*
 * Gust Node.js runtime bootstrap.
 *
 * A dependency-free implementation of the AWS Lambda Runtime API client loop
 * (API version 2018-06-01), modelled on aws-lambda-nodejs-runtime-interface-client.
 * Supports Node 18/20/22, CommonJS and ES module handlers, async / promise,
 * callback-style and plain synchronous handlers.
 *
 * Gust extension: with GUST_PREWARM=1 the process first long-polls
 * GET /2018-06-01/runtime/gust/specialize, which answers
 * {"handler": "...", "taskRoot": "/abs/dir", "env": {"K": "V"}}; the env is
 * applied, the process chdirs to taskRoot, and only then the handler is loaded.
 *
 * Must run as CommonJS: if Gust places this file below a package.json with
 * "type": "module", name it bootstrap.cjs instead.
 */

// Everything the bootstrap itself needs is loaded up front (before the
// specialize request when prewarmed).
const net = require('net');
const path = require('path');
const fs = require('fs');
const util = require('util');
const { pathToFileURL } = require('url');

const API_VERSION = '/2018-06-01';
const NEXT_PATH = API_VERSION + '/runtime/invocation/next';
const INVOCATION_PATH = API_VERSION + '/runtime/invocation/';
const INIT_ERROR_PATH = API_VERSION + '/runtime/init/error';
const SPECIALIZE_PATH = API_VERSION + '/runtime/gust/specialize';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const DEFAULT_DEADLINE_MS = 15 * 60 * 1000;

// ---------------------------------------------------------------------------
// Runtime API HTTP client: one persistent keep-alive connection, HTTP/1.1 written
// and parsed here over a plain socket. Node's `http` client costs more CPU per request
// than the rest of an invocation (agent bookkeeping, header objects, streams); the
// Runtime API needs one request at a time, Content-Length or chunked bodies, and
// nothing else.
// ---------------------------------------------------------------------------

const runtimeApi = process.env.AWS_LAMBDA_RUNTIME_API;
if (!runtimeApi) {
  process.stderr.write('ERROR\tGust bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n');
  process.exit(1);
}

let apiHost = runtimeApi;
let apiPort = 80;
{
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(runtimeApi.replace(/^https?:\/\//, '').replace(/\/+$/, ''));
  if (m) {
    apiHost = m[1];
    if (m[2]) apiPort = parseInt(m[2], 10);
  }
}
// Gust also serves the Runtime API on a Unix socket: less CPU per message, on both sides,
// than TCP over loopback. Not part of the function's environment.
const apiSocket = process.env.GUST_RUNTIME_API_SOCKET;
delete process.env.GUST_RUNTIME_API_SOCKET;
// Gust's native helper (gust_native.c): resident-page trimming for spares and a setenv that
// does not leak. Optional: without it the bootstrap does both the plain way.
const native = loadNative(process.env.GUST_NATIVE_LIB);
delete process.env.GUST_NATIVE_LIB;

function loadNative(lib) {
  if (!lib) return null;
  const m = { exports: {} };
  try {
    process.dlopen(m, lib);
  } catch (_e) {
    return null;
  }
  const ok = typeof m.exports.trim === 'function' && typeof m.exports.setTraceEnv === 'function';
  return ok ? m.exports : null;
}

const HOST_HEADER = 'Host: ' + (apiHost.includes(':') ? '[' + apiHost + ']' : apiHost) + ':' + apiPort + '\r\n';
const CRLF2 = Buffer.from('\r\n\r\n');

let sock = null; // the connection, or null before the first request / after a close
const queue = []; // requests not yet answered; queue[0] is on the wire
let recv = []; // response bytes received for queue[0]
let recvLen = 0;
let head = null; // queue[0]'s parsed status line and headers, once complete

function connect() {
  const s = apiSocket
    ? net.connect({ path: apiSocket })
    : net.connect({ host: apiHost, port: apiPort, noDelay: true });
  s.on('data', (chunk) => {
    if (s !== sock) return;
    recv.push(chunk);
    recvLen += chunk.length;
    parseResponses();
  });
  const lost = (err) => {
    if (s !== sock) return;
    sock = null;
    connectionLost(err || Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  };
  s.on('error', lost);
  s.on('close', () => lost(null));
  return s;
}

/** Concatenates what has been received so far into one buffer. */
function received() {
  if (recv.length !== 1) recv = [Buffer.concat(recv, recvLen)];
  return recv[0];
}

function consume(n) {
  const buf = received();
  recv = n < buf.length ? [buf.subarray(n)] : [];
  recvLen = buf.length - n;
}

function parseHead(text) {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return null;
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const te = headers['transfer-encoding'];
  return {
    status: parseInt(m[1], 10),
    headers,
    chunked: te !== undefined && /chunked/i.test(te),
    length: headers['content-length'] !== undefined ? parseInt(headers['content-length'], 10) : -1,
    close: /close/i.test(headers.connection || ''),
  };
}

/** A complete chunked body from `buf` at `start`: [bodyBuffer, endOffset] or null. */
function parseChunked(buf, start) {
  const parts = [];
  let at = start;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return null;
    const size = parseInt(buf.toString('latin1', at, eol).split(';')[0], 16);
    if (!Number.isFinite(size)) return [null, -1];
    if (size === 0) {
      const end = buf.indexOf(CRLF2, eol);
      if (end >= 0) return [Buffer.concat(parts), end + 4];
      // no trailers: the last CRLF directly after the size line
      if (buf.length >= eol + 4 && buf[eol + 2] === 13 && buf[eol + 3] === 10) return [Buffer.concat(parts), eol + 4];
      return null;
    }
    if (buf.length < eol + 2 + size + 2) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function parseResponses() {
  while (queue.length > 0 && recvLen > 0) {
    const req = queue[0];
    req.answered = true;
    if (head === null) {
      const buf = received();
      const end = buf.indexOf(CRLF2);
      if (end < 0) return;
      head = parseHead(buf.toString('latin1', 0, end));
      consume(end + 4);
      if (head === null) {
        protocolError('malformed response from the Runtime API');
        return;
      }
    }
    let body;
    if (head.chunked) {
      if (recvLen === 0) return;
      const r = parseChunked(received(), 0);
      if (r === null) return;
      if (r[0] === null) {
        protocolError('malformed chunked body from the Runtime API');
        return;
      }
      body = r[0].toString('utf8');
      consume(r[1]);
    } else if (head.length >= 0) {
      if (recvLen < head.length) return;
      body = received().toString('utf8', 0, head.length);
      consume(head.length);
    } else {
      // Neither length nor chunked: the body runs to the end of the connection (not used
      // by Gust; answered when the connection closes).
      return;
    }
    finish(body);
  }
}

function finish(body) {
  const req = queue.shift();
  const h = head;
  head = null;
  if (h.close && sock) {
    // The server ends the connection after this answer: the requests behind it go again on
    // a fresh one.
    const s = sock;
    sock = null;
    s.destroy();
    recv = [];
    recvLen = 0;
    for (const r of queue) send(r);
  }
  req.cb(null, h.status, h.headers, body);
}

function protocolError(message) {
  const s = sock;
  sock = null;
  if (s) s.destroy();
  connectionLost(new Error(message));
}

function connectionLost(err) {
  const h = head;
  head = null;
  const data = recvLen > 0 ? received() : null;
  recv = [];
  recvLen = 0;
  if (queue.length === 0) return;
  const first = queue[0];
  if (h !== null && h.length < 0 && !h.chunked) {
    // A body delimited by the end of the connection.
    queue.shift();
    first.cb(null, h.status, h.headers, data ? data.toString('utf8') : '');
  } else if (first.answered || first.retried) {
    queue.shift();
    first.cb(err);
  } else {
    // A kept-alive connection closed by the server before it answered: retry once on a
    // fresh connection.
    first.retried = true;
  }
  // Answers come in order, so nothing behind the first was answered: all go again.
  for (const r of queue) send(r);
}

/** Runs fn with the connection corked: the requests it makes leave in one write. */
function corked(fn) {
  if (sock === null) sock = connect();
  const s = sock;
  s.cork();
  try {
    fn();
  } finally {
    s.uncork();
  }
}

function send(req) {
  if (sock === null) sock = connect();
  sock.write(req.wire);
}

/**
 * Issue one request. cb(err, statusCode, headers, bodyString); header names lower case.
 * The request is written at once, even while earlier ones wait for their answers (HTTP/1.1
 * pipelining: an invocation's response and the next long poll leave in one go); answers come
 * in order on the one connection.
 */
function apiRequest(method, reqPath, body, extraHeaders, cb) {
  let wire = method + ' ' + reqPath + ' HTTP/1.1\r\n' + HOST_HEADER;
  if (extraHeaders) {
    for (const k of Object.keys(extraHeaders)) wire += k + ': ' + extraHeaders[k] + '\r\n';
  }
  if (body !== undefined) {
    wire += 'Content-Type: application/json\r\nContent-Length: ' + Buffer.byteLength(body) + '\r\n\r\n' + body;
  } else {
    wire += '\r\n';
  }
  const req = { wire, cb, answered: false, retried: false };
  queue.push(req);
  send(req);
}

function fatal(message, err) {
  process.stderr.write(
    'ERROR\tGust bootstrap: ' + message + (err ? ': ' + (err && err.stack ? err.stack : String(err)) : '') + '\n'
  );
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Error formatting (same rules as the AWS runtime interface client).
// ---------------------------------------------------------------------------

function isErrorLike(obj) {
  return !!(obj && typeof obj.name === 'string' && obj.name && typeof obj.message === 'string' &&
    typeof obj.stack === 'string');
}

/** Error -> {errorType, errorMessage, stackTrace} */
function toErrorResponse(err) {
  try {
    if (util.types.isNativeError(err) || err instanceof Error || isErrorLike(err)) {
      return {
        errorType: (typeof err.name === 'string' && err.name) ? err.name : 'Error',
        errorMessage: typeof err.message === 'string' ? err.message : String(err.message),
        stackTrace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      };
    }
    // Non-Error values: AWS reports typeof as the type and toString() as the message.
    return { errorType: typeof err, errorMessage: err.toString(), stackTrace: [] };
  } catch (_e) {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      stackTrace: [],
    };
  }
}

function runtimeError(type, message, stackSource) {
  const e = new Error(message);
  e.name = 'Runtime.' + type;
  e.stack = stackSource && typeof stackSource.stack === 'string'
    ? stackSource.stack
    : e.name + ': ' + message;
  return e;
}

function headerSafe(value) {
  const s = String(value).replace(/[^\x20-\x7e]/g, '');
  return s || 'Error';
}

function serializeError(payload) {
  try {
    return JSON.stringify(payload);
  } catch (_e) {
    return JSON.stringify({
      errorType: String(payload.errorType),
      errorMessage: String(payload.errorMessage),
      stackTrace: [],
    });
  }
}

function logError(label, body) {
  process.stderr.write('ERROR\t' + label + '\t' + body + '\n');
}

// ---------------------------------------------------------------------------
// Handler loading (mirrors AWS UserFunction.js).
// ---------------------------------------------------------------------------

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_e) {
    return false;
  }
}

/** Nearest package.json walking up from dir decides whether .js is ESM. */
function packageTypeIsModule(dir) {
  let cur = dir;
  for (;;) {
    if (path.basename(cur) === 'node_modules') return false;
    const pj = path.join(cur, 'package.json');
    let raw;
    try {
      raw = fs.readFileSync(pj, 'utf8');
    } catch (_e) {
      raw = undefined;
    }
    if (raw !== undefined) {
      try {
        const pkg = JSON.parse(raw);
        return !!pkg && pkg.type === 'module';
      } catch (_e) {
        return false;
      }
    }
    const parent = path.dirname(cur);
    if (parent === cur) return false;
    cur = parent;
  }
}

/** Find the file for a module base path: [file, 'cjs'|'esm'] or null. */
function locateModule(base) {
  if (isFile(base)) return [base, 'cjs']; // extensionless file: require (as AWS)
  if (isFile(base + '.js')) {
    return [base + '.js', packageTypeIsModule(path.dirname(base)) ? 'esm' : 'cjs'];
  }
  if (isFile(base + '.mjs')) return [base + '.mjs', 'esm'];
  if (isFile(base + '.cjs')) return [base + '.cjs', 'cjs'];
  return null;
}

function importFile(file) {
  return import(pathToFileURL(file).href);
}

async function loadFile(file, kind) {
  if (kind === 'esm') return importFile(file);
  try {
    return require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
      return importFile(file);
    }
    throw e;
  }
}

function resolveProperty(obj, dotted) {
  const parts = dotted.split('.');
  let cur = obj;
  for (let i = 0; i < parts.length; i++) {
    if (cur === undefined || cur === null) return undefined;
    cur = cur[parts[i]];
  }
  return cur;
}

async function loadHandler(taskRoot, fullHandler) {
  if (!fullHandler) throw runtimeError('MalformedHandlerName', 'Bad handler');
  if (fullHandler.includes('..')) {
    throw runtimeError('MalformedHandlerName',
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const base = path.basename(fullHandler);
  const moduleRoot = fullHandler.slice(0, fullHandler.length - base.length);
  const firstDot = base.indexOf('.');
  if (firstDot <= 0 || firstDot === base.length - 1) throw runtimeError('MalformedHandlerName', 'Bad handler');

  // AWS splits module/function at the first dot ("index.a.b" -> module
  // "index", nested property "a.b"). Module files that themselves contain
  // dots ("my.module.handler") are handled by falling back to a last-dot split.
  const splits = [[base.slice(0, firstDot), base.slice(firstDot + 1)]];
  const lastDot = base.lastIndexOf('.');
  if (lastDot !== firstDot) splits.push([base.slice(0, lastDot), base.slice(lastDot + 1)]);

  let userModule;
  let handlerPath;
  try {
    let found = null;
    for (const [mod, prop] of splits) {
      const loc = locateModule(path.resolve(taskRoot, moduleRoot, mod));
      if (loc) {
        found = loc;
        handlerPath = prop;
        break;
      }
    }
    if (found) {
      userModule = await loadFile(found[0], found[1]);
    } else {
      // Last resort, as AWS: node-style resolution (node_modules) from the task root.
      handlerPath = splits[0][1];
      const resolved = require.resolve(splits[0][0], {
        paths: [taskRoot, path.resolve(taskRoot, moduleRoot)],
      });
      userModule = require(resolved);
    }
  } catch (e) {
    if (e instanceof SyntaxError || (e && e.name === 'SyntaxError')) {
      throw runtimeError('UserCodeSyntaxError', String(e), e);
    }
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw runtimeError('ImportModuleError', String(e), e);
    }
    throw e;
  }

  const fn = resolveProperty(userModule, handlerPath);
  if (!fn) throw runtimeError('HandlerNotFound', `${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw runtimeError('HandlerNotFound', `${fullHandler} is not a function`);
  return fn;
}

// ---------------------------------------------------------------------------
// Runtime state.
// ---------------------------------------------------------------------------

let phase = 'boot'; // 'boot' | 'init' | 'run'
let handler = null;
let handlerIsCallbackStyle = false;
let handlerIsAsync = false;
let current = null; // in-flight invocation
let exiting = false;

// Environment-derived context fields, read once after specialization.
let envFunctionName;
let envFunctionVersion;
let envMemory;
let envLogGroup;
let envLogStream;

function readEnv() {
  const env = process.env;
  envFunctionName = env.AWS_LAMBDA_FUNCTION_NAME;
  envFunctionVersion = env.AWS_LAMBDA_FUNCTION_VERSION;
  envMemory = env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE;
  envLogGroup = env.AWS_LAMBDA_LOG_GROUP_NAME;
  envLogStream = env.AWS_LAMBDA_LOG_STREAM_NAME;
}

function exitNow() {
  process.exit(1);
}

function postInitError(err) {
  const payload = toErrorResponse(err);
  const body = serializeError(payload);
  logError('Init Error', body);
  apiRequest('POST', INIT_ERROR_PATH, body, { [ERROR_TYPE_HEADER]: headerSafe(payload.errorType) }, exitNow);
}

// ---------------------------------------------------------------------------
// Invocation loop.
// ---------------------------------------------------------------------------

/**
 * _X_AMZN_TRACE_ID for this invocation, in the real environment (child processes inherit it).
 * Through the native helper when there is one: process.env calls glibc's setenv, which keeps
 * every distinct value for the life of the process, and a trace id is new every invocation.
 */
function setTraceEnv(trace) {
  if (native !== null && native.setTraceEnv(trace || undefined) === 0) return;
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else if (process.env._X_AMZN_TRACE_ID !== undefined) delete process.env._X_AMZN_TRACE_ID;
}

function nextInvocation() {
  current = null;
  apiRequest('GET', NEXT_PATH, undefined, undefined, onNext);
}

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function onNext(err, status, headers, body) {
  if (err) fatal('failed to fetch next invocation', err);
  if (status !== 200) fatal(`unexpected status ${status} from ${NEXT_PATH}: ${body}`);

  const requestId = headers['lambda-runtime-aws-request-id'];
  if (!requestId) fatal('invocation without Lambda-Runtime-Aws-Request-Id header');

  setTraceEnv(headers['lambda-runtime-trace-id']);

  const inv = {
    id: requestId,
    settled: false, // a result/error has been accepted
    posting: false,
    returnedPromise: false,
  };
  current = inv;

  let event;
  let context;
  const callback = (e, result) => {
    if (e !== undefined && e !== null) settleError(inv, e);
    else settleSuccess(inv, result);
  };
  try {
    event = body.length === 0 ? null : JSON.parse(body);
  } catch (e) {
    settleError(inv, runtimeError('UnmarshalError', 'Unable to unmarshal input: ' + e.message));
    return;
  }
  try {
    let deadline = Number(headers['lambda-runtime-deadline-ms']);
    if (!Number.isFinite(deadline) || deadline <= 0) deadline = Date.now() + DEFAULT_DEADLINE_MS;
    context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: envFunctionName,
      functionVersion: envFunctionVersion,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: envMemory,
      awsRequestId: requestId,
      logGroupName: envLogGroup,
      logStreamName: envLogStream,
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      getRemainingTimeInMillis() {
        return deadline - Date.now();
      },
      done: callback,
      succeed(result) {
        settleSuccess(inv, result);
      },
      fail(e) {
        settleError(inv, e === undefined || e === null ? 'handled' : e);
      },
    };
  } catch (e) {
    settleError(inv, e);
    return;
  }

  let result;
  try {
    result = handler(event, context, callback);
  } catch (e) {
    settleError(inv, e);
    return;
  }
  if (result !== null && result !== undefined && typeof result.then === 'function') {
    inv.returnedPromise = true;
    try {
      result.then(
        (r) => settleSuccess(inv, r),
        (e) => settleError(inv, e === undefined || e === null ? 'handled' : e)
      );
    } catch (e) {
      settleError(inv, e);
    }
  } else if (!handlerIsCallbackStyle && result !== undefined) {
    // Plain synchronous handler returning a value.
    settleSuccess(inv, result);
  }
  // Otherwise: wait for callback / context.done|succeed|fail, or for the event
  // loop to drain (beforeExit) which completes the invocation with null.
}

function settleSuccess(inv, result) {
  if (inv.settled) return;
  let body;
  try {
    body = JSON.stringify(result === undefined ? null : result);
    if (body === undefined) body = 'null'; // functions, symbols
  } catch (e) {
    settleError(inv, runtimeError('MarshalError', 'Unable to stringify response body: ' + e.message));
    return;
  }
  inv.settled = true;
  inv.posting = true;
  corked(() => {
    apiRequest('POST', INVOCATION_PATH + encodeURIComponent(inv.id) + '/response', body, undefined, (err, status, _h, resBody) => {
      inv.posting = false;
      if (err) fatal('failed to post invocation response', err);
      if (status !== 202) {
        process.stderr.write(`ERROR\tGust bootstrap: runtime API rejected response (${status}): ${resBody}\n`);
      }
      if (exiting) exitNow();
    });
    afterPost();
  });
}

function settleError(inv, err, exitAfter) {
  if (inv.settled) return;
  inv.settled = true;
  inv.posting = true;
  const payload = toErrorResponse(err);
  const body = serializeError(payload);
  logError('Invoke Error', body);
  corked(() => {
    apiRequest('POST', INVOCATION_PATH + encodeURIComponent(inv.id) + '/error', body,
      { [ERROR_TYPE_HEADER]: headerSafe(payload.errorType) }, (e, status, _h, resBody) => {
        inv.posting = false;
        if (exitAfter || exiting) exitNow();
        if (e) fatal('failed to post invocation error', e);
        if (status !== 202) {
          process.stderr.write(`ERROR\tGust bootstrap: runtime API rejected error (${status}): ${resBody}\n`);
        }
      });
    if (!exitAfter) afterPost();
  });
}

// The next long poll leaves right behind the response, on the same connection (pipelined):
// one round trip less per invocation. `current` stays the posted invocation until the next
// one arrives, so a fatal error meanwhile still waits for the post before exiting.
function afterPost() {
  if (!exiting) apiRequest('GET', NEXT_PATH, undefined, undefined, onNext);
}

// The event loop drained while an invocation is still open: the handler never
// called its callback (-> null, as AWS) or returned a promise that can never
// settle (-> Runtime.NodeJsExit error, as AWS).
process.on('beforeExit', () => {
  const inv = current;
  if (phase !== 'run' || !inv || inv.settled) return;
  if (inv.returnedPromise || handlerIsAsync) {
    settleError(inv, runtimeError('NodeJsExit',
      'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled.'));
  } else {
    settleSuccess(inv, null);
  }
});

function onFatalError(err, label) {
  if (exiting) return;
  exiting = true;
  const inv = current;
  if (phase === 'init') {
    postInitError(err);
  } else if (phase === 'run' && inv && !inv.settled) {
    logError(label, serializeError(toErrorResponse(err)));
    settleError(inv, err, true);
  } else if (phase === 'run' && inv && inv.posting) {
    // Result already being posted: let it finish, then exit.
    logError(label, serializeError(toErrorResponse(err)));
  } else {
    logError(label, serializeError(toErrorResponse(err)));
    process.exit(1);
  }
  // Safety net in case the Runtime API never answers.
  setTimeout(exitNow, 5000).unref();
}

process.on('uncaughtException', (err) => onFatalError(err, 'Uncaught Exception'));
process.on('unhandledRejection', (reason) => {
  const e = runtimeError('UnhandledPromiseRejection', String(reason), reason);
  onFatalError(e, 'Unhandled Promise Rejection');
});

// ---------------------------------------------------------------------------
// Startup.
// ---------------------------------------------------------------------------

function specialize() {
  return new Promise((resolve) => {
    apiRequest('GET', SPECIALIZE_PATH, undefined, undefined, (err, status, _headers, body) => {
      if (err) fatal('specialize request failed', err);
      if (status !== 200) fatal(`unexpected status ${status} from ${SPECIALIZE_PATH}: ${body}`);
      let spec;
      try {
        spec = JSON.parse(body);
      } catch (e) {
        fatal('invalid specialize response', e);
      }
      if (!spec || typeof spec !== 'object') fatal('invalid specialize response: ' + body);
      delete process.env.GUST_PREWARM;
      if (trimTimer) clearTimeout(trimTimer);
      const env = spec.env && typeof spec.env === 'object' ? spec.env : {};
      for (const k of Object.keys(env)) {
        const v = env[k];
        if (v === null || v === undefined) delete process.env[k];
        else process.env[k] = String(v);
      }
      if (typeof spec.handler === 'string' && spec.handler) process.env._HANDLER = spec.handler;
      if (typeof spec.taskRoot === 'string' && spec.taskRoot) process.env.LAMBDA_TASK_ROOT = spec.taskRoot;
      const root = process.env.LAMBDA_TASK_ROOT;
      if (root) {
        try {
          process.chdir(root);
        } catch (e) {
          fatal('cannot chdir to task root ' + root, e);
        }
      }
      if (Object.prototype.hasOwnProperty.call(env, 'NODE_PATH')) {
        // NODE_PATH is normally read at startup only.
        const Module = require('module');
        if (typeof Module._initPaths === 'function') Module._initPaths();
      }
      resolve();
    });
  });
}

// A spare that is ready gives back the resident pages of its read-only file mappings (the
// node executable is most of its memory); they stay in the page cache and come back as minor
// faults once the spare is given a function (gust_native.c). Once now, and once more when the
// spare has been idle a moment (its first moments, the specialize request included, touch some
// pages again). Without the native helper the spare keeps its pages.
const TRIM_AGAIN_AFTER_MS = 250;
let trimTimer = null;

function trimResidentFiles() {
  if (native === null) return;
  native.trim();
  trimTimer = setTimeout(() => native.trim(), TRIM_AGAIN_AFTER_MS);
  trimTimer.unref();
}

async function main() {
  if (process.env.GUST_PREWARM === '1') {
    // Warm up the ESM loader so an ESM handler does not pay for it later.
    try {
      await import('node:path');
    } catch (_e) {
      // ignore
    }
    trimResidentFiles();
    await specialize();
  }

  phase = 'init';
  const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const handlerString = process.env._HANDLER || '';
  let fn;
  try {
    fn = await loadHandler(taskRoot, handlerString);
  } catch (e) {
    if (!exiting) {
      exiting = true;
      postInitError(e);
    }
    return;
  }
  if (exiting) return; // an async init failure is already being reported
  handler = fn;
  handlerIsCallbackStyle = fn.length >= 3;
  handlerIsAsync = !!(fn.constructor && fn.constructor.name === 'AsyncFunction');
  readEnv();
  phase = 'run';
  nextInvocation();
}

main().catch((e) => fatal('bootstrap failure', e));
