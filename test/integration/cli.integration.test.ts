// The headless CLI's own behaviour (no worker needed): output on a pipe arrives whole.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../src/core/config';
import { RunStore } from '../../src/core/runStore';
import { buildCli } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'rlora-cli-pipe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('node dist/cli.js', () => {
  it('list on a pipe prints every line, far past 64 KiB (the process waits for stdout to drain)', async () => {
    const store = new RunStore(join(dir, 'runs'));
    const config: RunConfig = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 5 } };
    const runs = 2000;
    store.createExperiment({ id: 'many', name: 'many', kind: 'single' });
    for (let i = 0; i < runs; i++) store.createRun('many', `run-${String(i).padStart(5, '0')}-${'x'.repeat(40)}`, config);
    const cli = await buildCli();
    // Through an OS pipe (a shell's `|`): Node's writes to it are asynchronous, unlike to a file.
    const r = spawnSync('sh', ['-c', '"$0" "$1" list --out "$2" | cat', process.execPath, cli, join(dir, 'runs')], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status).toBe(0);
    const out = r.stdout;
    const lines = out.trimEnd().split('\n');
    expect(out.length).toBeGreaterThan(64 * 1024);
    expect(lines).toHaveLength(runs + 1); // the header and every run
    expect(lines.at(-1)).toMatch(/^many\/run-01999-x+ +adamw\+lora +queued/);
  }, 120_000);

  it('list shows damaged metadata as damaged and never crashes on it; names cannot reach the terminal raw', async () => {
    const root = join(dir, 'damaged-runs');
    const store = new RunStore(root);
    const config: RunConfig = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 5 } };
    store.createExperiment({ id: 'e', name: 'e', kind: 'single' });
    store.createRun('e', 'bad-status', config);
    writeFileSync(join(root, 'e', 'bad-status', 'status.json'), '{"state": ');
    store.createRun('e', 'bad-card', config);
    writeFileSync(join(root, 'e', 'bad-card', 'run.json'), JSON.stringify({ version: 1, label: 'x', method: 'm', task: 't', steps: 5, created_at: 1, summary: { final_loss: 'low' } }));
    store.createRun('e', 'evil-label', config, '\u001b]0;owned\u0007\u001b[2Jlabel');
    // run.json from before the rename (final_loss: 9): list recomputes it from events.jsonl, in memory
    store.createRun('e', 'old-card', config);
    store.writeStatus('e/old-card', { version: 1, state: 'completed', updated_at: 5, step: 2, exit_code: 0 });
    writeFileSync(join(root, 'e', 'old-card', 'run.json'), JSON.stringify({ version: 1, label: 'x', method: 'm', task: 't', steps: 2, created_at: 1, summary: { steps: 2, final_loss: 9, best_loss: 9, wall_s: 1 } }));
    const metric = (step: number, loss: number) => JSON.stringify({ type: 'metric', version: 1, time: step, step, split: 'train', loss });
    writeFileSync(join(root, 'e', 'old-card', 'events.jsonl'), `${metric(1, 0.5)}\n${metric(2, 0.25)}\n`);
    mkdirSync(join(root, 'empty-exp'));
    writeFileSync(join(root, 'empty-exp', 'experiment.json'), '{}');
    const cli = await buildCli();
    const r = spawnSync(process.execPath, [cli, 'list', '--out', root], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/e\/bad-status .*damaged: status\.json/);
    expect(r.stdout).toMatch(/e\/bad-card .*damaged: run\.json/);
    expect(r.stdout).toMatch(/e\/evil-label .*queued/);
    expect(r.stdout).toMatch(/e\/old-card +m +completed +2\/2 +0\.25$/m); // window 1 of 2 points: the last loss
    expect(readFileSync(join(root, 'e', 'old-card', 'run.json'), 'utf8')).toContain('"final_loss":9'); // list writes nothing
    expect(r.stdout + r.stderr).not.toContain(String.fromCharCode(0x1b));
  }, 120_000);
});
