// @vitest-environment jsdom
import { describe, expect, test } from 'vitest';
import { chunk } from '../../src/shared/messages';
import { decimateMinMax, formatDuration, robustRange, SeriesBuffer, SeriesStore } from '../../webview/shared/chartModel';

/** A noisy decreasing loss curve with rare up and down spikes at known steps (deterministic). */
function lossCurve(n: number, seed: number, spikes: number[]): { step: Float64Array; time: Float64Array; value: Float64Array } {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const step = new Float64Array(n);
  const time = new Float64Array(n);
  const value = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    step[i] = i + 1;
    time[i] = 1_700_000_000 + i * 0.05;
    value[i] = 2 * Math.exp(-i / (n / 5)) + 0.1 + 0.02 * rand();
  }
  for (const k of spikes) value[k] = k % 2 ? 50 : -3;
  return { step, time, value };
}

function fill(b: SeriesBuffer, c: { step: Float64Array; time: Float64Array; value: Float64Array }, pieces = 7): void {
  const n = c.step.length;
  const size = Math.ceil(n / pieces);
  for (let off = 0; off < n; off += size) {
    const end = Math.min(n, off + size);
    expect(b.append({ offset: off, step: c.step.subarray(off, end), time: c.time.subarray(off, end), value: c.value.subarray(off, end) })).toBe(true);
  }
}

describe('SeriesBuffer', () => {
  test('appends contiguous chunks, grows, and rejects gaps and overlaps', () => {
    const b = new SeriesBuffer();
    const c = lossCurve(1000, 1, []);
    fill(b, c, 3);
    expect(b.length).toBe(1000);
    expect(Array.from(b.step.subarray(0, b.length))).toEqual(Array.from(c.step));
    const one = { step: new Float64Array([1001]), time: new Float64Array([0]), value: new Float64Array([1]) };
    expect(b.append({ offset: 1002, ...one })).toBe(false); // gap
    expect(b.append({ offset: 999, ...one })).toBe(false); // overlap
    expect(b.length).toBe(1000);
    expect(b.append({ offset: 1000, ...one })).toBe(true);
    expect(b.length).toBe(1001);
  });

  test('x in step, relative and wall modes', () => {
    const b = new SeriesBuffer();
    b.append({ offset: 0, step: new Float64Array([10, 20]), time: new Float64Array([100, 102.5]), value: new Float64Array([1, 2]) });
    expect(b.x('step', 1, 100)).toBe(20);
    expect(b.x('relative', 1, 100)).toBe(2.5);
    expect(b.x('wall', 1, 100)).toBe(102500);
  });

  test('EMA smoothing: weight 0 is raw, constants stay constant (debiased), incremental equals batch, NaN skipped', () => {
    const c = lossCurve(500, 3, []);
    c.value[100] = NaN;
    const a = new SeriesBuffer();
    fill(a, c, 1);
    expect(Array.from(a.smooth(0))).toEqual(Array.from(c.value));
    const inc = new SeriesBuffer();
    const size = 37;
    const parts: number[] = [];
    for (let off = 0; off < 500; off += size) {
      const end = Math.min(500, off + size);
      inc.append({ offset: off, step: c.step.subarray(off, end), time: c.time.subarray(off, end), value: c.value.subarray(off, end) });
      parts.push(inc.smooth(0.9).length);
    }
    const batch = a.smooth(0.9);
    const incremental = inc.smooth(0.9);
    expect(incremental.length).toBe(500);
    for (let i = 0; i < 500; i++) {
      if (i === 100) expect(incremental[i]).toBeNaN();
      else expect(incremental[i]).toBeCloseTo(batch[i]!, 12);
    }
    const k = new SeriesBuffer();
    k.append({ offset: 0, step: Float64Array.from({ length: 50 }, (_, i) => i), time: new Float64Array(50), value: new Float64Array(50).fill(0.7) });
    for (const v of k.smooth(0.95)) expect(v).toBeCloseTo(0.7, 12);
    // Smoothing lowers the spread of a noisy curve.
    const noisy = new SeriesBuffer();
    const alt = Float64Array.from({ length: 400 }, (_, i) => (i % 2 ? 1 : 0));
    noisy.append({ offset: 0, step: Float64Array.from({ length: 400 }, (_, i) => i), time: new Float64Array(400), value: alt });
    const sm = noisy.smooth(0.9).subarray(200);
    expect(Math.max(...sm) - Math.min(...sm)).toBeLessThan(0.2);
  });
});

