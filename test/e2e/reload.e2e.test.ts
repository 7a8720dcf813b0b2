// Reload the window in the middle of a run: the worker keeps going (same pid), the tree and the restored
// run tab pick up where they were, and at the end the chart holds exactly the points on disk.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

const CONFIG = {
  name: 'long-synthetic',
  task: { kind: 'synthetic-lowrank', synthetic: { width: 64, depth: 3, target_rank: 4, n_train: 4096, n_eval: 256 } },
  adapter: { rank: 4 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 2000, batch_size: 32, eval_interval: 500, eval_batches: 2, seed: 0, threads: 1, device: 'cpu' },
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

test('a run survives a window reload and its chart continues without losing a point', async () => {
  // Inside the test (not beforeAll): a missing harness or Python fails the test instead of skipping it.
  s = new Session(environment(), { files: { 'long.rlora.json': JSON.stringify(CONFIG, null, 2) } });
  await s.start();
  await s.showExperiments();
  await s.experimentRows().filter({ hasText: 'long-synthetic' }).first().waitFor({ timeout: 30_000 });
  await s.runCommand('RiemannLoRA: Start Run');
  // The run tab opens; wait until it has drawn some live points.
  await expect.poll(lossPoints, { timeout: 90_000, interval: 500 }).toBeGreaterThan(50);
  const status = () => JSON.parse(readFileSync(join(runDir(), 'status.json'), 'utf8')) as { state: string; pid: number };
  expect(status().state).toBe('running');
  const pid = status().pid;
  const before = await lossPoints();
  await s.shot('reload-01-before');

  await s.reload();
  // The tree shows the run still running (spinning icon) and the run tab is restored by the serializer.
  const row = s.experimentRows().filter({ hasText: 'long-synthetic' }).nth(1);
  await s.showExperiments();
  await row.waitFor({ timeout: 30_000 });
  const midway = await lossPoints();
  await s.shot('reload-02-after');
  expect(midway).toBeGreaterThan(0);
  expect(status().pid).toBe(pid); // the same worker: it was never restarted

  // The chart keeps growing, and ends with every train point the worker wrote.
  await expect.poll(lossPoints, { timeout: 120_000, interval: 500 }).toBeGreaterThan(Math.max(before, midway));
  await s.webview().locator('#state [data-state="completed"]').waitFor({ timeout: 150_000 });
  const onDisk = readFileSync(join(runDir(), 'events.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"metric"') && l.includes('"split":"train"')).length;
  await expect.poll(lossPoints, { timeout: 10_000 }).toBe(onDisk);
  expect(status()).toMatchObject({ state: 'completed', pid });
  await s.shot('reload-03-completed');
  await row.locator('.codicon-pass').waitFor({ timeout: 10_000 });
});
