// The fair protocol's plan (protocol.ts) and its numbers and words (verdict.ts, fairTable.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_METHODS } from '../../../src/core/compare';
import { edgeOfSearch } from '../../../src/core/fairComparison';
import { demoConfig } from '../../../src/core/demo';
import { lrSearchRange } from '../../../src/core/catalogue';
import { fitRunSeconds, halvingRungs, lrGrid, planCost, planFair, plannedRunSteps, remainingSeconds, replicateConfig, SEARCH_SEED_OFFSET, searchCost, trialConfig } from '../../../src/core/protocol';
import type { WorkerEvent } from '../../../src/core/events';
import { RunSeries } from '../../../src/core/series';
import { evalTarget, improvesOn, rankTrials, summarizeMethod, verdictSentence, type ReplicateResult, type TrialResult } from '../../../src/core/verdict';

const base = demoConfig('synthetic-lowrank');

describe('the plan', () => {
  it('spreads the trials log-uniformly over the catalogue range (cell centres)', () => {
    expect(lrGrid([1e-6, 1e-2], 4)).toEqual([3.16e-6, 3.16e-5, 3.16e-4, 3.16e-3]);
    const g = lrGrid(lrSearchRange('adamw'), 8);
    const logs = g.map(Math.log10);
    for (let i = 1; i < logs.length; i++) expect(logs[i]! - logs[i - 1]!).toBeCloseTo(0.5, 2);
    expect(lrGrid([1e-4, 1e-2], 1)).toEqual([1e-3]);
    expect(() => lrGrid([0, 1], 2)).toThrow(/0 < low < high/);
  });

  it('halves the trials and doubles the steps; 4 trials cost 2 full runs, 8 cost 3', () => {
    expect(halvingRungs(4, 200)).toEqual([
      { index: 0, trials: 4, steps: 50 },
      { index: 1, trials: 2, steps: 100 },
    ]);
    expect(searchCost({ rungs: halvingRungs(4, 200), steps: 200 })).toBe(2);
    expect(halvingRungs(8, 400).map((r) => [r.trials, r.steps])).toEqual([
      [8, 50],
      [4, 100],
      [2, 200],
    ]);
    expect(searchCost({ rungs: halvingRungs(8, 400), steps: 400 })).toBe(3);
    expect(halvingRungs(3, 200).map((r) => r.trials)).toEqual([3, 2]);
    expect(halvingRungs(2, 200)).toEqual([{ index: 0, trials: 2, steps: 100 }]);
    expect(halvingRungs(1, 200)).toEqual([]);
  });

  it('gives every method the same search budget, the same replicate seeds, and a search seed no replicate has', () => {
    const plan = planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 3 });
    expect(plan.replicateSeeds).toEqual([0, 1, 2]);
    expect(plan.searchSeed).toBe(SEARCH_SEED_OFFSET);
    const budgets = plan.methods.map((m) => plan.rungs.reduce((s, r) => s + r.trials * r.steps, 0) + m.grid.length * 0);
    expect(new Set(budgets).size).toBe(1);
    for (const m of plan.methods) expect(m.grid).toHaveLength(4);
    expect(planCost(plan)).toEqual({ runs: 4 * (4 + 2 + 3), fullRuns: 4 * (2 + 3), steps: 4 * (2 + 3) * base.train.steps });
  });

  it("searches the task's range: the built-in default's small model trains at 3-300x the LLM rates", () => {
    const builtin = { ...base, task: { kind: 'builtin-default' as const } };
    const plan = planFair(builtin, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 3 });
    const riemannion = plan.methods.find((m) => m.preset.optimizer === 'riemannion')!;
    expect(riemannion.range).toEqual([3e-4, 3e-2]);
    expect(riemannion.grid).toEqual(lrGrid([3e-4, 3e-2], 4));
    expect(riemannion.grid[2]).toBeCloseTo(5.33e-3, 5);
    // the trials select on token accuracy, so they skip greedy generation; the replicates keep it
    const m = plan.methods[0]!;
    expect(trialConfig(builtin, plan, m, plan.rungs[0]!, m.grid[0]!).task.eval_generate).toBe(false);
    expect(replicateConfig(builtin, m, m.grid[0]!, 0).task.eval_generate).toBeUndefined();
    const synthetic = planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 3 });
    expect(trialConfig(base, synthetic, synthetic.methods[0]!, synthetic.rungs[0]!, 1e-3).task.eval_generate).toBeUndefined();
    expect(synthetic.methods.find((m) => m.preset.optimizer === 'riemannion')!.range).toEqual(lrSearchRange('riemannion'));
  });

  it('trials select on the validation half with the search seed; replicates report on the test half at the full budget', () => {
    const plan = planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 3 });
    const m = plan.methods[0]!;
    const t = trialConfig(base, plan, m, plan.rungs[0]!, m.grid[1]!);
    expect(t.task.heldout).toBe('validation');
    expect(t.train.steps).toBe(plan.rungs[0]!.steps);
    expect(t.train.seed).toBe(plan.searchSeed);
    expect(t.method.lr).toBe(m.grid[1]);
    expect(t.output?.export_adapter).toBe(false);
    for (const seed of plan.replicateSeeds) {
      const r = replicateConfig(base, m, 1e-3, seed);
      expect(r.task.heldout).toBe('test');
      expect(r.train.steps).toBe(base.train.steps);
      expect(r.train.seed).toBe(seed);
      expect(r.method).toMatchObject({ init: m.preset.init, optimizer: m.preset.optimizer, lr: 1e-3 });
    }
  });

  it('scales a warmup into a trial so the rules between fields still hold', () => {
    const warm = { ...base, method: { ...base.method, warmup_steps: base.train.steps } };
    const plan = planFair(warm, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 2 });
    const t = trialConfig(warm, plan, plan.methods[1]!, plan.rungs[0]!, 1e-3);
    expect(t.method.warmup_steps).toBe(plan.rungs[0]!.steps);
  });

  it('refuses settings that cannot give an interval, and a baseline that is not compared', () => {
    expect(() => planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 1 })).toThrow(/at least 2 seeds/);
    expect(() => planFair(base, DEFAULT_METHODS, 'nope', { trials: 4, seeds: 3 })).toThrow(/baseline nope/);
    expect(() => planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 0, seeds: 3 })).toThrow(/--trials/);
  });
});

