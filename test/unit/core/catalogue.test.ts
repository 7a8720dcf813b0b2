// The method catalogue (schema/methods.json) is the one description of the methods: the schema, the
// settings and the comparison read or are generated from it (scripts/gen-catalogue.mjs).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { INITS, OPTIMIZERS, lrSearchRange, starts, takes } from '../../../src/core/catalogue';
import { DEFAULT_METHODS, siblingConfig } from '../../../src/core/compare';
import { configErrors, type RunConfig } from '../../../src/core/config';
import schema from '../../../schema/run-config.schema.json';
import manifest from '../../../package.json';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'rlora-catalogue-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the method catalogue', () => {
  it('the schema and package.json say what it says (the drift check of npm test)', () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-catalogue.mjs'), '--check'], { stdio: 'pipe' });
    const method = schema.$defs.method.properties;
    expect(method.optimizer.enum).toEqual(OPTIMIZERS.map((o) => o.id));
    expect(method.init.enum).toEqual(INITS.map((i) => i.id));
    const settings = manifest.contributes.configuration.properties;
    expect(settings['riemannlora.defaults.optimizer'].enum).toEqual(OPTIMIZERS.map((o) => o.id));
  });

  it('deleting an optimizer and regenerating removes it from the schema and the settings', () => {
    cpSync(join(ROOT, 'schema'), join(tmp, 'schema'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(tmp, 'package.json'));
    const cat = JSON.parse(readFileSync(join(tmp, 'schema', 'methods.json'), 'utf8'));
    cat.optimizers = cat.optimizers.filter((o: { id: string }) => o.id !== 'muon');
    writeFileSync(join(tmp, 'schema', 'methods.json'), JSON.stringify(cat, null, 2));
    expect(() => execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-catalogue.mjs'), '--check', '--root', tmp], { stdio: 'pipe' })).toThrow();
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-catalogue.mjs'), '--root', tmp], { stdio: 'pipe' });
    const text = readFileSync(join(tmp, 'schema', 'run-config.schema.json'), 'utf8') + readFileSync(join(tmp, 'package.json'), 'utf8');
    expect(text).not.toContain('"muon"');
    expect(readFileSync(join(ROOT, 'schema', 'run-config.schema.json'), 'utf8')).toContain('"muon"');
  });

  it('the schema enforces the init x optimizer rule the catalogue states', () => {
    const base: RunConfig = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2 }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 2 } };
    for (const o of OPTIMIZERS) {
      for (const i of INITS) {
        const errors = configErrors({ ...base, method: { init: i.id, optimizer: o.id } });
        expect(errors.length === 0, `${i.id} x ${o.id}`).toBe(starts(i.id, o.id));
      }
    }
  });

  it('a task the catalogue scales searches from 3x to 300x each default; any other task the optimizer range', () => {
    for (const o of OPTIMIZERS) {
      const [lo, hi] = lrSearchRange(o.id, 'builtin-default');
      expect(lo).toBeCloseTo(3 * o.lr.default, 15);
      expect(hi).toBeCloseTo(300 * o.lr.default, 15);
      expect(lrSearchRange(o.id, 'causal-lm')).toEqual(o.lr.search);
      expect(lrSearchRange(o.id, '$comment')).toEqual(o.lr.search);
    }
  });

  it('learning-rate search ranges surround each default', () => {
    for (const o of OPTIMIZERS) {
      const [lo, hi] = lrSearchRange(o.id);
      expect(lo).toBeLessThan(o.lr.default);
      expect(hi).toBeGreaterThan(o.lr.default);
    }
  });

  it('a comparison sibling gets only the fields its optimizer takes (riemannian-adam: momentum, not betas)', () => {
    const base: RunConfig = {
      task: { kind: 'synthetic-lowrank' },
      adapter: { rank: 2 },
      method: { init: 'lora', optimizer: 'sgd', momentum: 0.8, betas: [0.8, 0.99], loraplus_ratio: 8 },
      train: { steps: 2 },
    };
    for (const o of OPTIMIZERS) {
      const m = siblingConfig(base, { id: o.id, label: o.label, init: 'lora', optimizer: o.id }).method;
      expect(m.momentum !== undefined, `${o.id} momentum`).toBe(takes(o.id, 'momentum'));
      expect(m.betas !== undefined, `${o.id} betas`).toBe(takes(o.id, 'betas'));
      expect(m.loraplus_ratio !== undefined, `${o.id} ratio`).toBe(takes(o.id, 'loraplus_ratio'));
    }
    const radam = siblingConfig(base, { id: 'r', label: 'r', init: 'lora', optimizer: 'riemannian-adam' }).method;
    expect(radam.momentum).toBe(0.8);
    expect(radam.betas).toBeUndefined();
  });

  it('a DoRA base config still yields a valid sibling for every default method (PiSSA and RiemannLoRA run without DoRA)', () => {
    const base: RunConfig = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2, dora: true }, method: { init: 'lora', optimizer: 'adamw' }, train: { steps: 2 } };
    const dora = DEFAULT_METHODS.map((m) => [m.id, siblingConfig(base, m).adapter.dora]);
    expect(dora).toEqual([['riemannlora', false], ['lora-adamw', true], ['pissa', false], ['scaled-adamw', true]]);
  });
});
