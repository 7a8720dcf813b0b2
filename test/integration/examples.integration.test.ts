// The repository's examples/ through the headless CLI with the real worker: every config is valid for
// the engine and for the worker alike (`validate` runs both), from a folder other than the examples', and
// the synthetic one trains to completion and exports its adapter.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config';
import { buildCli, ROOT, workerPython } from './helpers';

const run = promisify(execFile);
const EXAMPLES = join(ROOT, 'examples');
const CONFIGS = readdirSync(EXAMPLES).filter((f) => f.endsWith('.rlora.json')).sort();
const elsewhere = mkdtempSync(join(tmpdir(), 'rlora-examples-'));
afterAll(() => rmSync(elsewhere, { recursive: true, force: true }));
// The CLI runs in a folder that holds Python files named like the standard library's: the worker it
// starts must never import them (src/core/launcher.ts: PYTHONSAFEPATH and a neutral current folder).
const PLANT = "import pathlib\npathlib.Path(__file__).with_name('PWNED').write_text(__file__ + ' was imported')\n";
for (const f of ['argparse.py', 'json.py']) writeFileSync(join(elsewhere, f), PLANT);

describe('examples/', () => {
  it('has a config for every task kind and a comparison', () => {
    const kinds = CONFIGS.map((f) => loadConfig(join(EXAMPLES, f)).task.kind);
    expect(new Set(kinds)).toEqual(new Set(['synthetic-lowrank', 'builtin-default', 'causal-lm']));
    expect(CONFIGS).toContain('compare-synthetic.rlora.json');
  });

  it.each(CONFIGS)('%s is valid for the engine and the worker', async (file) => {
    const python = workerPython();
    const cli = await buildCli();
    const config = loadConfig(join(EXAMPLES, file));
    for (const key of ['model', 'data', 'eval_data'] as const) {
      const p = config.task[key];
      if (p) expect(existsSync(p), `${file}: task.${key} ${p}`).toBe(true);
    }
    const { stdout } = await run(process.execPath, [cli, 'validate', '--config', join(EXAMPLES, file), '--python', python], {
      cwd: elsewhere,
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(stdout).toContain('valid against schema/run-config.schema.json');
    const worker = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { valid: boolean; problems: unknown[] };
    expect(worker).toMatchObject({ valid: true, problems: [] });
    expect(existsSync(join(elsewhere, 'PWNED'))).toBe(false);
  }, 120_000);

  it('synthetic.rlora.json trains to completion and exports a PEFT adapter', async () => {
    const python = workerPython();
    const cli = await buildCli();
    const out = join(elsewhere, 'runs');
    // The config named relative to the current folder, as in the README's `--config examples/…`.
    const { stdout } = await run(process.execPath, [cli, 'run', '--config', relative(elsewhere, join(EXAMPLES, 'synthetic.rlora.json')), '--python', python, '--out', out], {
      cwd: elsewhere,
      env: { ...process.env, OMP_NUM_THREADS: '1' },
      timeout: 180_000,
    });
    expect(stdout).toMatch(/synthetic quick start: completed at step 100, final loss \(smoothed\) \d/);
    const dir = /^run directory: (.+)$/m.exec(stdout)![1]!;
    expect(JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')).state).toBe('completed');
    expect(existsSync(join(dir, 'adapter', 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(elsewhere, 'PWNED'))).toBe(false);
  }, 200_000);
});
