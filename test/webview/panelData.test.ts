// The host side of the message contract: engine points → series chunks with exact offsets, so a
// snapshot followed by deltas reproduces the run in the webview's store with nothing lost or doubled.
import { describe, expect, test } from 'vitest';
import type { ComparisonRecord } from '../../src/core/fairComparison';
import type { RunInfo } from '../../src/core/runStore';
import { validate } from '../../src/core/schemas';
import type { EvalPoint, TrainPoint } from '../../src/core/series';
import { configSummary, runView, SentSeries, sensitivityView, toColumns } from '../../src/panels/panelData';
import { type HostMessage, packSeries, unpackSeries } from '../../src/shared/messages';
import { SeriesStore } from '../../webview/shared/chartModel';

const train = (from: number, to: number): TrainPoint[] =>
  Array.from({ length: to - from }, (_, i) => ({ step: from + i, loss: i === 3 ? null : 1 / (from + i + 1), time: 1000 + from + i, lr: 1e-3, grad_norm: 0.5 }));

describe('SentSeries', () => {
  test('snapshot + deltas rebuild every point once, in order', () => {
    const sent = new SentSeries();
    const store = new SeriesStore();
    expect(store.apply(sent.snapshot('e/a', train(0, 100), []))).toBe(true);
    for (let k = 100; k < 1000; k += 37) expect(store.apply(sent.delta('e/a', train(k, Math.min(1000, k + 37)), []))).toBe(true);
    const loss = store.get('e/a', 'loss')!;
    expect(loss.length).toBe(1000);
    expect(Array.from(loss.step.subarray(0, 1000))).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Number.isNaN(loss.value[3])).toBe(true); // a NaN loss stays a (skipped) point
    expect(store.get('e/a', 'lr')!.length).toBe(1000);
    expect(store.get('e/a', 'tokens_per_s')).toBeUndefined(); // absent fields make no series
  });

  test('an eval point re-delivered with more metrics adds only the new metric', () => {
    const sent = new SentSeries();
    const store = new SeriesStore();
    const p: EvalPoint = { step: 50, time: 5, metrics: { loss: 0.3 } };
    store.apply(sent.snapshot('e/a', [], [p]));
    p.metrics.accuracy = 0.8; // the engine merges the eval event into the same point
    const d = sent.delta('e/a', [], [p, { step: 100, time: 9, metrics: { loss: 0.2, accuracy: 0.9 } }]);
    expect(store.apply(d)).toBe(true);
    expect(Array.from(store.get('e/a', 'eval_loss')!.step.subarray(0, 2))).toEqual([50, 100]);
    expect(Array.from(store.get('e/a', 'eval:accuracy')!.value.subarray(0, 2))).toEqual([0.8, 0.9]);
  });

  test('a new snapshot starts the offsets over (a reopened or reset view)', () => {
    const sent = new SentSeries();
    sent.snapshot('e/a', train(0, 10), []);
    const again = sent.snapshot('e/a', train(0, 5), []);
    expect(again.find((c) => c.metric === 'loss')!.offset).toBe(0);
    expect(sent.delta('e/a', train(5, 6), []).find((c) => c.metric === 'loss')!.offset).toBe(5);
  });
});

/**
 * VS Code's webview postMessage as it behaves: structured-clone-like, but every typed array travels as a
 * separate RPC buffer whose count is one byte, so the arrays past the first 254 arrive empty.
 */
function vscodeTransport<T>(message: T): T {
  let buffers = 0;
  const walk = (x: unknown): unknown => {
    if (ArrayBuffer.isView(x)) return ++buffers <= 254 ? structuredClone(x) : new (x.constructor as Float64ArrayConstructor)(0);
    if (Array.isArray(x)) return x.map(walk);
    if (typeof x === 'object' && x !== null) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
    return x;
  };
  return walk(message) as T;
}

