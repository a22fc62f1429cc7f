// The login page is served without a credential, and a wrong token comes back to it with
// `?error=1` and a visible `#login-error`.
import { admin, attr, expect, run, shot, text, waitMs } from './lib.mjs';

run(async ({ page }) => {
  const resp = await page.goto(`${admin}/console/login`);
  expect(resp.status() === 200, `GET /console/login answered ${resp.status()}, not 200`);
  await page.waitForSelector('form#login-form', { timeout: waitMs });
  await shot(page, 'login');
  const form = {
    method: await attr(page, 'form#login-form', 'method'),
    action: await attr(page, 'form#login-form', 'action'),
    token_type: await attr(page, 'input#token', 'type'),
    token_name: await attr(page, 'input#token', 'name'),
    autocomplete: await attr(page, 'input#token', 'autocomplete'),
    label: await page.evaluate(() => {
      const input = document.querySelector('input#token');
      const label = input && (input.labels?.[0] || null);
      return label ? label.textContent.trim() : null;
    }),
    submit: await page.locator('#login-submit').count(),
    error_visible_before: await page.locator('#login-error').isVisible().catch(() => false),
  };
  await page.fill('#token', 'not-the-operator-token');
  await Promise.all([
    page.waitForURL((u) => u.search.includes('error=1') || u.pathname === '/console/', { timeout: waitMs }),
    page.click('#login-submit'),
  ]);
  const after = new URL(page.url());
  await page.waitForLoadState('load');
  const visible = await page
    .locator('#login-error')
    .waitFor({ state: 'visible', timeout: 5000 })
    .then(() => true)
    .catch(() => false);
  await shot(page, 'login-error');
  const cookies = (await page.context().cookies()).map((c) => c.name);
  return {
    form,
    after: { path: after.pathname, search: after.search },
    error_visible: visible,
    error_text: await text(page, '#login-error'),
    cookies,
  };
});
