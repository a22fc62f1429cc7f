// Shared by the console's browser scenarios (crates/gust/tests/system/console.rs runs each
// script with `node`): launching Debian's Chromium through playwright-core, logging in,
// waiting for a page of the console's DOM contract (issue #21: ids and data attributes the
// frontend keeps stable), screenshots as artifacts, and failing on page errors, console
// errors and CSP violations.
//
// A script calls `run(async (s) => { ...; return seen; })`; `run` prints `seen` as one JSON
// line on stdout and exits 0, or prints what went wrong on stderr (with a screenshot and the
// page's HTML in the artifacts directory) and exits 1.
//
// Environment (set by the Rust harness, `support::run_console_script`):
//   GUST_ADMIN              http://127.0.0.1:PORT, the admin address serving /console/
//   GUST_TOKEN              the operator token (the login form's credential)
//   GUST_CONSOLE_ARTIFACTS  where screenshots and failure dumps go
//   GUST_CONSOLE_PROFILE    a fresh, empty directory for Chromium's --user-data-dir
//   GUST_PLAYWRIGHT         the node_modules directory holding playwright-core
//   GUST_CHROMIUM           the browser binary (/usr/bin/chromium)
//   GUST_CONSOLE_DEADLINE_MS  the whole script's budget (the harness kills it a little later)
//   GUST_CONSOLE_WAIT_MS    how long to wait for one expected value to show (default 30000)

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const env = process.env;

function required(name) {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set (run this script through the Rust harness)`);
  return v;
}

export const admin = required('GUST_ADMIN').replace(/\/$/, '');
export const token = env.GUST_TOKEN || '';
const artifacts = required('GUST_CONSOLE_ARTIFACTS');
const profile = required('GUST_CONSOLE_PROFILE');
const executablePath = env.GUST_CHROMIUM || '/usr/bin/chromium';
const deadlineMs = Number(env.GUST_CONSOLE_DEADLINE_MS || 80000);
export const waitMs = Number(env.GUST_CONSOLE_WAIT_MS || 30000);

const require = createRequire(path.join(required('GUST_PLAYWRIGHT'), 'noop.js'));
const { chromium } = require('playwright-core');

// The flags for a root user on a machine without a network: no sandbox (root), no GPU, no
// QUIC, and nothing that phones home.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Reads one environment value a scenario needs. */
export function param(name) {
  return required(name);
}

/** A failed expectation: `what` names the DOM element or value, `seen` what was there. */
export class Expectation extends Error {}

export function expect(cond, message) {
  if (!cond) throw new Expectation(message);
}

let shotCount = 0;

/** Problems the page reported: uncaught errors, console errors, CSP violations. */
const problems = [];

const watched = new WeakSet();

function watch(page) {
  if (watched.has(page)) return;
  watched.add(page);
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url || '';
    // Chromium asks every origin for a favicon on its own; the console has none to offer.
    if (where.endsWith('/favicon.ico')) return;
    problems.push(`console error on ${page.url()}: ${msg.text()}${where ? ` (${where})` : ''}`);
  });
}

/** Fails when the page has reported a problem so far. */
export function checkProblems() {
  if (problems.length) {
    throw new Expectation(`the page reported ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  }
}

/** Polls `probe()` (every 250 ms, for `timeout` ms) until `accept(seen)`; returns `seen`,
 * or throws with the last value seen. `refresh`: click `#refresh` every few seconds while
 * waiting (pages other than the overview do not reload by themselves). */
export async function until(page, what, probe, accept, { timeout = waitMs, refresh = false } = {}) {
  const start = Date.now();
  let seen;
  let lastRefresh = start;
  for (;;) {
    try {
      seen = await probe();
    } catch (e) {
      seen = `(error: ${e.message})`;
    }
    if (accept(seen)) return seen;
    if (Date.now() - start > timeout) {
      throw new Expectation(`timed out after ${timeout} ms waiting for ${what}; last seen: ${JSON.stringify(seen)}`);
    }
    if (refresh && Date.now() - lastRefresh > 3000 && (await page.locator('#refresh').count()) > 0) {
      lastRefresh = Date.now();
      await page.locator('#refresh').click().catch(() => {});
    }
    await page.waitForTimeout(250);
  }
}

/** The trimmed text of the first element matching `selector`, or null when there is none. */
export async function text(page, selector) {
  const el = page.locator(selector).first();
  if ((await el.count()) === 0) return null;
  return (await el.textContent()).trim();
}

/** An attribute of the first element matching `selector`, or null (no element or no attribute). */
export async function attr(page, selector, name) {
  const el = page.locator(selector).first();
  if ((await el.count()) === 0) return null;
  return el.getAttribute(name);
}

/** A screenshot into the artifacts directory, numbered in the order taken; the full page
 * unless `fullPage: false` (a very long document, such as the OpenAPI JSON). */
