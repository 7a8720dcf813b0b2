// The fair protocol end to end through the engine with the REAL worker on synthetic-lowrank: the search
// budget is the same for every method, trials select on the validation half with their own seed,
// replicates are matched by seed and report on the test half, comparison.json is valid against its schema,
// and every number in it is recomputed here from the run folders.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DEFAULT_METHODS, smooth, smoothingWindow } from '../../src/core/compare';
import type { RunConfig } from '../../src/core/config';
import { Engine } from '../../src/core/engine';
import { readAllEvents } from '../../src/core/events';
import { COMPARISON_FILE, readComparisonRecord, replicateRuns, runFairComparison, type ComparisonRecord } from '../../src/core/fairComparison';
import { lrGrid } from '../../src/core/protocol';
import { validate } from '../../src/core/schemas';
import { RunSeries } from '../../src/core/series';
import { pairedDifference, tInterval } from '../../src/core/stats';
import { NATIVE_WORKER, WORKER_ENV, workerPython } from './helpers';

const base: RunConfig = {
  name: 'fair',
  task: { kind: 'synthetic-lowrank', synthetic: { width: 24, depth: 2, target_rank: 2, n_train: 512, n_eval: 64 } },
  adapter: { rank: 2 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 16, batch_size: 16, eval_interval: 4, eval_batches: 2, threads: 1, device: 'cpu', seed: 5 },
  output: { checkpoint_interval: 0, export_adapter: false },
};

