// A dead letter on the Events page: its subscription row and DLQ table; "redrive" asks in
// dialog#confirm (no: nothing happens; yes: the toast says so and the entry is gone).
import { confirm, expect, login, param, run, shot, text, toast, until, visit } from './lib.mjs';

const sub = param('GUST_SUBSCRIPTION');
const seq = param('GUST_SEQ');

const seqs = (page) =>
  page.locator(`table.dlq[data-subscription="${sub}"] tr[data-seq]`).evaluateAll((trs) => trs.map((tr) => tr.dataset.seq));

run(async ({ page }) => {
  await login(page);
  await visit(page, '#/events', 'events');
  const row = `table#subscriptions tr[data-subscription="${sub}"]`;
  const deadLetters = await text(page, `${row} td[data-col="dead_letters"]`);
  const topic = await text(page, `${row} td[data-col="topic"]`);
  const fn = await text(page, `${row} td[data-col="function"]`);
  const before = await seqs(page);
  const entry = await text(page, `table.dlq[data-subscription="${sub}"] tr[data-seq="${seq}"]`);
  const button = `button[data-action="redrive"][data-subscription="${sub}"]`;
  expect((await page.locator(button).count()) === 1, `no ${button} on the Events page`);

  const cancelled = await confirm(page, button, false);
  const afterNo = await seqs(page);
  expect(afterNo.includes(seq), `after #confirm-no the dead letter tr[data-seq="${seq}"] is gone: ${JSON.stringify(afterNo)}`);

  const question = await confirm(page, button, true);
  const said = await toast(page, 'Redriven');
  const after = await until(page, `tr[data-seq="${seq}"] to leave table.dlq[data-subscription="${sub}"]`, () => seqs(page), (s) => !s.includes(seq), {
    refresh: true,
  });
  await shot(page, 'events-after-redrive');
  return { dead_letters: deadLetters, topic, function: fn, before, entry, cancelled, question, toast: said, after };
});
