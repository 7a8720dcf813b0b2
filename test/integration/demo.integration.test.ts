// The headless main job end to end: the bundled CLI's `demo --quick --task synthetic-lowrank` in a temp
// folder, with the real worker: exit 0, the summary table with all four methods, the HTML report.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, workerPython } from './helpers';

const run = promisify(execFile);
let tmp = '';
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Bundles src/cli.ts the way esbuild.mjs does, into the (git-ignored) test-results folder of the project. */
async function buildCli(): Promise<string> {
  const outdir = join(ROOT, 'test-results', 'demo-cli');
  mkdirSync(outdir, { recursive: true });
  await esbuild.build({ entryPoints: { cli: join(ROOT, 'src', 'cli.ts') }, outdir, bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'error' });
  return join(outdir, 'cli.js');
}

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
      expect(table).toMatch(new RegExp(`^${label.replace(/[()]/g, '\\$&')} +completed +40 +\\d`, 'm'));
    }
    expect(table).toMatch(/LoRA-AdamW \(baseline\) +completed +40 .* 1\.00x/);
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
});
