// @vitest-environment jsdom
import { describe, expect, test } from 'vitest';
import { chunk, csvText, isMetricKey, metricLabel, parseWebviewMessage, reviveChunk, toCsv } from '../../src/shared/messages';
import { SeriesStore } from '../../webview/shared/chartModel';

describe('webview → host messages are validated by the host', () => {
  test('accepts the well-formed ones', () => {
    expect(parseWebviewMessage({ type: 'ready' })).toEqual({ type: 'ready' });
    expect(parseWebviewMessage({ type: 'exportCsv', requestId: 3, runs: ['e/a'], metrics: ['loss', 'eval:accuracy'] })).toEqual({
      type: 'exportCsv',
      requestId: 3,
      runs: ['e/a'],
      metrics: ['loss', 'eval:accuracy'],
    });
    expect(parseWebviewMessage({ type: 'command', command: 'showLog', run: 'e/a' })).toEqual({ type: 'command', command: 'showLog', run: 'e/a' });
    expect(parseWebviewMessage({ type: 'exportPng', requestId: 0, dataUrl: 'data:image/png;base64,AAAA', name: 'x' })?.type).toBe('exportPng');
  });
  test.each([
    null,
    'ready',
    [],
    { type: 'nope' },
    { type: 'exportCsv', requestId: -1, runs: [], metrics: [] },
    { type: 'exportCsv', requestId: 1.5, runs: [], metrics: [] },
    { type: 'exportCsv', requestId: 1, runs: [3], metrics: [] },
    { type: 'exportCsv', requestId: 1, runs: [], metrics: ['bogus'] },
    { type: 'exportPng', requestId: 1, dataUrl: 'javascript:alert(1)' },
    { type: 'command', command: 'rm -rf', run: 'e/a' },
    { type: 'command', command: 'stopRun' },
  ])('rejects %j', (m) => {
    expect(parseWebviewMessage(m)).toBeUndefined();
  });
});

describe('series chunks', () => {
  test('typed arrays survive structured cloning and feed the store in order', () => {
    const c = chunk('e/a', 'loss', 0, [1, 2, 3], [10, 11, 12], [0.5, NaN, 0.25]);
    const cloned = structuredClone(c);
    expect(Object.prototype.toString.call(cloned.value)).toBe("[object Float64Array]");
    const store = new SeriesStore();
    expect(store.apply([cloned])).toBe(true);
    expect(store.apply([chunk('e/a', 'loss', 3, [4], [13], [0.2])])).toBe(true);
    expect(store.apply([chunk('e/a', 'loss', 5, [6], [15], [0.1])])).toBe(false); // a lost delta is detected
    expect(store.get('e/a', 'loss')!.length).toBe(4);
    expect(Number.isNaN(store.get('e/a', 'loss')!.value[1])).toBe(true);
  });
  test('columns must agree in length', () => {
    expect(() => chunk('e/a', 'loss', 0, [1, 2], [1], [1, 2])).toThrow(/differ in length/);
  });
  test('reviveChunk turns plain arrays and index objects back into Float64Array', () => {
    const plain = { run: 'e/a', metric: 'lr', offset: 0, step: [1, 2], time: { 0: 5, 1: 6 }, value: [null, 3] } as never;
    const r = reviveChunk(plain);
    expect(r.step).toBeInstanceOf(Float64Array);
    expect(Array.from(r.time)).toEqual([5, 6]);
    expect(Number.isNaN(r.value[0])).toBe(true);
  });
});

test('CSV export keeps every point of every run, escapes labels, NaN as empty', () => {
  const n = 2500;
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  const csv = toCsv([
    { run: 'e/a', label: 'RiemannLoRA', metric: 'loss', step: steps, time: steps, value: steps.map((s) => 1 / s) },
    { run: 'e/b', label: 'LoRA, "AdamW"', metric: 'loss', step: [1, 2], time: [1, 2], value: [NaN, 0.5] },
  ]);
  const lines = csv.trimEnd().split('\n');
  expect(lines[0]).toBe('run,label,metric,step,wall_time,value');
  expect(lines.length).toBe(1 + n + 2);
  expect(lines[n + 1]).toBe('e/b,"LoRA, ""AdamW""",loss,1,1,');
  expect(lines[n]).toBe(`e/a,RiemannLoRA,loss,${n},${n},${1 / n}`);
});

test('CSV neutralises text cells a spreadsheet would run as formulas; numbers (also negative) stay numbers', () => {
  const csv = toCsv([
    { run: 'e/a', label: '=HYPERLINK("http://x","click")', metric: 'eval:+cmd', step: [1], time: [2], value: [-0.5] },
    { run: 'e/b', label: '@SUM(A1)', metric: 'loss', step: [1], time: [2], value: [-1e-7] },
    { run: 'e/c', label: '-2+3', metric: 'loss', step: [1], time: [2], value: [0] },
    { run: 'e/d', label: '\t=1', metric: 'loss', step: [1], time: [2], value: [1] },
    { run: 'e/e', label: '\r=1', metric: 'loss', step: [1], time: [2], value: [1] },
    { run: 'e/f', label: 'plain - label = fine', metric: 'loss', step: [1], time: [2], value: [1] },
  ]);
  const lines = csv.split('\n');
  expect(lines[1]).toBe(`e/a,"'=HYPERLINK(""http://x"",""click"")",eval:+cmd,1,2,-0.5`);
  expect(lines[2]).toBe("e/b,'@SUM(A1),loss,1,2,-1e-7");
  expect(lines[3]).toBe("e/c,'-2+3,loss,1,2,0");
  expect(lines[4]).toBe("e/d,'\t=1,loss,1,2,1");
  expect(lines[5]).toBe(`e/e,"'\r=1",loss,1,2,1`);
  expect(lines[6]).toBe('e/f,plain - label = fine,loss,1,2,1');
  expect(csvText('-0.5')).toBe("'-0.5"); // text that looks like a number is still text
});

test('metric keys and labels', () => {
  expect(isMetricKey('loss')).toBe(true);
  expect(isMetricKey('eval:accuracy')).toBe(true);
  expect(isMetricKey('eval:')).toBe(false);
  expect(metricLabel('tokens_per_s')).toBe('tokens/s');
  expect(metricLabel('eval:exact_match')).toBe('eval exact_match');
});
