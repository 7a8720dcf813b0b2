// The headless main job end to end: the bundled CLI's `demo --quick --task synthetic-lowrank` in a temp
// folder, with the real worker: the fair protocol (docs/comparisons.md) with 2 learning rates and 2 seeds
// per method: exit 0, the plan, the table with all four methods, one verdict per method against the
// baseline, comparison.json valid and the HTML report with the verdict.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { validate } from '../../src/core/schemas';
import { buildCli, workerPython } from './helpers';

const run = promisify(execFile);
let tmp = '';
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm run demo (quick, synthetic task)', () => {
  it('runs the fair protocol for the four methods through the engine, prints the table and the verdict, writes comparison.json and a self-contained report', async () => {
    const python = workerPython();
    const cli = await buildCli();
    tmp = mkdtempSync(join(tmpdir(), 'rlora-demo-'));
    const { stdout, stderr } = await run(process.execPath, [cli, 'demo', '--quick', '--task', 'synthetic-lowrank', '--python', python], {
      cwd: tmp,
      env: { ...process.env, OMP_NUM_THREADS: '1', RLORA_PYTHON: python },
      timeout: 900_000,
    }).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
      throw new Error(`demo exited with ${err.code}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr}`);
    });
    expect(stderr).toBe('');
    // The plan and its cost come first: 4 methods × (2 trials at half the steps + 2 seeds).
    expect(stdout).toMatch(/^fair protocol: 4 methods × \(2 × 20 search steps \+ 2 seeds × 40 steps\) = 16 runs, 12 full-run equivalents$/m);
    // default output root: .rlora-runs in the current folder
    const runsRoot = join(tmp, '.rlora-runs');
    expect(existsSync(runsRoot)).toBe(true);
    const table = stdout.slice(stdout.indexOf('\nmethod '));
    for (const label of ['RiemannLoRA', 'LoRA-AdamW (baseline)', 'PiSSA', 'ScaledAdamW']) {
      // method, the chosen lr, completed seeds, the final test loss as mean ± half-width
      expect(table).toMatch(new RegExp(`^${label.replace(/[()]/g, '\\$&')} +[0-9.e-]+ +2/2 +[0-9.e-]+ ± [0-9.e-]+ `, 'm'));
    }
    const verdicts = stdout.split('\n').filter((l) => l.startsWith('• '));
    expect(verdicts).toHaveLength(3);
    for (const v of verdicts) expect(v).toMatch(/^• (RiemannLoRA|PiSSA|ScaledAdamW) vs LoRA-AdamW: final test loss [+−][0-9.e−+]+ \(95% CI .+, 2 seeds\)/);
    const recordPath = /^comparison\.json: (.+)$/m.exec(stdout)?.[1];
    expect(recordPath).toBeDefined();
    const record = JSON.parse(readFileSync(recordPath!, 'utf8'));
    expect(validate('comparison', record)).toEqual([]);
    expect(record.state).toBe('complete');
    expect(record.verdict.map((v: string) => `• ${v}`)).toEqual(verdicts);
    const reportPath = /^report: (.+)$/m.exec(stdout)?.[1];
    expect(reportPath).toBeDefined();
    expect(reportPath!.startsWith(runsRoot)).toBe(true);
    const html = readFileSync(reportPath!, 'utf8');
    for (const label of ['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW']) expect(html).toContain(label);
    expect(html).toContain('<h2>Verdict</h2>');
    expect(html).toContain('id="sensitivity"');
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]+src=|<link\b/i);
    // one experiment; every replicate holds the worker's files and a PEFT adapter, the search trials none
    const exp = readdirSync(runsRoot);
    expect(exp).toHaveLength(1);
    const runs = readdirSync(join(runsRoot, exp[0]!)).filter((f) => !f.endsWith('.json') && !f.endsWith('.html'));
    expect(runs).toHaveLength(16);
    for (const r of ['riemannlora', 'lora-adamw', 'pissa', 'scaled-adamw']) {
      for (const seed of [0, 1]) {
        const dir = join(runsRoot, exp[0]!, `${r}-seed${seed}`);
        for (const f of ['config.json', 'events.jsonl', 'status.json', 'worker.log', 'run.json', 'adapter']) expect(existsSync(join(dir, f)), `${r}-seed${seed}/${f}`).toBe(true);
      }
      const trials = runs.filter((d) => d.startsWith(`${r}-r0-`));
      expect(trials).toHaveLength(2);
      for (const t of trials) expect(existsSync(join(runsRoot, exp[0]!, t, 'adapter'))).toBe(false);
    }
  }, 1_000_000);

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