describe('decimateMinMax', () => {
  test('keeps every point when there are few', () => {
    const b = new SeriesBuffer();
    fill(b, lossCurve(50, 2, []), 1);
    const r = decimateMinMax((i) => b.x('step', i, 0), b.value, b.length, -Infinity, Infinity, 100);
    expect(r.x).toEqual(Array.from(b.step.subarray(0, 50)));
  });

  test('100,000 points → at most 4 per bucket, x sorted, first/last kept, every spike kept', () => {
    const spikes = [1234, 40_001, 77_777, 99_998];
    const c = lossCurve(100_000, 5, spikes);
    const b = new SeriesBuffer();
    fill(b, c);
    const buckets = 700; // a 1400-px-wide chart
    const r = decimateMinMax((i) => b.x('step', i, 0), b.value, b.length, -Infinity, Infinity, buckets);
    expect(r.x.length).toBeLessThanOrEqual(4 * buckets + 2);
    expect(r.x.length).toBeGreaterThan(buckets); // not collapsed to a handful either
    for (let i = 1; i < r.x.length; i++) expect(r.x[i]!).toBeGreaterThan(r.x[i - 1]!);
    expect(r.x[0]).toBe(1);
    expect(r.x[r.x.length - 1]).toBe(100_000);
    for (const k of spikes) {
      const at = r.x.indexOf(k + 1);
      expect(at, `spike at step ${k + 1}`).toBeGreaterThanOrEqual(0);
      expect(r.y[at]).toBe(c.value[k]);
    }
    expect(Math.max(...r.y)).toBe(50);
    expect(Math.min(...r.y)).toBe(-3);
  });

  test('a zoomed range only yields points inside it plus one neighbour per side', () => {
    const b = new SeriesBuffer();
    fill(b, lossCurve(100_000, 9, [50_500]));
    const r = decimateMinMax((i) => b.x('step', i, 0), b.value, b.length, 50_000, 51_000, 100);
    expect(r.x[0]).toBe(49_999);
    expect(r.x[r.x.length - 1]).toBe(51_001);
    expect(r.x.length).toBeLessThanOrEqual(402);
    expect(r.y).toContain(-3); // the dip at step 50_501 survives the zoomed decimation
  });

  test('skips NaN and, on a log axis, non-positive values', () => {
    const b = new SeriesBuffer();
    b.append({ offset: 0, step: new Float64Array([1, 2, 3, 4]), time: new Float64Array(4), value: new Float64Array([1, NaN, 0, -1]) });
    expect(decimateMinMax((i) => b.step[i]!, b.value, 4, -Infinity, Infinity, 10).y).toEqual([1, 0, -1]);
    expect(decimateMinMax((i) => b.step[i]!, b.value, 4, -Infinity, Infinity, 10, true).y).toEqual([1]);
  });

  test('10 runs × 100,000 points: the frame hands chart.js ~2 points per pixel in total per run', () => {
    const store = new SeriesStore();
    for (let r = 0; r < 10; r++) {
      const c = lossCurve(100_000, 100 + r, [10_000 * (r + 1) - 1]);
      for (let off = 0; off < 100_000; off += 25_000) {
        expect(store.apply([chunk(`exp/run-${r}`, 'loss', off, c.step.subarray(off, off + 25_000), c.time.subarray(off, off + 25_000), c.value.subarray(off, off + 25_000))])).toBe(true);
      }
    }
    expect(store.totalPoints()).toBe(1_000_000);
    const width = 1200;
    let drawn = 0;
    for (let r = 0; r < 10; r++) {
      const b = store.get(`exp/run-${r}`, 'loss')!;
      const t0 = store.startTime(`exp/run-${r}`);
      for (const mode of ['step', 'relative', 'wall'] as const) {
        const out = decimateMinMax((i) => b.x(mode, i, t0), b.value, b.length, -Infinity, Infinity, width / 2);
        expect(out.x.length).toBeLessThanOrEqual(2 * width + 2);
        expect(out.y).toContain(50 * ((10_000 * (r + 1) - 1) % 2) + -3 * (1 - ((10_000 * (r + 1) - 1) % 2)));
        if (mode === 'step') drawn += out.x.length;
      }
    }
    expect(drawn).toBeLessThanOrEqual(10 * (2 * width + 2));
  });
});

describe('robustRange (ignore outliers)', () => {
  test('ignores a few huge values, keeps the bulk', () => {
    const v = Float64Array.from({ length: 1000 }, (_, i) => 1 + i / 1000);
    v[10] = 1e6;
    v[20] = -1e6;
    const r = robustRange([v])!;
    expect(r.max).toBeLessThan(3);
    expect(r.min).toBeGreaterThan(0.8);
    const full = robustRange([v], 0)!;
    expect(full.max).toBeGreaterThan(1e5);
  });
  test('log axis: positive values only; no values → undefined', () => {
    expect(robustRange([new Float64Array([-1, 0, NaN])], 0.02, true)).toBeUndefined();
    const r = robustRange([new Float64Array([0.01, 1, 100, -5])], 0, true)!;
    expect(r.min).toBeLessThan(0.01);
    expect(r.min).toBeGreaterThan(0);
    expect(r.max).toBeGreaterThan(100);
  });
});

test('formatDuration', () => {
  expect(formatDuration(4.25)).toBe('4.3 s');
  expect(formatDuration(125)).toBe('2:05');
  expect(formatDuration(3725)).toBe('1:02:05');
});

