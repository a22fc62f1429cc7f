// A backlog on the Events page: the subscription picked in select#backlog-subscription, its
// figure.chart#chart-backlog showing at least the records the test left waiting and
// #chart-age an oldest record older than zero.
import { attr, login, param, run, shot, until, visit } from './lib.mjs';

const sub = param('GUST_SUBSCRIPTION');
const waiting = Number(param('GUST_EXPECT_BACKLOG'));

run(async ({ page }) => {
  await login(page);
  await visit(page, '#/events', 'events');
  await page.selectOption('select#backlog-subscription', sub);
  await page.waitForSelector('main#page[data-loaded="true"]');
  const backlog = await until(
    page,
    `figure.chart#chart-backlog[data-total] to be at least ${waiting} for ${sub}`,
    () => attr(page, 'figure.chart#chart-backlog', 'data-total'),
    (t) => Number(t) >= waiting,
    { refresh: true },
  );
  const age = await attr(page, 'figure.chart#chart-age', 'data-total');
  await shot(page, 'events-backlog');
  return { backlog, age, picked: await page.inputValue('select#backlog-subscription') };
});
