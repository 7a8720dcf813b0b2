// Restricted Mode: an untrusted workspace can browse runs but never launch Python. The palette commands
// stay invokable, and each refuses with a message that says why.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { environment, Session } from './harness';

const CONFIG = {
  name: 'untrusted',
  task: { kind: 'synthetic-lowrank' },
  adapter: { rank: 4 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 20, device: 'cpu' },
};

let s: Session | undefined;
afterAll(async () => {
  if (s) {
    await s.shot('untrusted-99-last').catch(() => undefined);
    await s.stop();
    s.cleanup();
  }
});

test('in an untrusted workspace starting a run is refused', async () => {
  // Inside the test (not beforeAll): a missing harness or Python fails the test instead of skipping it.
  s = new Session(environment(), {
    trusted: false,
    files: { 'exp.rlora.json': JSON.stringify(CONFIG, null, 2) },
    settings: { 'riemannlora.demo.task': 'synthetic-lowrank' },
  });
  await s.start();
  await s.showExperiments();
  // Browsing works: the experiment from the workspace is listed.
  await s.experimentRows().filter({ hasText: 'untrusted' }).first().waitFor({ timeout: 30_000 });
  await s.runCommand('RiemannLoRA: Start Run');
  const refusal = s.settledNotifications().filter({ hasText: 'Restricted Mode' }).first();
  await refusal.waitFor({ timeout: 20_000 });
  expect(await refusal.innerText()).toMatch(/Starting a run is disabled/);
  await s.shot('untrusted-01-start-refused');

  await s.runCommand('RiemannLoRA: Run Demo Comparison');
  await s.settledNotifications().filter({ hasText: 'Running the demo comparison is disabled' }).first().waitFor({ timeout: 20_000 });
  await s.shot('untrusted-02-demo-refused');

  // Nothing was launched: no run directory exists. (Each command refuses before it creates anything,
  // so by the time its refusal shows, a run would already be on disk.)
  const root = join(s.workspace, '.rlora-runs');
  const runs = existsSync(root) ? readdirSync(root, { recursive: true }).filter((p) => String(p).endsWith('status.json')) : [];
  expect(runs).toEqual([]);
});
