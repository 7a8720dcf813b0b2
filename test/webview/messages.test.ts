// @vitest-environment jsdom
import { describe, expect, test } from 'vitest';
import { rng } from '../unit/core/helpers';
import {
  chunk,
  csvText,
  type HostMessage,
  isMetricKey,
  type MetricKey,
  metricLabel,
  packSeries,
  parseWebviewMessage,
  reviveColumn,
  type SeriesChunk,
  toCsv,
  unpackSeries,
} from '../../src/shared/messages';
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
  test('reviveColumn turns plain arrays and index objects back into Float64Array (null is NaN)', () => {
    expect(reviveColumn([1, 2])).toBeInstanceOf(Float64Array);
    expect(Array.from(reviveColumn({ 1: 6, 0: 5, 10: 7, 2: null }))).toEqual([5, 6, NaN, 7]);
    expect(Number.isNaN(reviveColumn([null, 3])[0])).toBe(true);
    expect(reviveColumn(undefined).length).toBe(0);
  });
});


const METRICS: MetricKey[] = ['loss', 'eval_loss', 'lr', 'grad_norm', 'tokens_per_s', 'memory_bytes', 'eval:accuracy', 'eval:exact_match'];

function randomChunks(seed: number, count: number): SeriesChunk[] {
  const rnd = rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const n = rnd() < 0.15 ? 0 : Math.floor(rnd() * 40);
    const step = Array.from({ length: n }, (_, j) => j * 3 + Math.floor(rnd() * 3));
    const time = step.map((s) => 1.7e9 + s * 0.25 + rnd());
    const value = step.map(() => {
      const r = rnd();
      return r < 0.1 ? NaN : r < 0.12 ? -0 : r < 0.14 ? 1e308 : (r - 0.5) * 1e3;
    });
    return chunk(`exp/run-${Math.floor(rnd() * 50)}`, METRICS[i % METRICS.length]!, Math.floor(rnd() * 1e6), step, time, value);
  });
}

/** ArrayBuffer-backed values (typed arrays, DataViews, ArrayBuffers) in a message: what VS Code sends as separate buffers. */
function buffers(x: unknown, seen = new Set<unknown>()): number {
  if (typeof x !== 'object' || x === null || seen.has(x)) return 0;
  seen.add(x);
  if (ArrayBuffer.isView(x) || x instanceof ArrayBuffer) return 1;
  return Object.values(x).reduce<number>((n, v) => n + buffers(v, seen), 0);
}

/** Same run, metric, offset and points (NaN equal to NaN, -0 to -0: Object.is), columns as Float64Array. */
function expectSameChunks(got: SeriesChunk[], want: SeriesChunk[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    expect({ run: g.run, metric: g.metric, offset: g.offset }).toEqual({ run: w.run, metric: w.metric, offset: w.offset });
    for (const col of ['step', 'time', 'value'] as const) {
      expect(g[col]).toBeInstanceOf(Float64Array);
      expect(g[col].length).toBe(w[col].length);
      for (let j = 0; j < w[col].length; j++) if (!Object.is(g[col][j], w[col][j])) throw new Error(`chunk ${i} ${col}[${j}]: ${g[col][j]} != ${w[col][j]}`);
    }
  });
}

describe('packed series (the wire format)', () => {
  test.each([1, 2, 3, 42, 2024])('pack → structured clone → unpack gives the same chunks (seed %i, 1,000 chunks with empty ones and NaN)', (seed) => {
    const chunks = randomChunks(seed, 1000);
    expect(chunks.some((c) => c.step.length === 0)).toBe(true);
    expect(chunks.some((c) => c.value.some(Number.isNaN))).toBe(true);
    const packed = packSeries(chunks);
    expect(packed.data.length).toBe(3 * chunks.reduce((n, c) => n + c.step.length, 0));
    expectSameChunks(unpackSeries(structuredClone(packed)), chunks);
  });

  test('no chunks, and only empty chunks, pack and unpack', () => {
    expect(unpackSeries(packSeries([]))).toEqual([]);
    const empty = [chunk('e/a', 'loss', 7, [], [], [])];
    expectSameChunks(unpackSeries(structuredClone(packSeries(empty))), empty);
  });

  test('unpacked columns are views into the one buffer, not copies', () => {
    const packed = packSeries(randomChunks(5, 20));
    for (const c of unpackSeries(packed)) for (const col of [c.step, c.time, c.value]) expect(col.buffer).toBe(packed.data.buffer);
  });

  test('a snapshot of 40 runs × 8 metrics carries exactly one typed-array buffer', () => {
    const chunks: SeriesChunk[] = [];
    for (let r = 0; r < 40; r++) for (const m of METRICS) chunks.push(chunk(`e/r${r}`, m, 0, [1, 2, 3], [4, 5, 6], [0.5, NaN, 0.25]));
    const m: HostMessage = { type: 'snapshot', kind: 'compare', target: { kind: 'compare', experiment: 'e' }, title: 'e', runs: [], series: packSeries(chunks) };
    expect(buffers(m)).toBe(1);
    expect(buffers(structuredClone(m))).toBe(1);
    expect(buffers({ type: 'append', series: packSeries(chunks) } satisfies HostMessage)).toBe(1);
    // What it replaces: three buffers per chunk, 960 for this message (VS Code's RPC counts them in one byte).
    expect(buffers({ series: chunks })).toBe(3 * 40 * 8);
  });

  test('data delivered as a plain array (JSON: NaN → null) or an index-keyed object is revived', () => {
    const chunks = randomChunks(9, 50);
    const packed = packSeries(chunks);
    const asJson = JSON.parse(JSON.stringify({ index: packed.index, data: Array.from(packed.data) }));
    expect(asJson.data).toContain(null);
    const asObject = { index: packed.index, data: Object.fromEntries(Array.from(packed.data, (v, i) => [String(i), v])) };
    const stripNegZero = (cs: SeriesChunk[]) => cs.map((c) => ({ ...c, value: c.value.map((v) => (Object.is(v, -0) ? 0 : v)) }));
    expectSameChunks(stripNegZero(unpackSeries(asJson)), stripNegZero(chunks)); // JSON writes -0 as 0
    expectSameChunks(unpackSeries(asObject as never), chunks);
  });

  test('a pack that does not add up throws instead of losing a curve silently', () => {
    const packed = packSeries([chunk('e/a', 'loss', 0, [1, 2], [3, 4], [5, 6]), chunk('e/b', 'loss', 0, [1], [3], [5])]);
    expect(() => unpackSeries({ ...packed, data: new Float64Array(0) })).toThrow(/values for more/); // the buffer arrived empty
    expect(() => unpackSeries({ ...packed, data: packed.data.subarray(0, 8) })).toThrow(/values for more/);
    expect(() => unpackSeries({ ...packed, data: new Float64Array(12) })).toThrow(/accounts for 9/);
    expect(() => unpackSeries({ index: [{ run: 'e/a', metric: 'loss', offset: -1, n: 0 }], data: new Float64Array(0) })).toThrow(/bad index entry/);
    expect(() => unpackSeries({ index: [{ run: 'e/a', metric: 'bogus' as MetricKey, offset: 0, n: 0 }], data: new Float64Array(0) })).toThrow(/bad index entry/);
    expect(() => unpackSeries(null as never)).toThrow(/no index/);
  });

  test('packSeries refuses a chunk whose columns differ in length', () => {
    const bad = { ...chunk('e/a', 'loss', 0, [1, 2], [1, 2], [1, 2]), time: new Float64Array(1) };
    expect(() => packSeries([bad])).toThrow(/differ in length/);
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
