// The console's only way to the operator API: same-origin fetch with the session cookie,
// JSON in and out, `X-Gust-Console: 1` on every non-GET (the server's CSRF check), a 401 sends
// the browser to the login page, and an error answer becomes an ApiError (with the API's
// `code` and `message`) that is also shown in the toast unless the caller asks for quiet.

import { toast } from './feedback.js';

/** An error answer (`{"error": {"code", "message", "request_id"}}`) or a failed request. */
export class ApiError extends Error {
  constructor(status, code, message, requestId = '') {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }

  /** "Code: message", as shown to the operator. */
  describe() {
    return `${this.code}: ${this.message}`;
  }
}

let redirecting = false;

/** `/gust/v1/x` plus the query's non-empty values. */
export function apiUrl(path, query = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * Calls the API and resolves to the parsed JSON (null for an empty body). Options: method,
 * query, body (sent as JSON), signal (AbortSignal), quiet (no toast on error).
 */
export async function api(path, { method = 'GET', query, body, signal, quiet = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Gust-Console'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(apiUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw report(new ApiError(0, 'NetworkError', `could not reach Gust (${e.message})`), quiet);
  }
  if (res.status === 401) {
    if (!redirecting) {
      redirecting = true;
      location.assign('/console/login');
    }
    throw new ApiError(401, 'OperatorTokenRequired', 'the session has ended; log in again');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (res.ok) throw report(new ApiError(res.status, 'BadResponse', 'the answer is not JSON'), quiet);
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    const err = e && e.code
      ? new ApiError(res.status, e.code, e.message || '', e.request_id || '')
      : new ApiError(res.status, `HTTP${res.status}`, text.slice(0, 200) || res.statusText);
    throw report(err, quiet);
  }
  return data;
}

function report(err, quiet) {
  if (!quiet) toast(err.describe(), 'error');
  return err;
}

/** What to show for any error caught around an API call. */
export function describeError(err) {
  if (err instanceof ApiError) return err.describe();
  return String((err && err.message) || err);
}
