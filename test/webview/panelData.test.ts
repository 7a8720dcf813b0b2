// The host side of the message contract: engine points → series chunks with exact offsets, so a
// snapshot followed by deltas reproduces the run in the webview's store with nothing lost or doubled.
import { describe, expect, test } from 'vitest';
import type { RunInfo } from '../../src/core/runStore';
import type { EvalPoint, TrainPoint } from '../../src/core/series';
import { configSummary, runView, SentSeries, toColumns } from '../../src/panels/panelData';
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