const trial = (lr: number, metric: number | null, loss: number | null): TrialResult => ({ rung: 0, lr, steps: 10, run: `t${lr}`, state: metric === null ? 'diverged' : 'completed', metric, loss });

describe('selection', () => {
  it('ranks by the metric, puts trials without one last, breaks ties by eval loss then the lower rate', () => {
    const acc = { name: 'exact_match', higher: true };
    const ranked = rankTrials([trial(1, 0.2, 1), trial(2, null, null), trial(3, 0.5, 2), trial(4, 0.5, 1), trial(5, 0.5, 1)], acc);
    expect(ranked.map((t) => t.lr)).toEqual([4, 5, 3, 1, 2]);
    const loss = { name: 'loss', higher: false };
    expect(rankTrials([trial(1, 0.3, 0.3), trial(2, null, null), trial(3, 0.1, 0.1)], loss).map((t) => t.lr)).toEqual([3, 1, 2]);
  });
});

function evalSeries(values: number[], every = 10): RunSeries {
  const ev: WorkerEvent[] = [{ type: 'started', version: 1, time: 100, device: 'cpu', dtype: 'fp32', trainable_params: 1, total_params: 2, task: 't', method: 'm' }];
  values.forEach((v, i) => {
    ev.push({ type: 'metric', version: 1, time: 100 + (i + 1) * every, step: (i + 1) * every, split: 'train', loss: 1 - v });
    ev.push({ type: 'eval', version: 1, time: 100 + (i + 1) * every, step: (i + 1) * every, metrics: { exact_match: v, loss: 1 - v } });
  });
  const s = new RunSeries();
  s.add(ev);
  return s;
}

