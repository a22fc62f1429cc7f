// The harness itself, before any console page: Chromium starts, opens the admin address of
// a real Gust, reads `/healthz` and `/gust/v1/openapi.json`, and screenshots land in the
// artifacts directory.
import { admin, run, shot } from './lib.mjs';

run(async ({ page }) => {
  const health = await page.goto(`${admin}/healthz`);
  const healthz = { status: health.status(), body: (await page.locator('body').textContent()).trim() };
  await shot(page, 'healthz');
  const doc = await page.goto(`${admin}/gust/v1/openapi.json`);
  const openapi = await doc.json();
  await shot(page, 'openapi', { fullPage: false });
  const userAgent = await page.evaluate(() => navigator.userAgent);
  return {
    healthz,
    openapi: { status: doc.status(), version: openapi.openapi, title: openapi.info?.title, paths: Object.keys(openapi.paths || {}).length },
    user_agent: userAgent,
  };
});
