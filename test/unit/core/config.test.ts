// Config loading: errors name the field path and the allowed values; JSON syntax errors say where.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, configErrors, loadConfig, parseConfigText, withDefaults, type RunConfig } from '../../../src/core/config';
import { siblingConfig } from '../../../src/core/compare';
import { demoComparison, demoConfig, DEMO_TASKS } from '../../../src/core/demo';
import { tempDir } from './helpers';

const good: RunConfig = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 4 }, method: { init: 'loi', optimizer: 'riemannion' }, train: { steps: 10 } };

let cleanup = () => {};
afterEach(() => cleanup());

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config validation', () => {
  it('names the field and the allowed values of a bad enum', () => {
    const e = errorOf(() => parseConfigText(JSON.stringify({ ...good, method: { init: 'loi', optimizer: 'adam' } }), 'x.rlora.json'));
    expect(e.errors).toEqual([{ path: '/method/optimizer', message: expect.stringContaining('allowed values: "riemannion", "riemannian-sgd"') }]);
    expect(e.message).toMatch(/^x\.rlora\.json: invalid run config:\n\/method\/optimizer: "adam" is not allowed/);
  });

  it('names a missing field, an unknown key (with the allowed keys) and a bad type at once', () => {
    const errs = configErrors({ task: { kind: 'synthetic-lowrank' }, adapter: { rnak: 4 }, method: { init: 'loi', optimizer: 'riemannion' }, train: { steps: 'ten' } });
    const paths = errs.map((e) => e.path);
    expect(paths).toContain('/adapter/rank');
    expect(paths).toContain('/adapter/rnak');
    expect(paths).toContain('/train/steps');
    expect(errs.find((e) => e.path === '/adapter/rnak')?.message).toMatch(/allowed keys: .*rank/);
  });

  it('explains a rule across groups: Riemannian optimizers cannot start from a gaussian init', () => {
    const errs = configErrors({ ...good, method: { init: 'gaussian', optimizer: 'riemannion' } });
    expect(errs.map((e) => e.path)).toEqual(['/method/init']);
    expect(errs[0]!.message).toContain('"loi", "lora", "pissa", "lora-ga"');
  });

  it('reports JSON syntax errors with line and column, and unreadable files by code', () => {
    const e = errorOf(() => parseConfigText('{\n  "task": {,\n}', 'bad.json'));
    expect(e.errors[0]!.path).toBe('/');
    expect(e.errors[0]!.message).toMatch(/not valid JSON at line 2, column \d+/);
    expect(errorOf(() => loadConfig('/nonexistent/file.json')).message).toMatch(/cannot read the file: ENOENT/);
  });

  it('loads a valid file', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const p = join(t.dir, 'c.rlora.json');
    writeFileSync(p, JSON.stringify(good));
    expect(loadConfig(p)).toEqual(good);
  });

  it('withDefaults fills the schema defaults and leaves lr to the optimizer', () => {
    const d = withDefaults(good);
    expect(d.train.batch_size).toBe(8);
    expect(d.train.precision).toBe('fp32');
    expect(d.adapter.target_modules).toBe('all-linear');
    expect(d.method.schedule).toBe('constant');
    expect(d.method.lr).toBeUndefined();
    expect(d.output?.export_adapter).toBe(true);
    expect(configErrors(d)).toEqual([]);
    expect(good.train).toEqual({ steps: 10 }); // not modified
  });

  it('the demo configs are valid, quick ones shorter', () => {
    for (const task of DEMO_TASKS) {
      const full = demoConfig(task);
      const quick = demoConfig(task, { quick: true });
      expect(configErrors(full)).toEqual([]);
      expect(quick.train.steps).toBeLessThan(full.train.steps);
      expect(full.train.threads).toBe(1);
      const demo = demoComparison(task);
      expect(demo.methods.map((m) => m.label)).toEqual(['RiemannLoRA', 'LoRA-AdamW', 'PiSSA', 'ScaledAdamW']);
      for (const m of demo.methods) expect(configErrors(siblingConfig(full, m))).toEqual([]);
      // No hand-picked rate: every method's rate comes from the fair protocol's search.
      expect(demo.methods.every((m) => m.lr === undefined)).toBe(true);
      expect(demo.settings).toEqual({ trials: 4, seeds: 3 });
      expect(demoComparison(task, { quick: true }).settings).toEqual({ trials: 2, seeds: 2 });
    }
  });
});

describe('local paths in a config file', () => {
  it('are made absolute relative to the file, while hub ids stay as they are', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rlora-paths-'));
    mkdirSync(join(dir, 'models', 'tiny'), { recursive: true });
    const file = join(dir, 'exp.rlora.json');
    writeFileSync(
      file,
      JSON.stringify({
        task: { kind: 'causal-lm', model: 'models/tiny', data: './data/train.jsonl', eval_data: 'org/eval-set' },
        adapter: { rank: 2 },
        method: { init: 'lora', optimizer: 'adamw' },
        train: { steps: 1 },
      }),
    );
    const config = loadConfig(file);
    expect(config.task.model).toBe(join(dir, 'models', 'tiny')); // exists: local
    expect(config.task.data).toBe(join(dir, 'data', 'train.jsonl')); // explicitly relative: local even if missing
    expect(config.task.eval_data).toBe('org/eval-set'); // neither: a hub id
    // The same when the file is named relative to the current folder (`--config exp.rlora.json`).
    const cwd = process.cwd();
    try {
      process.chdir(join(dir, 'models'));
      expect(loadConfig(join('..', 'exp.rlora.json')).task.model).toBe(join(dir, 'models', 'tiny'));
    } finally {
      process.chdir(cwd);
    }
  });
});
