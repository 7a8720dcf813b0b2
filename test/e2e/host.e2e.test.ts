// Drives the extension-host integration suite (test/e2e/host/suite.ts) in a real VS Code: bundles it,
// opens code-server with extensionDevelopmentPath + extensionTestsPath, and checks the results file.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { afterAll, expect, test } from 'vitest';
import { environment, ROOT, Session } from './harness';

const QUICK = {
  name: 'quick',
  task: { kind: 'synthetic-lowrank', synthetic: { width: 32, depth: 2, target_rank: 2, n_train: 512, n_eval: 64 } },
  adapter: { rank: 4 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 30, batch_size: 16, eval_interval: 10, eval_batches: 1, seed: 0, threads: 1, device: 'cpu' },
  output: { checkpoint_interval: 0, export_adapter: true },
};
const BROKEN = { ...QUICK, name: 'broken', method: { init: 'loi', optimizer: 'not-an-optimizer' } };
const MISSING = {
  name: 'missing-model',
  task: { kind: 'causal-lm', model: '/nonexistent/model', data: '/nonexistent/data.jsonl' },
  adapter: { rank: 4 },
  method: { init: 'lora', optimizer: 'adamw' },
  train: { steps: 5, device: 'cpu' },
};

// A queued run folder that came with the workspace (a cloned repository), with Python files in it: it must
// not start by itself, and when the user starts it, none of its files may be imported by the worker.
const PLANT = "import pathlib\npathlib.Path(__file__).with_name('PWNED').write_text(__file__ + ' was imported')\n";
const SHIPPED = {
  '.rlora-runs/shipped/run1/config.json': JSON.stringify({ ...QUICK, name: 'shipped run' }),
  '.rlora-runs/shipped/run1/status.json': JSON.stringify({ version: 1, state: 'queued', pid: null, host: 'elsewhere', updated_at: 1, step: 0 }),
  '.rlora-runs/shipped/run1/run.json': JSON.stringify({ version: 1, label: 'shipped run', method: 'riemannion+loi', task: 'synthetic-lowrank', steps: 30, created_at: 1 }),
  '.rlora-runs/shipped/run1/argparse.py': PLANT,
  '.rlora-runs/shipped/run1/json.py': PLANT,
};

let s: Session | undefined;
let release = '';
afterAll(async () => {
  if (release) writeFileSync(release, 'done'); // a failed check must not leave the host waiting
  await s?.stop();
  s?.cleanup();
});

test('extension-host integration suite passes', async () => {
  const env = environment();
  const outDir = join(ROOT, 'test-results', 'e2e', 'host');
  mkdirSync(outDir, { recursive: true });
  const bundle = join(outDir, 'suite.js');
  await esbuild.build({ entryPoints: [join(ROOT, 'test/e2e/host/suite.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode'], outfile: bundle, logLevel: 'error' });
  const results = join(outDir, 'results.json');
  release = join(outDir, 'release');
  rmSync(release, { force: true });
  s = new Session(env, {
    hostTests: bundle,
    env: { RLORA_HOST_RESULTS: results, RLORA_HOST_RELEASE: release, RLORA_PYTHON: env.python },
    files: {
      'quick.rlora.json': JSON.stringify(QUICK, null, 2),
      'broken.rlora.json': JSON.stringify(BROKEN, null, 2),
      'missing.rlora.json': JSON.stringify(MISSING, null, 2),
      ...SHIPPED,
    },
  });
  rmSync(results, { force: true });
  await s.start();
  await expect.poll(() => existsSync(results), { timeout: 300_000, interval: 500 }).toBe(true);
  await s.shot('host-01-suite-done');
  const r = JSON.parse(readFileSync(results, 'utf8')) as { name: string; ok: boolean; error?: string }[];
  const failed = r.filter((x) => !x.ok);
  expect(failed, failed.map((f) => `${f.name}: ${f.error}`).join('\n\n')).toEqual([]);
  expect(r.length).toBe(12);
  // The shipped queued run was announced at activation, not started.
  await s.runCommand('Notifications: Show Notifications');
  const center = s.page.locator('.notifications-center .notification-list-item');
  await center.first().waitFor({ timeout: 10_000 });
  await s.page.keyboard.press('End'); // the list is virtual: the oldest notification (activation's) is at its end
  await center.filter({ hasText: 'were not queued on this machine' }).first().waitFor({ timeout: 10_000 });
  await s.shot('host-01b-shipped-queued-run');
  await s.page.keyboard.press('Escape');
  // The extension host stays up (the suite waits for the release file) while the tabs it left are checked.
  // The failed run's tab shows the error, its hint and the log tail.
  const failedTab = await s.webviewWhere('h1.title', 'missing-model');
  const error = failedTab.locator('#error');
  await error.waitFor({ timeout: 30_000 });
  expect(await error.innerText()).toMatch(/nonexistent/);
  await failedTab.locator('#error .log-tail').waitFor({ timeout: 10_000 });
  await s.shot('host-02-failed-run');
  // The run whose events cannot be read, opened from the palette, says so with the reason and a Retry
  // (never a blank chart).
  await s.runCommand('RiemannLoRA: Open Run Chart');
  await s.page.locator('.quick-input-list .monaco-list-row').filter({ hasText: 'unreadable copy' }).first().click({ timeout: 15_000 });
  const unreadableTab = await s.webviewWhere('h1.title', 'unreadable copy');
  const banner = unreadableTab.locator('#view-state[data-phase="unreadable"]');
  await banner.waitFor({ timeout: 30_000 });
  expect(await banner.innerText()).toMatch(/The run directory cannot be read: .*EISDIR/);
  await banner.locator('#retry').waitFor();
  expect(await unreadableTab.locator('#content').isVisible()).toBe(false);
  await s.shot('host-03-unreadable-run');

  // Back to the failed run's tab (its webview is rebuilt and asks for a snapshot again), then let the host
  // go: VS Code ends it when the suite returns. The tab notices (its pings stay unanswered) and says that
  // the extension host is gone, keeping what it showed.
  await s.page.locator('.tabs-container .tab').filter({ hasText: 'missing-model' }).click();
  const again = await s.webviewWhere('h1.title', 'missing-model');
  await again.locator('#error').waitFor({ timeout: 30_000 });
  await again.locator('body[data-phase="live"]').waitFor({ state: 'attached', timeout: 30_000 });
  writeFileSync(release, 'done');
  const reconnecting = again.locator('#view-state[data-phase="reconnecting"]');
  await reconnecting.waitFor({ timeout: 60_000 });
  expect(await reconnecting.innerText()).toMatch(/The extension host restarted — reconnecting/);
  expect(await again.locator('#error').innerText()).toMatch(/nonexistent/); // what it showed stays
  await s.shot('host-04-host-gone');
}, 420_000); // a bound, not a timing: the suite trains seven small runs with the real worker
