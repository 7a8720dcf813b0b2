// New Experiment… in a real VS Code: every step says "(n/8)", the learning-rate step shows the optimizer's
// catalogue default (schema/methods.json), and the file written holds what was chosen and typed. Then, in the
// same window, Check Environment shows its findings as one list.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { defaultLr } from '../../src/core/catalogue';
import { findings, runDoctor } from '../../src/environment/doctor';
import { environment, ROOT, Session } from './harness';

let s: Session | undefined;
afterAll(async () => {
  if (s) {
    await s.shot('new-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

test('New Experiment…: name, task, rank (default highlighted, any typed), init, optimizer, learning rate (default shown), steps, batch size', async () => {
  s = new Session(environment(), {});
  await s.start();
  await s.showExperiments();
  const title = s.page.locator('.quick-input-widget .quick-input-title');
  const input = s.page.locator('.quick-input-widget input');
  /** Waits for step n's title, then types `text` (replacing what is shown) and confirms. */
  const answer = async (n: number, text: string) => {
    await title.filter({ hasText: `(${n}/8)` }).waitFor({ timeout: 20_000 });
    await input.fill(text);
    await input.press('Enter');
  };
  const choose = async (n: number, label: string) => {
    await title.filter({ hasText: `(${n}/8)` }).waitFor({ timeout: 20_000 });
    await s!.pick(label);
  };

  await s.runCommand('RiemannLoRA: New Experiment…');
  await answer(1, 'flow-test');
  await choose(2, 'synthetic-lowrank');
  // The rank: the default (riemannlora.defaults.rank, 8) is the highlighted row; a typed rank that is
  // not in the list (12) is offered as itself, not filtered to 128, and Enter takes it.
  await title.filter({ hasText: '(3/8)' }).waitFor({ timeout: 20_000 });
  // A row's aria-label is "label, description": the highlighted row is what Enter takes.
  const focused = s.page.locator('.quick-input-widget .quick-input-list .monaco-list-row.focused');
  await expect.poll(() => focused.getAttribute('aria-label'), { timeout: 10_000 }).toBe('8, current');
  await input.fill('12');
  await expect.poll(() => focused.getAttribute('aria-label'), { timeout: 10_000 }).toBe('12, typed');
  await s.shot('new-00-typed-rank');
  await input.press('Enter');
  await choose(4, 'lora');
  await choose(5, 'adamw');
  // The learning-rate step shows adamw's catalogue default and what a fair comparison would search.
  await title.filter({ hasText: '(6/8): learning rate' }).waitFor({ timeout: 20_000 });
  expect(await input.inputValue()).toBe(String(defaultLr('adamw')));
  await s.shot('new-01-learning-rate');
  // A value that is not a positive number is refused as typed.
  await input.fill('-1');
  await s.page.locator('.quick-input-widget .quick-input-message').filter({ hasText: 'a positive number' }).waitFor({ timeout: 10_000 });
  await answer(6, '0.001');
  await title.filter({ hasText: '(7/8)' }).waitFor({ timeout: 20_000 });
  expect(await input.inputValue()).toBe('200'); // riemannlora.defaults.steps
  await answer(7, '30');
  await title.filter({ hasText: '(8/8)' }).waitFor({ timeout: 20_000 });
  expect(await input.inputValue()).toBe('8'); // the schema's default batch size
  await answer(8, '16');

  const file = join(s.workspace, 'flow-test.rlora.json');
  await expect.poll(() => existsSync(file), { timeout: 20_000 }).toBe(true);
  const config = JSON.parse(readFileSync(file, 'utf8'));
  expect(config).toMatchObject({
    name: 'flow-test',
    task: { kind: 'synthetic-lowrank' },
    adapter: { rank: 12 },
    method: { init: 'lora', optimizer: 'adamw', lr: 0.001 },
    train: { steps: 30, batch_size: 16 },
  });
  // The tree lists it.
  await s.experimentRows().filter({ hasText: 'flow-test' }).first().waitFor({ timeout: 30_000 });
});

test('Check Environment: one list of the findings with their fixes, not a notification each', async () => {
  // Same session. What the doctor finds for this interpreter, computed here independently of the UI.
  const env = environment();
  const expected = findings(await runDoctor(env.python, join(ROOT, 'native-worker')), env.python);
  expect(expected[0]!.message).toMatch(/^Environment OK/);
  expect(expected.length).toBeGreaterThan(1); // this venv lacks the optional `datasets`, so a list is due
  await s!.runCommand('RiemannLoRA: Check Environment');
  const title = s!.page.locator('.quick-input-widget .quick-input-title');
  await title.filter({ hasText: `environment of ${env.python}` }).waitFor({ timeout: 60_000 });
  const rows = s!.page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
  await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(expected.length);
  expect(await rows.first().innerText()).toMatch(/Environment OK/);
  const withFix = expected.filter((f) => f.command).length;
  await expect.poll(() => rows.filter({ hasText: 'fix: ' }).count(), { timeout: 10_000 }).toBe(withFix);
  await s!.shot('env-01-findings');
  // No notification per finding: only the check's own progress notification ever showed, and it is gone.
  expect(await s!.notifications().filter({ hasText: /Environment OK|Optional/ }).count()).toBe(0);
  await s!.page.keyboard.press('Escape');
});
