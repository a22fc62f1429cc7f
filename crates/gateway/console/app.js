// The console's entry: the shell (header with app name and version, nav, refresh, log out)
// and the hash router. Each page is a module with `create(params, ctx)` returning
// {el, title, nav, autoRefreshMs?, load(io), dispose()}; the router mounts one at a time on
// `<main id="page">`, sets `data-page`, and sets `data-loaded="true"` once its load has
// rendered (removed when a load starts, except for the quiet background refreshes).
// A load started later aborts the one before it, so a slow answer never paints over a newer.

import { api, ApiError, describeError } from './api.js';
import { h, fill, notice } from './dom.js';
import { clearErrors } from './feedback.js';
import * as overview from './overview.js';
import * as fn from './function.js';
import * as trace from './trace.js';
import * as events from './events.js';
import * as schedules from './schedules.js';
import * as deployments from './deployments.js';

const ROUTES = [
  [/^\/?$/, 'overview', overview],
  [/^\/functions\/([^/]+)$/, 'function', fn],
  [/^\/traces\/([^/]+)$/, 'trace', trace],
  [/^\/events$/, 'events', events],
  [/^\/schedules$/, 'schedules', schedules],
  [/^\/deployments$/, 'deployments', deployments],
];

const main = document.getElementById('page');
const appName = document.getElementById('app-name');
let current = null;
let firstRoute = true;

function route(hash) {
  const path = hash.replace(/^#/, '').split('?')[0] || '/';
  for (const [re, name, mod] of ROUTES) {
    const m = re.exec(path);
    if (m) return { name, mod, params: m.slice(1).map(safeDecode) };
  }
  return { name: 'not-found', mod: notFound, params: [path] };
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function show() {
  const hash = location.hash;
  if (hash && hash !== '#' && !hash.startsWith('#/')) return; // an in-page anchor
  const { name, mod, params } = route(hash);
  clearErrors();
  if (current) {
    clearInterval(current.timer);
    if (current.load) current.load.abort();
    current.page.dispose?.();
  }
  const ctx = { reload: () => run(false), navigate: (to) => { location.hash = to; } };
  const page = mod.create(params, ctx);
  current = { page, load: null, timer: 0 };
  main.removeAttribute('data-loaded');
  main.dataset.page = name;
  fill(main, page.el);
  document.title = `${page.title} · Gust console`;
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    if (a.dataset.nav === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!firstRoute) (main.querySelector('h1') || main).focus();
  firstRoute = false;
  const mine = current;
  run(false).then(() => {
    if (page.autoRefreshMs && mine === current) {
      mine.timer = setInterval(() => { if (!document.hidden) run(true); }, page.autoRefreshMs);
    }
  });
}

/** Loads the current page's data; a background load is quiet and skipped while one runs. */
async function run(background) {
  const mine = current;
  if (!mine) return;
  if (background && mine.load) return;
  if (mine.load) mine.load.abort();
  const controller = new AbortController();
  mine.load = controller;
  const { signal } = controller;
  if (!background) {
    main.removeAttribute('data-loaded');
    loadHeader();
  }
  const io = {
    background,
    signal,
    get: (path, query) => api(path, { query, signal, quiet: background }),
    /** Awaits every promise; [{ok, value} | {ok: false, error}], or throws if aborted. */
    async all(promises) {
      const done = await Promise.allSettled(promises);
      if (signal.aborted) throw new DOMException('superseded', 'AbortError');
      return done.map((r) => (r.status === 'fulfilled' ? { ok: true, value: r.value } : { ok: false, error: r.reason }));
    },
  };
  try {
    await mine.page.load(io);
  } catch (e) {
    if (signal.aborted || e.name === 'AbortError') return;
    if (!(e instanceof ApiError && e.status === 401)) {
      mine.page.el.prepend(notice('error', `This page could not be shown: ${describeError(e)}`));
    }
  } finally {
    if (mine.load === controller) mine.load = null;
  }
  if (mine === current && !signal.aborted) main.dataset.loaded = 'true';
}

/** "shop · version 3" in the header, from the status (or, failing that, the deployments). */
async function loadHeader() {
  try {
    const s = await api('/gust/v1/status', { quiet: true });
    appName.textContent = `${s.app} · version ${s.version}`;
  } catch {
    try {
      const d = await api('/gust/v1/deployments', { quiet: true });
      const running = (d.versions || []).find((v) => v.running);
      appName.textContent = running ? `${d.app} · version ${running.version}` : d.app;
    } catch {
      appName.textContent = 'console';
    }
  }
}

const notFound = {
  create([path]) {
    return {
      title: 'Not found',
      el: h('section', {}, h('h1', { tabindex: '-1' }, 'Page not found'),
        notice('info', `Nothing lives at #${path}. `, h('a', { href: '#/' }, 'Go to the overview'), '.')),
      load: async () => {},
    };
  },
};

document.getElementById('refresh').addEventListener('click', () => run(false));
document.getElementById('logout').addEventListener('click', async () => {
  try {
    await fetch('/console/logout', { method: 'POST', headers: { 'X-Gust-Console': '1' }, credentials: 'same-origin' });
  } finally {
    location.assign('/console/login');
  }
});
document.querySelector('.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', show);
show();
