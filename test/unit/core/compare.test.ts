// Comparison numbers: smoothing, steps to target, speedup, best eval, and the sibling configs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bestEval,
  headlineMetric,
  compareRuns,
  DEFAULT_METHODS,
  formatTable,
  siblingConfig,
  smooth,
  smoothingWindow,
  SMOOTHING_FRACTION,
  SMOOTHING_NOTE,
  SMOOTHING_PERCENT,
  stepsToTarget,
  summarizeRun,
  targetNote,
} from '../../../src/core/compare';
import { configErrors, type RunConfig } from '../../../src/core/config';
import type { WorkerEvent } from '../../../src/core/events';
import { RunSeries, type TrainPoint } from '../../../src/core/series';
import { rng } from './helpers';

const pts = (losses: (number | null)[], stepOf = (i: number) => i + 1): TrainPoint[] => losses.map((loss, i) => ({ step: stepOf(i), loss, time: i }));

/** A run whose loss decays like exp(-rate * step), from started to finished events. */
function series(rate: number, steps = 100, opts: { noise?: number; seed?: number; evalEvery?: number } = {}): RunSeries {
  const r = rng(opts.seed ?? 1);
  const ev: WorkerEvent[] = [{ type: 'started', version: 1, time: 1000, device: 'cpu', dtype: 'fp32', trainable_params: 1, total_params: 2, task: 't', method: 'm' }];
  ev.push({ type: 'init', version: 1, time: 1000, method: 'm', seconds: 2, details: { lr: 0.002 } });
  for (let s = 1; s <= steps; s++) {
    const loss = Math.exp(-rate * s) * (1 + (opts.noise ?? 0) * (r() - 0.5));
    ev.push({ type: 'metric', version: 1, time: 1000 + s * 0.1, step: s, split: 'train', loss, memory_bytes: 1000 + s });
    if (opts.evalEvery && s % opts.evalEvery === 0) ev.push({ type: 'eval', version: 1, time: 1000 + s * 0.1, step: s, metrics: { loss: loss * 1.1, accuracy: 1 - loss } });
  }
  const s = new RunSeries();
  s.add(ev);
  return s;
}

describe('smoothing and steps to target', () => {
  it('smooth is a trailing mean that skips null (NaN) losses', () => {
    expect(smooth(pts([4, 2, null, 0]), 2)).toEqual([
      { step: 1, loss: 4 },
      { step: 2, loss: 3 },
      { step: 4, loss: 1 },
    ]);
  });

  it('stepsToTarget is the first step whose smoothed loss reaches the target, null if never', () => {
    const p = pts([5, 4, 3, 2, 1]);
    expect(stepsToTarget(p, 3, 1)).toBe(3);
    expect(stepsToTarget(p, 3, 2)).toBe(4); // (3+2)/2 = 2.5 <= 3 at step 4; (4+3)/2 = 3.5 at step 3
    expect(stepsToTarget(p, 0.5, 1)).toBeNull();
    expect(stepsToTarget([], 1)).toBeNull();
  });

  for (const seed of [1, 2, 3]) {
    it(`a run decaying twice as fast reaches the baseline's final loss in about half the steps (seed ${seed})`, () => {
      const base = series(0.02, 200, { noise: 0.05, seed });
      const fast = series(0.04, 200, { noise: 0.05, seed: seed + 100 });
      const c = compareRuns(
        [
          { key: 'e/fast', label: 'Fast', method: 'x', state: 'completed', series: fast },
          { key: 'e/base', label: 'Base', method: 'y', state: 'completed', series: base },
        ],
        'e/base',
      );
      const [f, b] = c.rows;
      expect(b!.baseline).toBe(true);
      expect(b!.speedup).toBeCloseTo(1, 10);
      expect(c.target_loss).toBeCloseTo(b!.summary.final_loss_smoothed!, 12);
      expect(b!.steps_to_target).toBeLessThanOrEqual(200);
      expect(f!.speedup!).toBeGreaterThan(1.7);
      expect(f!.speedup!).toBeLessThan(2.3);
      expect(f!.steps_to_target! * f!.speedup!).toBeCloseTo(b!.steps_to_target!, 8);
    });
  }

  it('a run that never reaches the target has no speedup; no baseline means no target', () => {
    const slow = series(0.005, 100);
    const base = series(0.03, 100);
    const c = compareRuns(
      [
        { key: 'e/slow', label: 'Slow', method: 'x', state: 'completed', series: slow },
        { key: 'e/base', label: 'Base', method: 'y', state: 'completed', series: base },
      ],
      'e/base',
    );
    expect(c.rows[0]!.steps_to_target).toBeNull();
    expect(c.rows[0]!.speedup).toBeNull();
    expect(formatTable(c)).toContain('not reached');
    const none = compareRuns([{ key: 'e/slow', label: 'Slow', method: 'x', state: 'completed', series: slow }], null);
    expect(none.target_loss).toBeNull();
    expect(none.rows[0]!.speedup).toBeNull();
  });
});

