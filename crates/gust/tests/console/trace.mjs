// A trace's waterfall: one div.span per span with its parent link; clicking one shows its
// attributes.
import { expect, param, run, shot, text, until, login, visit } from './lib.mjs';

const traceId = param('GUST_TRACE_ID');
const spans = Number(param('GUST_EXPECT_SPANS'));
const click = param('GUST_CLICK_SPAN');

const read = (page) =>
  page.locator('#waterfall div.span').evaluateAll((els) =>
    els.map((el) => ({ id: el.dataset.spanId ?? null, parent: el.dataset.parentId ?? null, name: el.dataset.name ?? null })),
  );

run(async ({ page }) => {
  await login(page);
  await visit(page, `#/traces/${traceId}`, 'trace');
  const seen = await until(page, `#waterfall to show ${spans} div.span`, () => read(page), (s) => s.length >= spans, { refresh: true });
  const target = page.locator(`#waterfall div.span[data-span-id="${click}"]`);
  expect((await target.count()) === 1, `no #waterfall div.span[data-span-id="${click}"] among ${JSON.stringify(seen)}`);
  await target.click();
  const attrs = await until(page, 'dl#span-attrs to show the clicked span', () => text(page, 'dl#span-attrs'), (t) => !!t);
  await shot(page, 'span-attrs');
  return {
    spans: seen,
    attrs_text: attrs,
    attrs_terms: await page.locator('dl#span-attrs dt').allTextContents(),
  };
});
