// Reload the window in the middle of a run: the worker keeps going (same pid), the tree and the restored
// run tab pick up where they were, and at the end the chart holds exactly the points on disk. Then the
// run is deleted from the palette and its open tab says that it no longer exists, and closes.
//
// The run cannot finish before the reload, whatever the speed of the machine: the worker holds after
// step HOLD_AT until this test creates the release file (riemannlora/worker/hold.py).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

const HOLD_AT = 120;
const CONFIG = {
  name: 'long-synthetic',
  task: { kind: 'synthetic-lowrank', synthetic: { width: 64, depth: 3, target_rank: 4, n_train: 4096, n_eval: 256 } },
  adapter: { rank: 4 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 600, batch_size: 32, eval_interval: 200, eval_batches: 2, seed: 0, threads: 1, device: 'cpu' },
  output: { checkpoint_interval: 0, export_adapter: false },
};

let s: Session | undefined;
afterAll(async () => {
  if (s) {
    await s.shot('reload-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

/** Train-loss points the run tab holds (set on every draw; absent until the first snapshot is drawn). */
const lossPoints = async () => Number(await s!.webview().locator('[data-panel="loss"][data-points]').getAttribute('data-points', { timeout: 30_000 }));

function runDir(): string {
  const root = join(s!.workspace, '.rlora-runs', 'long');
  const run = readdirSync(root, { withFileTypes: true }).find((d) => d.isDirectory())!;
  return join(root, run.name);
}

test('a run survives a window reload, its chart continues without losing a point, and a deleted run says so', async () => {
  // Inside the test (not beforeAll): a missing harness or Python fails the test instead of skipping it.
  const env = environment();
  const holdDir = mkdtempSync(join(tmpdir(), 'rlora-hold-'));
  const release = join(holdDir, 'release');
  s = new Session(env, { files: { 'long.rlora.json': JSON.stringify(CONFIG, null, 2) }, env: { RIEMANNLORA_HOLD: `${HOLD_AT}:${release}` } });
  await s.start();
  await s.showExperiments();
  await s.experimentRows().filter({ hasText: 'long-synthetic' }).first().waitFor({ timeout: 30_000 });
  await s.runCommand('RiemannLoRA: Start Run');
  // The run tab opens and draws live points up to the hold.
  await expect.poll(lossPoints, { timeout: 120_000, interval: 250 }).toBe(HOLD_AT);
  const status = () => JSON.parse(readFileSync(join(runDir(), 'status.json'), 'utf8')) as { state: string; pid: number };
  expect(status().state).toBe('running');
  const pid = status().pid;
  await s.shot('reload-01-before');

  await s.reload();
  // The tree shows the run still running and the run tab is restored by the serializer with every point.
  const row = s.experimentRows().filter({ hasText: 'long-synthetic' }).nth(1);
  await s.showExperiments();
  await row.waitFor({ timeout: 30_000 });
  await row.locator('.codicon-sync').waitFor({ timeout: 30_000 }); // the spinning "running" icon
  await expect.poll(lossPoints, { timeout: 60_000, interval: 250 }).toBe(HOLD_AT);
  await s.shot('reload-02-after');
  expect(status()).toMatchObject({ state: 'running', pid }); // the same worker: it was never restarted

  // Released, the chart keeps growing live, and ends with every train point the worker wrote.
  writeFileSync(release, '');
  await expect.poll(lossPoints, { timeout: 120_000, interval: 250 }).toBeGreaterThan(HOLD_AT);
  await s.webview().locator('#state [data-state="completed"]').waitFor({ timeout: 240_000 });
  const onDisk = readFileSync(join(runDir(), 'events.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"metric"') && l.includes('"split":"train"')).length;
  expect(onDisk).toBe(CONFIG.train.steps);
  await expect.poll(lossPoints, { timeout: 30_000 }).toBe(onDisk);
  expect(status()).toMatchObject({ state: 'completed', pid });
  await s.shot('reload-03-completed');
  await row.locator('.codicon-pass').waitFor({ timeout: 30_000 });

  // Delete Run from the palette, confirmed in VS Code's modal dialog: the open tab says the run no longer
  // exists (never a blank page) and offers to close itself.
  const dir = runDir();
  await s.runCommand('RiemannLoRA: Delete Run');
  await s.page.locator('.quick-input-list .monaco-list-row').filter({ hasText: 'long-synthetic' }).first().click({ timeout: 15_000 });
  await s.page.locator('.monaco-dialog-box .dialog-buttons-row a.monaco-button').filter({ hasText: /^Delete$/ }).click({ timeout: 15_000 });
  const gone = s.webview().locator('#view-state[data-phase="gone"]');
  await gone.waitFor({ timeout: 30_000 });
  expect(await gone.innerText()).toMatch(/This run no longer exists\.\s+long-synthetic .* \(long\/.*\) was deleted/);
  expect(await s.webview().locator('h1.title').innerText()).toMatch(/^long-synthetic /); // still says which run
  expect(existsSync(dir)).toBe(false);
  await expect.poll(() => s!.experimentRows().filter({ hasText: 'long-synthetic' }).count(), { timeout: 15_000 }).toBe(1); // the run's row is gone
  expect(await s.webview().locator('#content').isVisible()).toBe(false);
  await s.shot('reload-04-deleted');
  const tabs = s.page.locator('.tabs-container .tab');
  const before = await tabs.count();
  await gone.locator('#close-tab').click();
  await expect.poll(() => tabs.count(), { timeout: 15_000 }).toBe(before - 1);
  rmSync(holdDir, { recursive: true, force: true });
});
