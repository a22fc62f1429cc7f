// Logged in with the token form, the overview shows a function's requests in its table row
// and on the requests chart; at 360 px width it still fits (tables scroll inside a wrapper).
import { attr, checkProblems, loaded, login, param, run, shot, text, until } from './lib.mjs';

const fn = param('GUST_FUNCTION');
const requests = param('GUST_EXPECT_REQUESTS');
const cold = param('GUST_EXPECT_COLD');

run(async ({ page }) => {
  await login(page);
  const row = `table#functions tr[data-function="${fn}"]`;
  const cell = (col) => text(page, `${row} td[data-col="${col}"]`);
  // The overview refreshes itself every 5 s; the per-minute rollups may lag a little.
  const requestsCell = await until(page, `${row} td[data-col="requests"] to say ${requests}`, () => cell('requests'), (t) => t === requests);
  const chartRequests = await until(
    page,
    `#chart-requests[data-total] to be ${requests}`,
    () => attr(page, 'figure.chart#chart-requests', 'data-total'),
    (t) => t === requests,
  );
  // The overview has the requests and errors charts; a cold-starts chart, if it has one,
  // must agree with the invocation records.
  const chartCold = (await page.locator('figure.chart#chart-cold').count())
    ? await until(page, `#chart-cold[data-total] to be ${cold}`, () => attr(page, 'figure.chart#chart-cold', 'data-total'), (t) => t === cold)
    : null;
  await shot(page, 'overview');
  const seen = {
    app_status: await text(page, '#app-status'),
    requests: requestsCell,
    errors: await cell('errors'),
    cold: await cell('cold'),
    p50: await cell('p50'),
    p99: await cell('p99'),
    instances: await cell('instances'),
    link: await attr(page, `${row} a`, 'href'),
    chart_requests: chartRequests,
    chart_errors: await attr(page, 'figure.chart#chart-errors', 'data-total'),
    chart_cold: chartCold,
    charts: await page.locator('figure.chart').evaluateAll((fs) => fs.map((f) => f.id)),
    chart_captions: await page.locator('figure.chart figcaption').allTextContents(),
    chart_summaries: await page.locator('figure.chart .sr-only').count(),
    attention: await page.locator('#attention li').allTextContents(),
    cost: await text(page, '#cost'),
    range: await page.locator('select#range').inputValue().catch(() => null),
    range_options: await page.locator('select#range option').evaluateAll((os) => os.map((o) => o.value)),
    nav: await page.locator('nav a[data-nav]').evaluateAll((as) => as.map((a) => a.dataset.nav)),
    logout: await page.locator('#logout').count(),
  };
  // Screen-reader and keyboard basics: every control has a name, and Tab reaches the controls
  // in the page's order, starting at the navigation.
  seen.unnamed_controls = await page.evaluate(() => [...document.querySelectorAll('button, select, input, a[href]')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => {
      const labelled = el.id && document.querySelector(`label[for="${el.id}"]`);
      return !(labelled || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim());
    })
    .map((el) => el.outerHTML.slice(0, 120)));
  await page.locator('body').focus();
  const tabbed = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    tabbed.push(await page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.tagName.toLowerCase()}${el.dataset.nav ? `[data-nav=${el.dataset.nav}]` : el.id ? `#${el.id}` : ''}` : null;
    }));
  }
  seen.tab_order = tabbed;
  // A phone's width: nothing wider than the viewport but what scrolls in its wrapper.
  await page.setViewportSize({ width: 360, height: 780 });
  await page.reload();
  await loaded(page, 'overview', 'overview-360px');
  seen.narrow = await page.evaluate(() => ({
    viewport: window.innerWidth,
    document_width: document.documentElement.scrollWidth,
  }));
  await shot(page, 'overview-360px-full');
  checkProblems();
  return seen;
});
