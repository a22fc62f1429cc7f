// `gust console`'s one-time link: the first visit logs in (the overview loads), a second
// visit from a browser without the session does not.
import { checkProblems, loaded, param, run, shot, text } from './lib.mjs';

const link = param('GUST_LINK');

run(async ({ page, context }) => {
  await page.goto(link);
  await page.waitForURL((u) => u.pathname !== '/console/login', { timeout: 10000 }).catch(() => {});
  const first = new URL(page.url());
  if (first.pathname === '/console/') await loaded(page, 'overview', 'link-first');
  else await shot(page, 'link-first');
  const cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));

  await context.clearCookies();
  await page.goto(link);
  await page.waitForLoadState('load');
  const second = new URL(page.url());
  const errorVisible = await page
    .locator('#login-error')
    .waitFor({ state: 'visible', timeout: 5000 })
    .then(() => true)
    .catch(() => false);
  await shot(page, 'link-second');
  checkProblems();
  return {
    first: { path: first.pathname, search: first.search },
    cookies,
    second: { path: second.pathname, search: second.search },
    second_error_visible: errorVisible,
    second_error_text: await text(page, '#login-error'),
  };
});