describe('host → webview: every curve of a many-run comparison arrives', () => {
  const RUNS = Array.from({ length: 30 }, (_, r) => `exp/run-${String(r).padStart(2, '0')}`);
  const evals = (from: number, to: number): EvalPoint[] =>
    Array.from({ length: Math.floor(to / 10) - Math.floor(from / 10) }, (_, i) => {
      const step = (Math.floor(from / 10) + i + 1) * 10;
      return { step, time: 2000 + step, metrics: { loss: 1 / step, accuracy: step === 20 ? null : step / 1000 } };
    });

  test('30 runs: snapshot then deltas, through the transport, rebuild every point of every metric', () => {
    const sent = new SentSeries();
    const store = new SeriesStore();
    const post = (m: HostMessage) => {
      const got = vscodeTransport(m);
      if (got.type !== 'snapshot' && got.type !== 'append') return true;
      return store.apply(unpackSeries(got.series));
    };
    const snapshot = RUNS.flatMap((run) => sent.snapshot(run, train(0, 100), evals(0, 99)));
    expect(snapshot.length).toBe(30 * 5); // loss, lr, grad_norm, eval_loss, eval:accuracy
    expect(post({ type: 'snapshot', kind: 'compare', target: { kind: 'compare', experiment: 'exp' }, title: 'exp', runs: [], series: packSeries(snapshot) })).toBe(true);
    for (let k = 100; k < 400; k += 50) {
      // a delta per poll carries every run's new points (a live comparison)
      const delta = RUNS.flatMap((run) => sent.delta(run, train(k, k + 50), evals(k - 1, k + 49)));
      expect(post({ type: 'append', series: packSeries(delta) })).toBe(true);
    }
    for (const run of RUNS) {
      const loss = store.get(run, 'loss')!;
      expect(loss.length).toBe(400);
      expect(Array.from(loss.step.subarray(0, 400))).toEqual(Array.from({ length: 400 }, (_, i) => i));
      expect(Number.isNaN(loss.value[3])).toBe(true); // NaN loss kept
      expect(Number.isNaN(loss.value[103])).toBe(true);
      expect(store.get(run, 'lr')!.length).toBe(400);
      expect(store.get(run, 'grad_norm')!.length).toBe(400);
      const ev = store.get(run, 'eval_loss')!;
      expect(Array.from(ev.step.subarray(0, ev.length))).toEqual(Array.from({ length: 39 }, (_, i) => (i + 1) * 10));
      const acc = store.get(run, 'eval:accuracy')!;
      expect(acc.length).toBe(39);
      expect(Number.isNaN(acc.value[1])).toBe(true);
    }
  });

  test('the same snapshot as one typed array per column loses curves in the transport (the bug this format fixes)', () => {
    const sent = new SentSeries();
    const chunks = RUNS.flatMap((run) => sent.snapshot(run, train(0, 100), evals(0, 99)));
    const got = vscodeTransport({ series: chunks });
    const whole = got.series.filter((c, i) => c.step.length === chunks[i]!.step.length && c.value.length === chunks[i]!.value.length).length;
    expect(whole).toBeLessThan(chunks.length);
    expect(whole).toBe(Math.floor(254 / 3)); // 84 of 150 curves, silently
  });
});

test('toColumns splits train and eval points into named metrics', () => {
  const cols = toColumns(train(0, 4), [{ step: 2, time: 1, metrics: { loss: 0.5, exact_match: null } }]);
  expect([...cols.keys()].sort()).toEqual(['eval:exact_match', 'eval_loss', 'grad_norm', 'loss', 'lr']);
  expect(Number.isNaN(cols.get('eval:exact_match')!.value[0])).toBe(true);
});

test('runView shows the error, hint and log tail only for failed runs', () => {
  const info: RunInfo = {
    key: 'e/a', experiment: 'e', run: 'a', dir: '/x', label: 'A', method: 'riemannion+loi', task: 'synthetic-lowrank', state: 'failed',
    step: 7, steps: 10, pid: null, host: null, created_at: 0, started_at: 1, ended_at: 2, exit_code: 1,
    last_error: { kind: 'crashed', message: 'boom', hint: 'resume it' }, summary: null, damaged: null,
  };
  const v = runView(info, undefined, { logTail: 'Traceback…' });
  expect(v.error).toEqual({ kind: 'crashed', message: 'boom', hint: 'resume it' });
  expect(v.logTail).toBe('Traceback…');
  const ok = runView({ ...info, state: 'completed' }, undefined, { logTail: 'x' });
  expect(ok.error).toBeUndefined();
  expect(ok.logTail).toBeUndefined();
});

test('runView of a damaged run shows the reason as its error (and no log tail: it may never have run)', () => {
  const reason = 'status.json: /state: "bogus" is not allowed; allowed values: "queued", "running"';
  const info: RunInfo = {
    key: 'e/a', experiment: 'e', run: 'a', dir: '/x', label: 'A', method: 'unknown', task: 'unknown', state: 'damaged',
    step: 0, steps: 0, pid: null, host: null, created_at: 0, started_at: null, ended_at: null, exit_code: null,
    last_error: null, summary: null, damaged: reason,
  };
  const v = runView(info, undefined, { logTail: 'x' });
  expect(v.state).toBe('damaged');
  expect(v.error).toEqual({ kind: 'damaged', message: reason, hint: expect.stringMatching(/repair or delete/) });
  expect(v.logTail).toBeUndefined();
});

test('configSummary names what distinguishes runs', () => {
  const lines = configSummary({
    task: { kind: 'synthetic-lowrank' },
    adapter: { rank: 8 },
    method: { init: 'loi', optimizer: 'riemannion', lr: 0.01 },
    train: { steps: 100 },
  });
  expect(lines).toEqual(expect.arrayContaining(['optimizer: riemannion', 'init: loi', 'rank: 8', 'lr: 0.01', 'steps: 100']));
});