export async function shot(page, label, { fullPage = true } = {}) {
  shotCount += 1;
  const file = path.join(artifacts, `${String(shotCount).padStart(2, '0')}-${label}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** Waits for `main#page[data-page=NAME][data-loaded="true"]` and takes its screenshot. */
export async function loaded(page, name, label = name) {
  const sel = `main#page[data-page="${name}"][data-loaded="true"]`;
  try {
    await page.waitForSelector(sel, { timeout: waitMs });
  } catch {
    const main = page.locator('main#page');
    const found = (await main.count())
      ? `main#page has data-page=${JSON.stringify(await main.getAttribute('data-page'))}, data-loaded=${JSON.stringify(await main.getAttribute('data-loaded'))}`
      : 'there is no main#page';
    throw new Expectation(`${sel} did not appear within ${waitMs} ms on ${page.url()}: ${found}`);
  }
  await shot(page, label);
  checkProblems();
}

/** Opens `/console/HASH` (e.g. `#/events`) and waits for its page to be loaded. */
export async function visit(page, hash, name, label = name) {
  // From another page of the console, a hash change is a same-document navigation; a page
  // of the same kind (one function after another) must not be taken for loaded by its
  // predecessor's mark, so start from a blank document.
  await page.goto('about:blank');
  await page.goto(`${admin}/console/${hash}`);
  await loaded(page, name, label);
}

/** The token form: from `/console/login` to the overview. */
export async function login(page, credential = token) {
  const resp = await page.goto(`${admin}/console/login`);
  expect(resp && resp.status() === 200, `GET /console/login answered ${resp && resp.status()}, not 200 with the login form`);
  await page.waitForSelector('form#login-form input#token', { timeout: waitMs });
  await page.fill('#token', credential);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/console/' || u.search.includes('error=1'), { timeout: waitMs }),
    page.click('#login-submit'),
  ]);
  const url = new URL(page.url());
  expect(url.pathname === '/console/', `logging in with the token form led to ${page.url()}, not /console/`);
  await loaded(page, 'overview', 'overview-after-login');
}

/** Opens the `<dialog id="confirm">` a destructive action asks with, and answers it. */
export async function confirm(page, button, answer) {
  await page.locator(button).click();
  const dialog = page.locator('dialog#confirm[open]');
  try {
    await dialog.waitFor({ state: 'visible', timeout: waitMs });
  } catch {
    throw new Expectation(`clicking ${button} did not open dialog#confirm`);
  }
  const question = await text(page, '#confirm-text');
  await shot(page, `confirm-${answer ? 'yes' : 'no'}`);
  await page.locator(answer ? '#confirm-yes' : '#confirm-no').click();
  await until(page, 'dialog#confirm to close', () => dialog.count(), (n) => n === 0, { timeout: 5000 });
  return question;
}

/** The text of `#toast` once it contains `needle`. */
export async function toast(page, needle) {
  return until(page, `#toast to say ${JSON.stringify(needle)}`, () => text(page, '#toast'), (t) => typeof t === 'string' && t.includes(needle));
}

/** A Chromium on a fresh profile. */
async function launch() {
  try {
    return await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 30000,
    });
  } catch (e) {
    throw new Error(
      `Chromium (${executablePath}) did not start: ${e.message}\n` +
        `The browser tests need Debian's chromium package: apt-get install chromium (as root).`,
    );
  }
}

/** Runs one scenario: `body({ page, context })` returns what it saw. */
export async function run(body) {
  fs.mkdirSync(artifacts, { recursive: true });
  const timer = setTimeout(() => {
    process.stderr.write(`console script: the whole scenario took longer than ${deadlineMs} ms\n`);
    process.exit(3);
  }, deadlineMs);
  let context;
  let page;
  try {
    context = await launch();
    // CSP violations also reach the page's console as errors; this says which directive.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || ''}:${e.lineNumber || ''})`);
      });
    });
    context.on('page', watch);
    page = context.pages()[0] || (await context.newPage());
    watch(page);
    const seen = await body({ page, context });
    checkProblems();
    process.stdout.write(`${JSON.stringify(seen ?? {})}\n`);
    await context.close();
    clearTimeout(timer);
    process.exit(0);
  } catch (e) {
    const lines = [e instanceof Expectation ? e.message : e.stack || String(e)];
    if (problems.length && !lines[0].startsWith('the page reported')) lines.push(`the page also reported:\n  ${problems.join('\n  ')}`);
    if (page) {
      lines.push(`at ${page.url()}`);
      try {
        await page.screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true });
        fs.writeFileSync(path.join(artifacts, 'failure.html'), await page.content());
        lines.push(`screenshot and HTML: ${path.join(artifacts, 'failure.png')}, failure.html`);
      } catch {
        // The page may be gone with the browser.
      }
    }
    process.stderr.write(`${lines.join('\n')}\n`);
    if (context) await context.close().catch(() => {});
    clearTimeout(timer);
    process.exit(1);
  }
}
