// The Deployments page: the running version and a rollback button on the others; rolling
// back asks in dialog#confirm, then the toast says so and the old version is the running one.
import { confirm, expect, login, param, run, shot, toast, until, visit } from './lib.mjs';

const to = param('GUST_ROLLBACK_TO');
const running = param('GUST_RUNNING');

const versions = (page) =>
  page.locator('table#deployments tr[data-version]').evaluateAll((trs) =>
    trs.map((tr) => ({
      version: tr.dataset.version,
      state: tr.querySelector('td[data-col="state"]')?.textContent.trim() ?? null,
      rollback: !!tr.querySelector('button[data-action="rollback"]'),
      changed: tr.querySelector('td[data-col="changed"]')?.textContent.trim() ?? null,
    })),
  );

run(async ({ page }) => {
  await login(page);
  await visit(page, '#/deployments', 'deployments');
  const before = await versions(page);
  const button = `button[data-action="rollback"][data-version="${to}"]`;
  expect((await page.locator(button).count()) === 1, `no ${button} on the Deployments page: ${JSON.stringify(before)}`);
  const question = await confirm(page, button, true);
  const said = await toast(page, `Rolled back to version ${to}`);
  const after = await until(
    page,
    `tr[data-version="${to}"] td[data-col="state"] to say running`,
    () => versions(page),
    (vs) => vs.some((v) => v.version === to && v.state === 'running') && !vs.some((v) => v.version === running && v.state === 'running'),
    { refresh: true },
  );
  await shot(page, 'deployments-after-rollback');
  return { before, question, toast: said, after };
});