describe('summaries', () => {
  it('the headline metric: token accuracy before exact match and accuracy, then loss', () => {
    expect(headlineMetric(new Set(['loss', 'accuracy', 'token_accuracy', 'perplexity']))).toEqual({ name: 'token_accuracy', higher: true });
    expect(headlineMetric(new Set(['loss', 'accuracy']))).toEqual({ name: 'accuracy', higher: true });
    expect(headlineMetric(new Set(['loss', 'perplexity']))).toEqual({ name: 'loss', higher: false });
  });

  it('final/best smoothed loss, best eval (accuracy preferred, higher is better), wall time with init, peak memory', () => {
    const s = summarizeRun(series(0.03, 100, { evalEvery: 25 }));
    expect(s.steps).toBe(100);
    // window = 10% of 100 points: the mean of exp(-0.03 s) for s = 91..100
    const expected = Array.from({ length: 10 }, (_, i) => Math.exp(-0.03 * (91 + i))).reduce((a, b) => a + b) / 10;
    expect(s.final_loss_smoothed).toBeCloseTo(expected, 12);
    expect(s.best_loss_smoothed).toBeCloseTo(expected, 12);
    expect(s.best_eval).toEqual({ name: 'accuracy', value: 1 - Math.exp(-3), step: 100 });
    expect(s.train_wall_s).toBeCloseTo(2 + 10, 6); // init seconds + last event - started
    expect(s.peak_memory_bytes).toBe(1100);
    expect(s.lr).toBe(0.002); // what the worker says it used
    expect(s.final_eval?.loss).toBeCloseTo(1.1 * Math.exp(-3), 12);
  });

  it('bestEval takes the minimum of a loss and ignores null metrics', () => {
    expect(bestEval([{ step: 1, time: 0, metrics: { loss: 2 } }, { step: 2, time: 0, metrics: { loss: null } }, { step: 3, time: 0, metrics: { loss: 1.5 } }])).toEqual({ name: 'loss', value: 1.5, step: 3 });
    expect(bestEval([])).toBeNull();
  });

  it('a resumed run drops the points logged after its checkpoint', () => {
    const s = new RunSeries();
    const started = (t: number, from: number): WorkerEvent => ({ type: 'started', version: 1, time: t, device: 'cpu', dtype: 'fp32', trainable_params: 1, total_params: 1, task: 't', method: 'm', start_step: from });
    const m = (t: number, step: number): WorkerEvent => ({ type: 'metric', version: 1, time: t, step, split: 'train', loss: 1 / step });
    s.add([started(0, 0), m(1, 1), m(2, 2), m(3, 3)]);
    const r = s.add([started(10, 2), m(11, 3), m(12, 4)]);
    expect(r.reset).toBe(true);
    expect(s.train.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    expect(s.trainWallSeconds).toBeCloseTo(3 + 2, 9);
  });
});

describe('the smoothing window: one constant, and every text states it', () => {
  it('smoothingWindow is SMOOTHING_FRACTION of the logged points, and the table says so and which losses are smoothed', () => {
    expect(smoothingWindow(100)).toBe(Math.ceil(100 * SMOOTHING_FRACTION));
    expect(smoothingWindow(3)).toBe(1);
    expect(SMOOTHING_NOTE).toContain(SMOOTHING_PERCENT);
    const c = compareRuns([{ key: 'e/base', label: 'Base', method: 'y', state: 'completed', series: series(0.02) }], 'e/base');
    const table = formatTable(c);
    expect(table).toContain('final loss (smoothed)');
    expect(table).toContain('best loss (smoothed)');
    expect(table).toContain(targetNote(c.target_loss!));
    expect(targetNote(1)).toContain(SMOOTHING_NOTE);
  });

  it('no code, doc or README states another window ("N% of the logged ...")', () => {
    const root = join(import.meta.dirname, '..', '..', '..');
    const files = [
      ...['README.md', 'src/core/README.md', 'native-worker/README.md', 'native-worker/riemannlora/worker/README.md'].map((f) => join(root, f)),
      ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f)),
      ...['src', 'webview'].flatMap((d) => (readdirSync(join(root, d), { recursive: true }) as string[]).filter((f) => /\.ts$/.test(f)).map((f) => join(root, d, f))),
    ].filter((f) => existsSync(f));
    const stated: string[] = [];
    for (const f of files) {
      for (const m of readFileSync(f, 'utf8').matchAll(/(\d+(?:\.\d+)?)\s*%\s+of\s+(?:the\s+)?logged/g)) stated.push(`${relative(root, f)}: ${m[1]}%`);
    }
    expect(stated.length).toBeGreaterThan(0); // the docs do state it
    expect(stated.filter((s) => !s.endsWith(`: ${SMOOTHING_FRACTION * 100}%`))).toEqual([]);
  });
});

