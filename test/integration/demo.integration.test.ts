// The headless main job end to end: the bundled CLI's `demo --quick --task synthetic-lowrank` in a temp
// folder, with the real worker: exit 0, the summary table with all four methods, the HTML report.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCli, workerPython } from './helpers';

const run = promisify(execFile);
let tmp = '';
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm run demo (quick, synthetic task)', () => {
  it('runs the four methods through the engine, prints the table and writes a self-contained report', async () => {
    const python = workerPython();
    const cli = await buildCli();
    tmp = mkdtempSync(join(tmpdir(), 'rlora-demo-'));
    const { stdout, stderr } = await run(process.execPath, [cli, 'demo', '--quick', '--task', 'synthetic-lowrank', '--python', python], {
      cwd: tmp,
      env: { ...process.env, OMP_NUM_THREADS: '1', RLORA_PYTHON: python },
      timeout: 180_000,
    }).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
      throw new Error(`demo exited with ${err.code}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr}`);
    });
    expect(stderr).toBe('');
    // default output root: .rlora-runs in the current folder
    const runsRoot = join(tmp, '.rlora-runs');
    expect(existsSync(runsRoot)).toBe(true);
    const table = stdout.slice(stdout.indexOf('\nmethod '));
    for (const label of ['RiemannLoRA', 'LoRA-AdamW (baseline)', 'PiSSA', 'ScaledAdamW']) {
      // method, state, lr (the worker's default for the synthetic smoke run), steps, final loss...
      expect(table).toMatch(new RegExp(`^${label.replace(/[()]/g, '\\$&')} +completed +[0-9.e-]+ +40 +\\d`, 'm'));
    }
    expect(table).toMatch(/LoRA-AdamW \(baseline\) +completed +[0-9.e-]+ +40 .* 1\.00x/);
    const reportPath = /^report: (.+)$/m.exec(stdout)?.[1];
    expect(reportPath).toBeDefined();
    expect(reportPath!.startsWith(runsRoot)).toBe(true);
    const html = readFileSync(reportPath!, 'utf8');
    for (const label of ['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW']) expect(html).toContain(label);
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]+src=|<link\b/i);
    // every run directory holds the worker's files and a PEFT adapter
    const exp = readdirSync(runsRoot);
    expect(exp).toHaveLength(1);
    for (const r of ['riemannlora', 'lora-adamw', 'pissa', 'scaled-adamw']) {
      const dir = join(runsRoot, exp[0]!, r);
      for (const f of ['config.json', 'events.jsonl', 'status.json', 'worker.log', 'run.json', 'adapter']) expect(existsSync(join(dir, f)), `${r}/${f}`).toBe(true);
    }
  }, 200_000);

  it('exits non-zero with the worker\'s explanation when a run fails, and 2 (creating nothing) for a config any side refuses', async () => {
    const python = workerPython();
    const cli = await buildCli();
    const dir = mkdtempSync(join(tmpdir(), 'rlora-cli-'));
    const runCli = (args: string[]) =>
      run(process.execPath, [cli, ...args, '--python', python], { cwd: dir, env: { ...process.env, OMP_NUM_THREADS: '1' } }).then(
        () => ({ code: 0, stdout: '', stderr: '' }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
    try {
      // schema-valid, but a rule between fields refuses it (schema/rules.json): an adapter rank above the
      // synthetic width. Refused before a runs folder exists, like the worker would refuse it.
      const bad = { task: { kind: 'synthetic-lowrank', synthetic: { width: 4, depth: 1, target_rank: 2 } }, adapter: { rank: 8 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 5 } };
      writeFileSync(join(dir, 'bad.rlora.json'), JSON.stringify(bad));
      const refused = await runCli(['run', '--config', 'bad.rlora.json']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/\/adapter\/rank: must be <= the synthetic width \(4\) \(got 8\)/);
      expect(existsSync(join(dir, '.rlora-runs'))).toBe(false);
      // valid everywhere, failing only when it runs: a hub model id with the hub offline
      writeFileSync(join(dir, 'data.jsonl'), '{"text": "hello"}\n');
      const offline = { task: { kind: 'causal-lm', model: 'some-org/some-model', data: './data.jsonl' }, adapter: { rank: 2 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 5, device: 'cpu' } };
      writeFileSync(join(dir, 'offline.rlora.json'), JSON.stringify(offline));
      const failed = await runCli(['run', '--config', 'offline.rlora.json']);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toMatch(/: failed at step 0/);
      expect(failed.stderr).toMatch(/failed: network: .*some-org\/some-model/);
      // schema-invalid: refused before anything runs, the field named
      writeFileSync(join(dir, 'worse.rlora.json'), JSON.stringify({ ...bad, adapter: { rank: 'eight' } }));
      const invalid = await runCli(['validate', '--config', 'worse.rlora.json']);
      expect(invalid.code).toBe(2);
      expect(invalid.stderr).toContain('/adapter/rank: "eight" must be integer');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