let root = '';
let engine: Engine | undefined;
afterAll(() => {
  engine?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

const methods = DEFAULT_METHODS.filter((m) => m.id === 'riemannlora' || m.id === 'lora-adamw');

it('runs the search and the matched replicates, and writes a comparison.json the run folders confirm', { timeout: 600_000 }, async () => {
  const python = workerPython();
  root = mkdtempSync(join(tmpdir(), 'rlora-fair-'));
  engine = new Engine({ root, python, nativeWorkerDir: NATIVE_WORKER, env: WORKER_ENV, maxConcurrent: 2, pollIntervalMs: 50 });
  const written: string[] = [];
  const estimates: ComparisonRecord['estimate'][] = [];
  const { experiment, record } = await runFairComparison(engine, base, {
    methods,
    baseline: 'lora-adamw',
    settings: { trials: 4, seeds: 2 },
    name: 'fair test',
    onRecord: (r) => {
      written.push(r.state);
      estimates.push({ ...r.estimate });
    },
  });
  expect(written[0]).toBe('running'); // the plan is on disk before any run ends
  // A time estimate before any run ended (projected from the first steps), then refined from ended runs.
  const first = estimates.findIndex((e) => e.remaining_s !== null);
  expect(estimates[first]).toMatchObject({ ended_runs: 0 });
  expect(estimates[first]!.remaining_s).toBeGreaterThan(0);
  expect(estimates.some((e) => e.ended_runs > 0 && e.remaining_s !== null)).toBe(true);
  expect(record.state, JSON.stringify(record.methods.map((m) => m.replicates.map((x) => x.state)))).toBe('complete');

  const read = readComparisonRecord(experiment.dir);
  expect(read.kind).toBe('ok');
  const doc = JSON.parse(readFileSync(join(experiment.dir, COMPARISON_FILE), 'utf8'));
  expect(validate('comparison', doc)).toEqual([]);
  expect(doc).toEqual(JSON.parse(JSON.stringify(record)));
  expect(engine.store.getExperiment(experiment.id)?.protocol).toBe('fair');

  const cfg = (run: string): RunConfig => JSON.parse(readFileSync(join(experiment.dir, run, 'config.json'), 'utf8'));
  const seriesOf = (run: string): RunSeries => {
    const s = new RunSeries();
    s.add(readAllEvents(join(experiment.dir, run, 'events.jsonl')).events);
    return s;
  };

  // The search: the same rungs and rates drawn from each method's catalogue range, the validation half, the search seed.
  expect(record.protocol.rungs).toEqual([
    { index: 0, trials: 4, steps: 4 },
    { index: 1, trials: 2, steps: 8 },
  ]);
  const budgets = record.methods.map((m) => m.trials.reduce((s, t) => s + t.steps, 0));
  expect(budgets).toEqual([32, 32]);
  for (const m of record.methods) {
    expect(m.trials.filter((t) => t.rung === 0).map((t) => t.lr)).toEqual(lrGrid(m.lr_range, 4));
    for (const t of m.trials) {
      const c = cfg(t.run);
      expect(c.task.heldout).toBe('validation');
      expect(c.train.seed).toBe(record.protocol.search_seed);
      expect(c.train.steps).toBe(t.steps);
      expect(c.method).toMatchObject({ optimizer: m.optimizer, init: m.init, lr: t.lr });
      const s = seriesOf(t.run);
      expect(s.lastStep).toBe(t.steps);
      expect(t.loss).toBe(s.eval.at(-1)!.metrics.loss);
    }
    // Rung 1 holds the better half of rung 0 (by final validation loss: this task has no accuracy), the chosen rate the better of rung 1.
    const byLoss = (rung: number) => m.trials.filter((t) => t.rung === rung).sort((a, b) => a.loss! - b.loss! || a.lr - b.lr);
    expect(new Set(m.trials.filter((t) => t.rung === 1).map((t) => t.lr))).toEqual(new Set(byLoss(0).slice(0, 2).map((t) => t.lr)));
    expect(m.chosen_lr).toBe(byLoss(1)[0]!.lr);
  }
  expect(record.metric).toEqual({ name: 'loss', higher: false });

  // Replicates: seed i is the same for every method, the test half, the full budget, the chosen rate;
  // between methods the configs differ in the method only.
  const reps = replicateRuns(record);
  expect(reps.size).toBe(4);
  for (const seed of record.protocol.replicate_seeds) {
    const configs = record.methods.map((m) => cfg(`${m.id}-seed${seed}`));
    for (const [i, c] of configs.entries()) {
      expect(c.train.seed).toBe(seed);
      expect(c.task.heldout).toBe('test');
      expect(c.train.steps).toBe(16);
      expect(c.method.lr).toBe(record.methods[i]!.chosen_lr);
    }
    const { method: _a, name: _na, ...restA } = configs[0]!;
    const { method: _b, name: _nb, ...restB } = configs[1]!;
    expect(restA).toEqual(restB);
  }
  expect(record.protocol.replicate_seeds).toEqual([5, 6]);
  expect(record.protocol.search_seed).not.toBe(5);

  // Every replicate number, recomputed from its events.
  for (const m of record.methods) {
    for (const r of m.replicates) {
      const s = seriesOf(r.run);
      expect(r.final_metric).toBe(s.eval.at(-1)!.metrics.loss);
      const sm = smooth(s.train, smoothingWindow(s.train.length));
      expect(r.final_loss_smoothed).toBeCloseTo(sm.at(-1)!.loss, 12);
      const hit = s.eval.find((e) => e.step > 0 && (e.metrics.loss as number) <= record.target!);
      expect(r.steps_to_target).toBe(hit ? hit.step : null);
    }
  }
  const baseline = record.methods.find((m) => m.id === 'lora-adamw')!;
  const other = record.methods.find((m) => m.id === 'riemannlora')!;
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  expect(record.target).toBeCloseTo(mean(baseline.replicates.map((r) => r.final_metric!)), 12);
  expect(other.summary!.final_metric).toEqual(tInterval(other.replicates.map((r) => r.final_metric!)));
  expect(other.summary!.vs_baseline!.final_metric_diff).toEqual(
    pairedDifference(
      other.replicates.map((r) => r.final_metric!),
      baseline.replicates.map((r) => r.final_metric!),
    ),
  );
  expect(record.verdict).toHaveLength(1);
  expect(record.verdict[0]).toMatch(/^RiemannLoRA vs LoRA-AdamW: final test loss [+−]/);
  expect(record.verdict[0]).toMatch(/\(fair protocol: 4 learning rates searched per method, 2 full runs each; 2 matched seeds × 16 steps\)\.$/);
  expect(existsSync(join(experiment.dir, 'riemannlora-seed5', 'adapter'))).toBe(false);
});

it('stopped part-way: the record says stopped, and no rate is chosen from trials that were cut short', { timeout: 600_000 }, async () => {
  const python = workerPython();
  const dir = mkdtempSync(join(tmpdir(), 'rlora-fair-stop-'));
  const e = new Engine({ root: dir, python, nativeWorkerDir: NATIVE_WORKER, env: WORKER_ENV, maxConcurrent: 1, pollIntervalMs: 50 });
  try {
    const abort = new AbortController();
    const started: string[] = [];
    e.on('run-added', (info) => started.push(info.key));
    const { record, runs } = await runFairComparison(e, { ...base, train: { ...base.train, steps: 400, eval_interval: 100 } }, {
      methods,
      baseline: 'lora-adamw',
      settings: { trials: 2, seeds: 2 },
      name: 'stopped',
      signal: abort.signal,
      onRecord: (r) => {
        // The first run has ended (one at a time): stop everything, as Ctrl-C in the CLI does.
        if (r.estimate.ended_runs >= 1 && !abort.signal.aborted) {
          abort.abort();
          for (const key of started) if (!['completed', 'failed', 'stopped', 'diverged'].includes(e.get(key)!.state)) e.stop(key);
        }
      },
    });
    expect(record.state).toBe('stopped');
    // Only the first method's first rung was created; its second trial was stopped, so nothing is chosen.
    expect(runs.map((r) => r.run).sort()).toEqual(record.methods.flatMap((m) => m.trials.map((t) => t.run)).sort());
    for (const m of record.methods) expect(m.chosen_lr).toBeNull();
    expect(record.methods.flatMap((m) => m.replicates)).toEqual([]);
    expect(record.verdict).toEqual([]);
    expect(validate('comparison', JSON.parse(readFileSync(join(dir, runs[0]!.experiment, COMPARISON_FILE), 'utf8')))).toEqual([]);
  } finally {
    e.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
