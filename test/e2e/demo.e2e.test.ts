// The demo flow in a real VS Code with the real worker on the fast synthetic task: the palette command
// runs RiemannLoRA against the LoRA baselines, the runs complete in the tree, the comparison tab shows
// every run in its legend and its summary table, and each finished run gets one notification.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

const METHODS = ['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW'];
let s: Session;

beforeAll(async () => {
  s = new Session(environment(), {
    settings: { 'riemannlora.demo.task': 'synthetic-lowrank', 'riemannlora.maxConcurrentRuns': 4 },
  });
  await s.start();
});

afterAll(async () => {
  if (s) {
    await s.shot('demo-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

test('Run Demo Comparison: runs complete in the tree, the comparison shows every run', async () => {
  await s.showExperiments();
  await s.page.getByText('Run Demo Comparison').first().waitFor({ timeout: 20_000 }); // the welcome view's link
  await s.shot('demo-01-welcome');

  const palette = await s.paletteItems('RiemannLoRA:');
  for (const title of ['New Experiment…', 'Start Run', 'Stop Run', 'Run Demo Comparison', 'Check Environment', 'Export Adapter (PEFT)…']) {
    expect(palette.some((p) => p.includes(`RiemannLoRA: ${title}`)), title).toBe(true);
  }
  await s.runCommand('RiemannLoRA: Run Demo Comparison');

  // The comparison tab opens at once and fills as the runs go.
  const web = s.webview();
  await web.locator('#legend .legend-item').nth(METHODS.length - 1).waitFor({ timeout: 60_000 });
  await web.locator('#status').filter({ hasText: /[1-9][\d,]* drawn/ }).waitFor({ timeout: 90_000 });
  await s.shot('demo-02-running');

  // The tree: four runs, each completed with its final loss as description.
  const rows = s.experimentRows();
  for (const m of METHODS) {
    await rows.filter({ hasText: m }).filter({ hasText: /loss \d/ }).first().waitFor({ timeout: 150_000 });
  }
  // The toasts of the finished runs carry their actions.
  await s.notifications().filter({ hasText: 'completed' }).filter({ hasText: 'Open Chart' }).filter({ hasText: 'Show Log' }).first().waitFor({ timeout: 15_000 });
  await s.shot('demo-03-tree-completed');
  for (const m of METHODS) {
    const row = rows.filter({ hasText: m }).first();
    expect(await row.locator('.codicon-pass').count(), `${m} shows the completed icon`).toBe(1);
  }

  // Legend and table: every run, by label.
  const legend = await web.locator('#legend .legend-item').allInnerTexts();
  for (const m of METHODS) expect(legend.some((t) => t.includes(m)), `legend has ${m}`).toBe(true);
  await web.locator('#summary-table tbody tr').nth(METHODS.length - 1).waitFor({ timeout: 30_000 });
  const table = await web.locator('#summary-table tbody tr').allInnerTexts();
  expect(table).toHaveLength(METHODS.length);
  for (const m of METHODS) expect(table.some((t) => t.includes(m)), `table has ${m}`).toBe(true);
  expect(table.some((t) => t.includes('(baseline)'))).toBe(true);
  await web.locator('#legend .state-completed').nth(METHODS.length - 1).waitFor({ timeout: 30_000 });

  // The chart drew curves: count pixels that are not the background.
  const painted = await web.locator('#chart').evaluate((c: HTMLCanvasElement) => {
    const ctx = c.getContext('2d')!;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
    return n;
  });
  expect(painted).toBeGreaterThan(1000);
  await s.shot('demo-04-comparison');

  // Smoothing off, log y on, x by wall time: the view keeps working.
  await web.locator('#log-y').click();
  await web.locator('#status').filter({ hasText: /drawn/ }).waitFor();
  await s.shot('demo-05-log-y');

  // Light and high-contrast themes: the webview follows (body class) and the chart re-reads its colours.
  for (const [theme, cls, shot] of [
    ['Light Modern', 'vscode-light', 'demo-06-light'],
    ['Dark High Contrast', 'vscode-high-contrast', 'demo-07-high-contrast'],
  ] as const) {
    await s.setTheme(theme);
    await web.locator(`body.${cls}`).waitFor({ timeout: 20_000 });
    await s.page.waitForTimeout(400); // one chart frame
    await s.shot(shot);
  }

  // One notification per finished run: all four, each exactly once, in the notification center.
  await s.runCommand('Notifications: Show Notifications');
  const center = s.page.locator('.notifications-center .notification-list-item');
  await center.first().waitFor({ timeout: 10_000 });
  const texts = await center.allInnerTexts();
  for (const m of METHODS) expect(texts.filter((t) => t.includes(`RiemannLoRA: ${m} completed`)), `notifications for ${m}`).toHaveLength(1);
  await s.shot('demo-08-notifications');

  // The webviews run under a nonce CSP without unsafe-inline/unsafe-eval: nothing may have been refused.
  expect(s.console.filter((m) => /Content Security Policy|Refused to/i.test(m))).toEqual([]);

  // The runs on disk are the ones shown.
  const root = join(s.workspace, '.rlora-runs');
  const experiments = JSON.parse(readFileSync(join(root, (await import('node:fs')).readdirSync(root)[0]!, 'experiment.json'), 'utf8')) as { runs: string[] };
  expect(experiments.runs).toHaveLength(METHODS.length);
});