describe('sibling configs', () => {
  const base: RunConfig = {
    name: 'exp',
    task: { kind: 'synthetic-lowrank' },
    adapter: { rank: 4, alpha: 8 },
    method: { init: 'loi', optimizer: 'riemannion', lr: 0.05, momentum: 0.8, momentum_store: 'orthogonalized', schedule: 'cosine', warmup_steps: 3, loi: { oversample: 4 } },
    train: { steps: 20, seed: 3 },
  };

  it('each method keeps the task, adapter, budget and schedule and gets its own default lr', () => {
    for (const m of DEFAULT_METHODS) {
      const c = siblingConfig(base, m);
      expect(configErrors(c)).toEqual([]);
      expect(c.method.init).toBe(m.init);
      expect(c.method.optimizer).toBe(m.optimizer);
      expect(c.task).toEqual(base.task);
      expect(c.adapter).toEqual(base.adapter);
      expect(c.train).toEqual(base.train);
      expect(c.method.schedule).toBe('cosine');
      expect(c.method.warmup_steps).toBe(3);
      expect(c.name).toBe(`exp · ${m.label}`);
      if (m.optimizer === 'riemannion') {
        expect(c.method.lr).toBe(0.05); // the base's lr was for this very optimizer
        expect(c.method.momentum_store).toBe('orthogonalized');
        expect(c.method.loi).toEqual({ oversample: 4 });
      } else {
        expect(c.method.lr).toBeUndefined();
        expect(c.method.momentum).toBeUndefined();
        expect(c.method.momentum_store).toBeUndefined();
        expect(c.method.loi).toBeUndefined();
      }
    }
  });

  it('a preset lr wins, and the base config is not modified', () => {
    const before = structuredClone(base);
    expect(siblingConfig(base, { id: 'x', label: 'X', init: 'lora', optimizer: 'adamw', lr: 0.01 }).method.lr).toBe(0.01);
    expect(base).toEqual(before);
  });
});