// ---- the previous implementations (a full scan per frame, a full sort), kept as references: the faster
// ones must return exactly what they returned.
function referenceDecimate(xs: (i: number) => number, ys: ArrayLike<number>, length: number, xMin: number, xMax: number, buckets: number, positiveOnly = false) {
  const out = { x: [] as number[], y: [] as number[] };
  if (length === 0) return out;
  let lo = 0;
  while (lo < length && xs(lo) < xMin) lo++;
  lo = Math.max(0, lo - 1);
  let hi = lo;
  while (hi < length && xs(hi) <= xMax) hi++;
  hi = Math.min(length, hi + 1);
  const ok = (v: number) => Number.isFinite(v) && (!positiveOnly || v > 0);
  const push = (i: number) => {
    out.x.push(xs(i));
    out.y.push(ys[i]!);
  };
  if (hi - lo <= 4 * buckets + 2) {
    for (let i = lo; i < hi; i++) if (ok(ys[i]!)) push(i);
    return out;
  }
  const x0 = xs(lo);
  const span = xs(hi - 1) - x0 || 1;
  const nb = Math.max(1, Math.floor(buckets));
  let i = lo;
  while (i < hi) {
    const b = Math.min(nb - 1, Math.floor(((xs(i) - x0) / span) * nb));
    let first = -1;
    let last = -1;
    let min = -1;
    let max = -1;
    for (; i < hi; i++) {
      const bi = Math.min(nb - 1, Math.floor(((xs(i) - x0) / span) * nb));
      if (bi !== b) break;
      const v = ys[i]!;
      if (!ok(v)) continue;
      if (first < 0) first = i;
      last = i;
      if (min < 0 || v < ys[min]!) min = i;
      if (max < 0 || v > ys[max]!) max = i;
    }
    if (first < 0) continue;
    const idx = [first, min, max, last].sort((a, c) => a - c);
    for (let k = 0; k < idx.length; k++) if (k === 0 || idx[k] !== idx[k - 1]) push(idx[k]!);
  }
  return out;
}

function referenceRobustRange(values: readonly ArrayLike<number>[], q = 0.02, positiveOnly = false) {
  const all: number[] = [];
  for (const arr of values) for (let i = 0; i < arr.length; i++) if (Number.isFinite(arr[i]!) && (!positiveOnly || arr[i]! > 0)) all.push(arr[i]!);
  if (!all.length) return undefined;
  const sorted = Float64Array.from(all).sort();
  const k = sorted.length;
  const at = (p: number) => sorted[Math.min(k - 1, Math.max(0, Math.round(p * (k - 1))))]!;
  const lo = at(q);
  const hi = at(1 - q);
  if (positiveOnly) {
    const pad = Math.pow(hi / lo, 0.05);
    return { min: lo / pad, max: hi * pad };
  }
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  return { min: lo - pad, max: hi + pad };
}

describe('the fast decimation and range equal the full-scan references exactly', () => {
  test('over random series: NaN and non-positive runs, ties, plateaus, zooms, x modes, bucket counts', () => {
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    let cases = 0;
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rand() * (trial % 3 === 0 ? 20_000 : 3_000));
      const b = new SeriesBuffer();
      const step = new Float64Array(n);
      const time = new Float64Array(n);
      const value = new Float64Array(n);
      let x = 0;
      for (let i = 0; i < n; i++) {
        x += rand() < 0.1 ? 0 : 1 + Math.floor(rand() * 3); // repeated steps too
        step[i] = x;
        time[i] = 1.7e9 + x * 0.37;
        const r = rand();
        // quantized values make ties; NaN, ±Infinity, zero and negatives exercise the filters
        value[i] = r < 0.02 ? NaN : r < 0.025 ? Infinity : r < 0.03 ? -1 : r < 0.035 ? 0 : Math.round(rand() * 20) / 4 + (i % 500 === 0 ? 40 : 0);
      }
      b.append({ offset: 0, step, time, value });
      const mode = (['step', 'relative', 'wall'] as const)[trial % 3]!;
      const t0 = time[0]!;
      const xs = (i: number) => b.x(mode, i, t0);
      const first = xs(0);
      const lastX = xs(n - 1);
      const zoomed = trial % 4 === 1;
      const a = zoomed ? first + rand() * (lastX - first) : first;
      const c = zoomed ? a + rand() * (lastX - a) : lastX;
      const buckets = [1, 7, 100, 333, 800][trial % 5]!;
      for (const positiveOnly of [false, true]) {
        for (const ys of [b.value.subarray(0, n), b.smooth(0.6)]) {
          const got = decimateMinMax(xs, ys, n, a, c, buckets, positiveOnly);
          const want = referenceDecimate(xs, ys, n, a, c, buckets, positiveOnly);
          expect(got).toEqual(want);
          expect(robustRange([got.y, ys], 0.02, positiveOnly)).toEqual(referenceRobustRange([got.y, ys], 0.02, positiveOnly));
          cases++;
        }
      }
    }
    expect(cases).toBe(1200);
  });
});
