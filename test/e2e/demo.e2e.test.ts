// The demo flow in a real VS Code with the real worker on the fast synthetic task, with the extension
// installed from the VSIX that `npm run package` built (so packaging is tested on every run): the
// examples/ folder shows in the Experiments tree, the palette command runs RiemannLoRA against the LoRA
// baselines, the runs complete in the tree, the comparison tab shows every run in its legend and its
// summary table, and each finished run gets one notification.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { environment, ROOT, Session } from './harness';

const VSIX = join(ROOT, 'dist', 'riemannlora-lab.vsix');
const EXAMPLES = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.rlora.json'))
  .map((f) => (JSON.parse(readFileSync(join(ROOT, 'examples', f), 'utf8')) as { name: string }).name);

const METHODS = ['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW'];
let s: Session | undefined;


afterAll(async () => {
  if (s) {
    await s.shot('demo-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

test('from the VSIX: the examples show in the tree; Run Demo Comparison: runs complete, the comparison shows every run', async () => {
  // Inside the test (not beforeAll): a missing harness or Python fails the test instead of skipping it.
  s = new Session(environment(), {
    vsix: VSIX,
    settings: { 'riemannlora.demo.task': 'synthetic-lowrank', 'riemannlora.maxConcurrentRuns': 4 },
  });
  await s.start();
  // What the VSIX installed: the bundles, the worker's sources and the schemas; no node_modules (the
  // bundle holds what it needs).
  for (const f of ['dist/extension.js', 'dist/webview/run.js', 'dist/webview/compare.css', 'native-worker/riemannlora/worker/__main__.py', 'native-worker/riemannlora/assets/default/model/model.safetensors', 'schema/run-config.schema.json', 'schema/worker-event.schema.json', 'schema/methods.json', 'schema/rules.json']) {
    expect(existsSync(join(s.installed, f)), f).toBe(true);
  }
  expect(existsSync(join(s.installed, 'node_modules'))).toBe(false);
  expect(readdirSync(join(s.installed, 'dist'), { recursive: true }).filter((f) => String(f).endsWith('.map'))).toEqual([]);
  await s.showExperiments();
  await s.page.getByText('Run Demo Comparison').first().waitFor({ timeout: 20_000 }); // the welcome view's link
  await s.shot('demo-01-welcome');

  // The repository's examples/ in the workspace: the tree picks them up (file watcher) and lists each.
  mkdirSync(join(s.workspace, 'examples'));
  cpSync(join(ROOT, 'examples'), join(s.workspace, 'examples'), { recursive: true });
  for (const name of EXAMPLES) await s.experimentRows().filter({ hasText: name }).first().waitFor({ timeout: 30_000 });
  await s.shot('demo-01b-examples');

  const palette = await s.paletteItems('RiemannLoRA:');
  for (const title of ['New Experiment…', 'Start Run', 'Stop Run', 'Run Demo Comparison', 'Check Environment', 'Export Adapter (PEFT)…']) {
    expect(palette.some((p) => p.includes(`RiemannLoRA: ${title}`)), title).toBe(true);
  }
  await s.runCommand('RiemannLoRA: Run Demo Comparison');
  // The demo asks for the protocol (the fair one is test/e2e/fair.e2e.test.ts): the quick one here.
  await s.pick('Quick');

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
  // …one line per run: the chart says what it drew (data-series-drawn, data-points-drawn).
  const chart = web.locator('#chart');
  await expect.poll(() => chart.getAttribute('data-series-drawn'), { timeout: 30_000 }).toBe(String(METHODS.length));
  expect(Number(await chart.getAttribute('data-points-drawn'))).toBeGreaterThan(METHODS.length);
  await s.shot('demo-04-comparison');

  // Smoothing off, log y on, x by wall time: the view keeps working.
  await web.locator('#log-y').click();
  await web.locator('#status').filter({ hasText: /drawn/ }).waitFor();
  await s.shot('demo-05-log-y');

  // CSV export: every point of every selected run at full resolution, through VS Code's save dialog.
  await web.locator('#export-csv').click();
  const saveInput = s.page.locator('.quick-input-widget input');
  await saveInput.waitFor({ state: 'visible', timeout: 10_000 });
  await expect.poll(() => saveInput.inputValue(), { timeout: 10_000 }).toMatch(/\.csv$/); // the dialog fills the name in
  await saveInput.press('Enter');
  await web.locator('#status').filter({ hasText: /exported [\d,]+ points of 4 runs/ }).waitFor({ timeout: 20_000 });
  const expDir = join(s.workspace, '.rlora-runs', readdirSync(join(s.workspace, '.rlora-runs'))[0]!);
  let pointsOnDisk = 0;
  for (const run of readdirSync(expDir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const line of readFileSync(join(expDir, run.name, 'events.jsonl'), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const e = JSON.parse(line) as { type: string; split?: string; lr?: number; grad_norm?: number | null; tokens_per_s?: number; memory_bytes?: number; metrics?: object };
      if (e.type === 'metric' && e.split === 'train') pointsOnDisk += 1 + ['lr', 'grad_norm', 'tokens_per_s', 'memory_bytes'].filter((k) => (e as Record<string, unknown>)[k] !== undefined && (e as Record<string, unknown>)[k] !== null).length;
    }
  }
  const csvFile = readdirSync(s.workspace).find((f) => f.endsWith('.csv'))!;
  const csv = readFileSync(join(s.workspace, csvFile), 'utf8').trimEnd().split('\n');
  expect(csv[0]).toBe('run,label,metric,step,wall_time,value');
  const trainRows = csv.slice(1).filter((l) => !/,(eval_loss|eval:[^,]+),/.test(l));
  expect(trainRows.length).toBe(pointsOnDisk);
  for (const m of METHODS) expect(csv.some((l) => l.includes(`,${m},loss,`)), `CSV has ${m}`).toBe(true);

  // PNG export of the chart.
  await web.locator('#export-png').click();
  await saveInput.waitFor({ state: 'visible', timeout: 10_000 });
  await saveInput.press('Enter');
  await web.locator('#status').filter({ hasText: /saved .*\.png/ }).waitFor({ timeout: 20_000 });
  const png = readdirSync(s.workspace).find((f) => f.endsWith('.png'))!;
  expect(readFileSync(join(s.workspace, png)).subarray(1, 4).toString()).toBe('PNG');

  // Light and high-contrast themes: the webview follows (body class) and the chart re-reads its colours.
  for (const [theme, cls, shot] of [
    ['Light Modern', 'vscode-light', 'demo-06-light'],
    ['Dark High Contrast', 'vscode-high-contrast', 'demo-07-high-contrast'],
  ] as const) {
    await s.setTheme(theme);
    await web.locator(`body.${cls}`).waitFor({ timeout: 20_000 });
    await web.locator(`#chart[data-drawn-theme~="${cls}"]`).waitFor({ state: 'attached', timeout: 20_000 }); // a frame in the new colours
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
  const experiments = JSON.parse(readFileSync(join(root, readdirSync(root)[0]!, 'experiment.json'), 'utf8')) as { runs: string[] };
  expect(experiments.runs).toHaveLength(METHODS.length);
});
