// An invocation that threw: on the overview's errors chart, in the function page's list
// filtered to errors, and in its detail with its log lines.
import { attr, expect, loaded, login, param, run, shot, text, until, visit } from './lib.mjs';

const fn = param('GUST_FUNCTION');
const requestId = param('GUST_REQUEST_ID');
const needle = param('GUST_LOG_NEEDLE');
const total = param('GUST_EXPECT_INVOCATIONS');
const gateway = param('GUST_GATEWAY');

const rows = (page) =>
  page.locator('table#invocations tr[data-request-id]').evaluateAll((trs) =>
    trs.map((tr) => ({
      id: tr.dataset.requestId,
      outcome: tr.querySelector('td[data-col="outcome"]')?.textContent.trim() ?? null,
      trigger: tr.querySelector('td[data-col="trigger"]')?.textContent.trim() ?? null,
      error: tr.querySelector('td[data-col="error"]')?.textContent.trim() ?? null,
    })),
  );

run(async ({ page }) => {
  await login(page);
  const overviewErrors = await until(
    page,
    '#chart-errors[data-total] on the overview to be at least 1',
    () => attr(page, 'figure.chart#chart-errors', 'data-total'),
    (t) => Number(t) >= 1,
  );
  await visit(page, `#/functions/${fn}`, 'function');
  const config = await page.locator('dl#function-config dt').allTextContents();
  const all = await until(page, `table#invocations to list all ${total} invocations`, () => rows(page), (r) => r.length === Number(total), {
    refresh: true,
  });
  const functionErrors = await attr(page, 'figure.chart#chart-errors', 'data-total');
  const charts = await page.locator('figure.chart').evaluateAll((fs) => fs.map((f) => ({ id: f.id, total: f.dataset.total ?? null })));
  await page.selectOption('select#filter-outcome', 'error');
  const filtered = await until(
    page,
    'table#invocations to list only errors after select#filter-outcome = error',
    () => rows(page),
    (r) => r.length > 0 && r.length < all.length,
  );
  await page.waitForSelector('main#page[data-loaded="true"]');
  await shot(page, 'function-errors');
  const row = page.locator(`table#invocations tr[data-request-id="${requestId}"]`);
  expect((await row.count()) === 1, `no tr[data-request-id="${requestId}"] in the filtered table#invocations: ${JSON.stringify(filtered)}`);
  await row.click();
  await page.locator('section#invocation-detail').waitFor({ state: 'visible' });
  const logs = await until(page, `pre#invocation-logs to contain ${JSON.stringify(needle)}`, () => text(page, 'pre#invocation-logs'), (t) => typeof t === 'string' && t.includes(needle));
  await shot(page, 'invocation-detail');
  // The live tail: started here, then the function is called (from this script, not the
  // page), and its new line arrives over the log stream.
  await page.click('button#tail-toggle');
  await until(page, 'button#tail-toggle[aria-pressed="true"]', () => attr(page, 'button#tail-toggle', 'aria-pressed'), (v) => v === 'true');
  const before = await page.locator('ol#tail-lines li').count();
  const called = await fetch(`${gateway}/boom`);
  const tail = await until(
    page,
    `ol#tail-lines to get a line with ${JSON.stringify(needle)} after calling ${gateway}/boom`,
    () => page.locator('ol#tail-lines li').allTextContents(),
    (lines) => lines.length > before && lines.some((l) => l.includes(needle)),
  );
  await shot(page, 'live-tail');
  return {
    tail_status: called.status,
    tail,
    overview_chart_errors: overviewErrors,
    function_chart_errors: functionErrors,
    function_charts: charts,
    config,
    all,
    filtered,
    detail_logs: logs,
    trace_link: await attr(page, 'section#invocation-detail a#trace-link', 'href'),
  };
});
