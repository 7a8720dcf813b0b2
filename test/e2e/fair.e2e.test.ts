// Compare with LoRA Baselines → Fair in a real VS Code with the real worker (docs/comparisons.md): the
// comparison tab shows the protocol's progress and then one verdict sentence per method with intervals,
// its table has one row per method, the search trials and replicates open no tab of their own and do not
// notify one by one: one notification carries the verdict. The tab draws each method as its seed mean
// with a min–max band by default (the legend lists methods), or every seed, and a learning-rate
// sensitivity chart of the search.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

const CONFIG = {
  name: 'fair e2e',
  task: { kind: 'synthetic-lowrank', synthetic: { width: 24, depth: 2, target_rank: 2, n_train: 512, n_eval: 64 } },
  adapter: { rank: 2 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 16, batch_size: 16, eval_interval: 4, eval_batches: 2, device: 'cpu' },
  output: { checkpoint_interval: 0, export_adapter: false },
};
const METHODS = ['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW'];

let s: Session | undefined;
afterAll(async () => {
  if (s) {
    await s.shot('fair-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

test('Compare with LoRA Baselines → Fair: the verdict in the tab, one notification, no per-run tabs', async () => {
  s = new Session(environment(), {
    files: { 'fair.rlora.json': JSON.stringify(CONFIG, null, 2) },
    settings: { 'riemannlora.comparison.trials': 2, 'riemannlora.comparison.seeds': 2, 'riemannlora.maxConcurrentRuns': 2 },
  });
  await s.start();
  await s.showExperiments();
  await s.experimentRows().filter({ hasText: 'fair e2e' }).first().waitFor({ timeout: 30_000 });

  await s.runCommand('RiemannLoRA: Compare with LoRA Baselines');
  // The choice says what each protocol costs: 4 methods × (2 trials + 2 seeds) = 16 runs.
  const fair = s.page.locator('.quick-input-list .monaco-list-row').filter({ hasText: /16 runs/ });
  await fair.first().waitFor({ timeout: 20_000 });
  await s.shot('fair-01-choice');
  await s.pick('Fair');

  const web = s.webview();
  await web.locator('#verdict h2').filter({ hasText: 'Fair comparison running' }).waitFor({ timeout: 60_000 });
  await s.shot('fair-02-running');
  await web.locator('#verdict h2').filter({ hasText: /^Verdict$/ }).waitFor({ timeout: 300_000 });
  const lines = await web.locator('#verdict li').allInnerTexts();
  expect(lines).toHaveLength(METHODS.length - 1);
  for (const line of lines) expect(line).toMatch(/vs LoRA-AdamW: final test loss [+−][\d.e−+]+ \(95% CI .+, 2 seeds\)/);
  const table = await web.locator('#summary-table tbody tr').allInnerTexts();
  expect(table).toHaveLength(METHODS.length);
  for (const m of METHODS) expect(table.some((r) => r.includes(m)), `table has ${m}`).toBe(true);
  // Seeds: mean ± range by default: the legend lists the 4 methods, each with its 2 seeds.
  const legend = web.locator('#legend .legend-item');
  await expect.poll(() => legend.count(), { timeout: 10_000 }).toBe(METHODS.length);
  const entries = await legend.allInnerTexts();
  for (const m of METHODS) expect(entries.some((e) => e.includes(m) && e.includes('2 seeds')), `legend has ${m} with 2 seeds`).toBe(true);
  await expect.poll(() => web.locator('#status').innerText(), { timeout: 10_000 }).toMatch(/^4 of 4 methods \(mean ± range of 8 seeds\)/);
  await s.shot('fair-03-verdict');

  // The learning-rate sensitivity chart below: 2 rates per method searched, its canvas painted.
  const sens = web.locator('#sensitivity');
  await sens.scrollIntoViewIfNeeded();
  expect(await sens.getAttribute('data-points')).toBe(String(METHODS.length * 2));
  const painted = () =>
    sens.evaluate((c: HTMLCanvasElement) => {
      const ctx = c.getContext('2d');
      if (!ctx || !c.width || !c.height) return 0;
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
      return n;
    });
  await expect.poll(painted, { timeout: 10_000 }).toBeGreaterThan(2000);
  expect(await web.locator('#sensitivity-note').innerText()).toMatch(/searched rates, none failed|Failed or diverged/);
  await s.shot('fair-04-sensitivity');

  // Each seed: the replicates one by one, 4 methods × 2 seeds.
  await web.locator('vscode-radio[value="each"]').click();
  await expect.poll(() => legend.count(), { timeout: 10_000 }).toBe(8);
  await web.locator('vscode-radio[value="mean"]').click();
  await expect.poll(() => legend.count(), { timeout: 10_000 }).toBe(METHODS.length);

  // The tree groups the runs: the search collapsed, the replicates open.
  const rows = s.experimentRows();
  await rows.filter({ hasText: 'Learning-rate search' }).filter({ hasText: '8 runs · 8 ended' }).first().waitFor({ timeout: 30_000 });
  await rows.filter({ hasText: 'Replicates' }).filter({ hasText: '8 runs · 8 ended' }).first().waitFor({ timeout: 30_000 });
  await rows.filter({ hasText: 'RiemannLoRA · seed 1' }).first().waitFor({ timeout: 30_000 });
  expect(await rows.filter({ hasText: /· search \d/ }).count()).toBe(0);

  // One notification with the verdict; none per run.
  await s.notifications().filter({ hasText: /fair e2e vs LoRA baselines: RiemannLoRA vs LoRA-AdamW/ }).first().waitFor({ timeout: 30_000 });
  expect(await s.notifications().filter({ hasText: /· seed \d+ completed|· search .* completed/ }).count()).toBe(0);
  // No tab per run: the comparison is the only editor tab.
  expect(await s.page.locator('.tabs-container .tab').count()).toBe(1);

  // comparison.json on disk agrees with what the tab showed.
  const root = join(s.workspace, '.rlora-runs');
  const exp = readdirSync(root).find((d) => JSON.parse(readFileSync(join(root, d, 'experiment.json'), 'utf8')).protocol === 'fair')!;
  const record = JSON.parse(readFileSync(join(root, exp, 'comparison.json'), 'utf8'));
  expect(record.state).toBe('complete');
  expect(record.verdict).toEqual(lines);
});