const rep = (seed: number, final: number, steps: number | null): ReplicateResult => ({
  seed,
  run: `r${seed}`,
  state: 'completed',
  lr: 1e-3,
  final_metric: final,
  final_eval_loss: 1 - final,
  final_loss_smoothed: 1 - final,
  steps_to_target: steps,
  time_to_target_s: steps,
  train_wall_s: 10,
});

describe('numbers and words', () => {
  it('a chosen rate at an end of the searched grid is said, with what it means', () => {
    const trials = [trial(1e-3, 0.5, 1), trial(1e-2, 0.6, 1), trial(1e-1, 0.7, 1), { ...trial(1e-1, 0.8, 1), rung: 1 }];
    expect(edgeOfSearch({ label: 'X', chosen_lr: 1e-1, trials })).toBe("X's chosen rate 0.1 is the highest it searched");
    expect(edgeOfSearch({ label: 'X', chosen_lr: 1e-3, trials })).toBe("X's chosen rate 0.001 is the lowest it searched");
    expect(edgeOfSearch({ label: 'X', chosen_lr: 1e-2, trials })).toBeNull();
    expect(edgeOfSearch({ label: 'X', chosen_lr: null, trials })).toBeNull();
  });

  it('steps to target: the first evaluation at least as good, with the wall seconds by then', () => {
    const s = evalSeries([0.1, 0.3, 0.5, 0.4]);
    expect(evalTarget(s, { name: 'exact_match', higher: true }, 0.45)).toEqual({ step: 30, seconds: 30 });
    expect(evalTarget(s, { name: 'exact_match', higher: true }, 0.9)).toBeNull();
    expect(evalTarget(s, { name: 'loss', higher: false }, 0.7)).toEqual({ step: 20, seconds: 20 });
  });

  it('pairs by seed, counts censored seeds, and says "not significant" when an interval covers zero', () => {
    const baseline = [rep(0, 0.4, 100), rep(1, 0.42, 120), rep(2, 0.41, 110)];
    const noisy = [rep(0, 0.45, 50), rep(1, 0.38, null), rep(2, 0.43, 60)];
    const s = summarizeMethod(noisy, baseline);
    expect(s.steps_to_target).toMatchObject({ reached: 2, of: 3 });
    expect(s.vs_baseline!.speedup_pairs).toBe(2);
    expect(s.vs_baseline!.speedup!.mean).toBeCloseTo(Math.sqrt((100 / 50) * (110 / 60)), 12);
    const d = s.vs_baseline!.final_metric_diff!;
    expect(d.mean).toBeCloseTo((0.05 - 0.04 + 0.02) / 3, 12);
    const words = verdictSentence({ label: 'X', baselineLabel: 'B', metric: { name: 'exact_match', higher: true }, summary: s, baselineSummary: summarizeMethod(baseline, null), seeds: 3, protocol: '(P)' });
    expect(words).toMatch(/^X vs B: final test exact match \(points\) \+1\.0 \(95% CI −\d/);
    expect(words).toMatch(/not significant — 3 seeds cannot resolve a difference smaller than about ±/);
    expect(words).toMatch(/2 seeds where both reached it/);
    expect(words.endsWith(' (P).')).toBe(true);
  });

  it('says "significantly better" when every seed is better by a clear margin', () => {
    const baseline = [rep(0, 0.4, 100), rep(1, 0.42, 100), rep(2, 0.41, 100)];
    const better = [rep(0, 0.5, 50), rep(1, 0.53, 52), rep(2, 0.51, 48)];
    const s = summarizeMethod(better, baseline);
    const words = verdictSentence({ label: 'X', baselineLabel: 'B', metric: { name: 'exact_match', higher: true }, summary: s, baselineSummary: summarizeMethod(baseline, null), seeds: 3, protocol: '' });
    expect(words).toMatch(/\+10\.3 \(95% CI \+\d+\.\d to \+\d+\.\d, 3 seeds\): significantly better/);
    expect(words).toMatch(/speed-up to B's mean final exact match 2× \(2× fewer steps; 95% CI .*significantly sooner/);
  });
});

describe('the time estimate', () => {
  it('fits start-up + per-step seconds and prices the runs left, refined as runs end', () => {
    expect(fitRunSeconds([])).toBeNull();
    const fit = fitRunSeconds([
      { steps: 50, seconds: 5 + 50 * 0.1 },
      { steps: 100, seconds: 5 + 100 * 0.1 },
      { steps: 200, seconds: 5 + 200 * 0.1 },
    ])!;
    expect(fit.a).toBeCloseTo(5, 12);
    expect(fit.b).toBeCloseTo(0.1, 12);
    // One length: no start-up can be separated; the per-step cost carries it.
    expect(fitRunSeconds([{ steps: 50, seconds: 10 }])).toEqual({ a: 0, b: 0.2 });
    const plan = planFair(base, DEFAULT_METHODS, 'lora-adamw', { trials: 4, seeds: 3 });
    expect(plannedRunSteps(plan)).toHaveLength(planCost(plan).runs);
    const S = plan.steps;
    const cost = (steps: number) => 5 + 0.1 * steps;
    const ended = [
      { steps: S / 4, seconds: cost(S / 4) },
      { steps: S / 2, seconds: cost(S / 2) },
    ];
    const all = plannedRunSteps(plan).reduce((s, n) => s + cost(n), 0);
    expect(remainingSeconds(plan, ended, 2)).toBeCloseTo((all - cost(S / 4) - cost(S / 2)) / 2, 9);
    expect(remainingSeconds(plan, [], 2)).toBeNull();
  });
});

describe('degenerate cases say so', () => {
  it('no spread across seeds: no interval and no significance claimed', () => {
    const baseline = [rep(0, 0.5, 100), rep(1, 0.5, 100)];
    const same = [rep(0, 0.5, 50), rep(1, 0.5, 50)];
    const s = summarizeMethod(same, baseline);
    const words = verdictSentence({ label: 'X', baselineLabel: 'B', metric: { name: 'exact_match', higher: true }, summary: s, baselineSummary: summarizeMethod(baseline, null), seeds: 2, protocol: '' });
    expect(words).toMatch(/\+0\.0 in each of 2 seeds \(no spread across seeds: no interval, no significance claimed\)/);
    expect(words).toMatch(/speed-up to B's mean final exact match 2× \(2× fewer steps\) in each of the 2 seeds where both reached it \(no spread: no interval, no significance claimed\)/);
    expect(words).not.toMatch(/significantly/);
  });

  it('a target no better than the start is no target, and step 0 never reaches one', () => {
    const acc = { name: 'exact_match', higher: true };
    const flat = evalSeries([0, 0, 0]);
    expect(evalTarget(flat, acc, 0)).toEqual({ step: 10, seconds: 10 }); // the first evaluation after step 0
    expect(improvesOn(0, 0, acc)).toBe(false);
    expect(improvesOn(0.2, 0, acc)).toBe(true);
    expect(improvesOn(0.3, 0.5, { name: 'loss', higher: false })).toBe(true);
    const words = verdictSentence({ label: 'X', baselineLabel: 'B', metric: acc, summary: summarizeMethod([rep(0, 0, null), rep(1, 0, null)], [rep(0, 0, null), rep(1, 0, null)]), baselineSummary: summarizeMethod([rep(0, 0, null)], null), seeds: 2, protocol: '', noTarget: 'no speed-up: nothing to reach' });
    expect(words).toContain('no speed-up: nothing to reach');
  });
});