describe('sensitivityView: the tab sensitivity chart payload from comparison.json', () => {
  type Trial = ComparisonRecord['methods'][number]['trials'][number];
  const trial = (rung: number, lr: number, metric: number | null, state = 'completed'): Trial => ({
    rung,
    lr,
    steps: rung === 0 ? 4 : 8,
    run: `m-r${rung}-lr${lr.toExponential(2).replace('+', '')}`,
    state,
    metric,
    loss: metric,
  });
  const method = (id: string, label: string, optimizer: string, init: string, trials: Trial[], chosen: number | null): ComparisonRecord['methods'][number] => ({
    id,
    label,
    init,
    optimizer,
    lr_range: [1e-5, 1e-1],
    trials,
    chosen_lr: chosen,
    replicates: [],
    summary: null,
  });
  /** Successive halving with 4 trials: rung 0 at 4 steps, the better 2 again at 8 (one method still in rung 0, one with a diverged trial). */
  const record: ComparisonRecord = {
    version: 1,
    state: 'running',
    protocol: {
      kind: 'fair',
      trials: 4,
      seeds: 2,
      eta: 2,
      steps: 16,
      rungs: [
        { index: 0, trials: 4, steps: 4 },
        { index: 1, trials: 2, steps: 8 },
      ],
      search_seed: 1000,
      replicate_seeds: [0, 1],
      selection: 'validation',
      report: 'test',
      interval: 't',
      search_cost_full_runs: 2,
    },
    budget: { runs: 20, full_runs: 12, steps: 160 },
    baseline: 'lora-adamw',
    metric: { name: 'exact_match', higher: true },
    target: null,
    methods: [
      method(
        'riemannlora',
        'RiemannLoRA',
        'riemannion',
        'loi',
        [trial(0, 3e-3, 0.31), trial(0, 1e-4, 0.12), trial(0, 3e-2, null, 'diverged'), trial(0, 1e-3, 0.25), trial(1, 3e-3, 0.44), trial(1, 1e-3, 0.47)],
        1e-3,
      ),
      method('lora-adamw', 'LoRA-AdamW', 'adamw', 'lora', [trial(0, 2e-4, 0.2), trial(0, 2e-3, 0.3), trial(0, 2e-5, 0.05), trial(0, 2e-2, 0.01)], null),
      method('pissa', 'PiSSA', 'adamw', 'pissa', [], null),
    ],
    verdict: [],
    estimate: { remaining_s: null, ended_runs: 10 },
    created_at: 1,
    updated_at: 2,
  };

  test('the fixture is a valid comparison.json', () => {
    expect(validate('comparison', record)).toEqual([]);
  });

  test('per method every searched rate once, at its longest rung, sorted by rate; the chosen rate; the method as RunView.method', () => {
    const s = sensitivityView(record);
    expect(s.metric).toBe('exact_match');
    expect(s.methods.map((m) => [m.method, m.label, m.chosen])).toEqual([
      ['riemannion+loi', 'RiemannLoRA', 1e-3],
      ['adamw+lora', 'LoRA-AdamW', null],
      ['adamw+pissa', 'PiSSA', null],
    ]);
    expect(s.methods[0]!.points).toEqual([
      { lr: 1e-4, value: 0.12, rung: 0 },
      { lr: 1e-3, value: 0.47, rung: 1 },
      { lr: 3e-3, value: 0.44, rung: 1 },
      { lr: 3e-2, value: null, rung: 0 },
    ]);
    expect(s.methods[1]!.points.map((p) => p.lr)).toEqual([2e-5, 2e-4, 2e-3, 2e-2]);
    expect(s.methods[2]!.points).toEqual([]);
    // Checked generically against the record: one point per distinct rate, the value of its highest-rung trial.
    for (const [i, m] of record.methods.entries()) {
      const rates = [...new Set(m.trials.map((t) => t.lr))].sort((a, b) => a - b);
      expect(s.methods[i]!.points.map((p) => p.lr)).toEqual(rates);
      for (const p of s.methods[i]!.points) {
        const longest = m.trials.filter((t) => t.lr === p.lr).sort((a, b) => b.rung - a.rung)[0]!;
        expect(p).toEqual({ lr: p.lr, value: longest.metric, rung: longest.rung });
      }
    }
  });

  test('before the primary metric is known the axis says "selection metric"; the payload survives the webview transport', () => {
    const s = sensitivityView({ ...record, metric: null });
    expect(s.metric).toBe('selection metric');
    expect(vscodeTransport(s)).toEqual(s);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // plain data: no typed arrays, null (not NaN) for a failed trial
  });
});
