// @vitest-environment jsdom
// A fair comparison's seed mean ± range (webview/shared/seedBands.ts): exact mean, min and max at every
// step of the union of the seeds' steps, checked against a direct computation on seeded random series
// with different lengths, gaps, NaN points and steps where no seed has a value; its decimation keeps the
// band's extremes; the store band is the band of what the chart plots (smoothed, in its x mode).
import { describe, expect, test } from 'vitest';
import { rng } from '../unit/core/helpers';
import { chunk } from '../../src/shared/messages';
import { SeriesStore } from '../../webview/shared/chartModel';
import { decimateBand, type SeedSeries, seedBand, storeBand } from '../../webview/shared/seedBands';
import { formatLr, logTick, sensitivityPlot } from '../../webview/shared/sensitivityChart';


interface Seed {
  step: number[];
  value: number[];
  x: number[];
}

/** K seeds, each its own start, length, gaps (eval-like sparse steps) and NaN points (~12%, some runs of them). */
function randomSeeds(seed: number, k: number): Seed[] {
  const rnd = rng(seed);
  return Array.from({ length: k }, () => {
    const start = Math.floor(rnd() * 5);
    const n = Math.floor(rnd() * 300);
    const step: number[] = [];
    const value: number[] = [];
    const x: number[] = [];
    let s = start;
    let t = 1.7e9 + rnd() * 100;
    let nanRun = 0;
    for (let i = 0; i < n; i++) {
      step.push(s);
      t += 0.1 + rnd();
      x.push(t);
      if (nanRun > 0 || rnd() < 0.08) {
        nanRun = nanRun > 0 ? nanRun - 1 : Math.floor(rnd() * 4);
        value.push(NaN);
      } else value.push(rnd() < 0.02 ? Infinity : (rnd() - 0.3) * 10 * Math.exp(-s / 100));
      s += rnd() < 0.7 ? 1 : 1 + Math.floor(rnd() * 6);
    }
    return { step, value, x };
  });
}

/** The band computed directly: per step of the sorted union, the seeds' finite values in seed order. */
function direct(seeds: Seed[], withX: boolean) {
  const steps = [...new Set(seeds.flatMap((s) => s.step))].sort((a, b) => a - b);
  const out = { step: steps, x: [] as number[], mean: [] as number[], min: [] as number[], max: [] as number[], count: [] as number[] };
  let lastX = -Infinity;
  for (const st of steps) {
    const vs: number[] = [];
    const xs: number[] = [];
    for (const s of seeds) {
      for (let i = 0; i < s.step.length; i++) {
        if (s.step[i] !== st) continue;
        xs.push(s.x[i]!);
        if (Number.isFinite(s.value[i]!)) vs.push(s.value[i]!);
      }
    }
    let sum = 0;
    for (const v of vs) sum += v;
    out.mean.push(vs.length ? sum / vs.length : NaN);
    out.min.push(vs.length ? Math.min(...vs) : NaN);
    out.max.push(vs.length ? Math.max(...vs) : NaN);
    out.count.push(vs.length);
    let xsum = 0;
    for (const v of xs) xsum += v;
    lastX = Math.max(lastX, withX ? xsum / xs.length : st);
    out.x.push(lastX);
  }
  return out;
}

const arr = (a: ArrayLike<number>) => Array.from(a);

describe('seedBand', () => {
  test('exact mean, min, max and count at every step of the union, on seeded random seeds', () => {
    let partial = 0;
    let empty = 0;
    for (let trial = 0; trial < 60; trial++) {
      const seeds = randomSeeds(1000 + trial, 2 + (trial % 5));
      const withX = trial % 2 === 1;
      const band = seedBand(seeds.map((s): SeedSeries => ({ step: s.step, value: s.value, ...(withX ? { x: s.x } : {}) })));
      const want = direct(seeds, withX);
      expect(band.seeds).toBe(seeds.length);
      expect(arr(band.step)).toEqual(want.step);
      expect(arr(band.count)).toEqual(want.count);
      // Same summation order as the direct sum: equal to the last bit (NaN where no seed has a value).
      expect(arr(band.mean)).toEqual(want.mean);
      expect(arr(band.min)).toEqual(want.min);
      expect(arr(band.max)).toEqual(want.max);
      expect(arr(band.x)).toEqual(want.x);
      for (let i = 1; i < band.x.length; i++) expect(band.x[i]!).toBeGreaterThanOrEqual(band.x[i - 1]!);
      partial += want.count.filter((c) => c > 0 && c < seeds.length).length;
      empty += want.count.filter((c) => c === 0).length;
    }
    // The random seeds did exercise steps that only some seeds have, and steps that none has a value at.
    expect(partial).toBeGreaterThan(1000);
    expect(empty).toBeGreaterThan(50);
  });

  test('a small case by hand: different lengths, a NaN, a step only one seed has', () => {
    const band = seedBand([
      { step: [0, 1, 2, 3], value: [1, 2, NaN, 4] },
      { step: [0, 1, 2], value: [3, 4, 5] },
      { step: [0, 2, 5], value: [5, 9, 7] },
    ]);
    expect(arr(band.step)).toEqual([0, 1, 2, 3, 5]);
    expect(arr(band.mean)).toEqual([3, 3, 7, 4, 7]);
    expect(arr(band.min)).toEqual([1, 2, 5, 4, 7]);
    expect(arr(band.max)).toEqual([5, 4, 9, 4, 7]);
    expect(arr(band.count)).toEqual([3, 2, 2, 1, 1]);
    expect(arr(band.x)).toEqual([0, 1, 2, 3, 5]);
  });

  test('uses only `length` points of oversized buffers; no seeds or empty seeds give an empty band', () => {
    const step = new Float64Array([0, 1, 2, 99, 99]);
    const value = new Float64Array([1, 2, 3, 1e9, 1e9]);
    const band = seedBand([{ step, value, length: 3 }, { step: [1], value: [4] }]);
    expect(arr(band.step)).toEqual([0, 1, 2]);
    expect(arr(band.mean)).toEqual([1, 3, 3]);
    expect(seedBand([]).step.length).toBe(0);
    expect(seedBand([{ step: [], value: [] }]).mean.length).toBe(0);
  });

  test('one seed is its own mean, min and max', () => {
    const [s] = randomSeeds(7, 1);
    const band = seedBand([{ step: s!.step, value: s!.value }]);
    expect(arr(band.mean)).toEqual(s!.value.map((v) => (Number.isFinite(v) ? v : NaN)));
    expect(arr(band.min)).toEqual(arr(band.mean));
    expect(arr(band.max)).toEqual(arr(band.mean));
  });
});

describe('storeBand', () => {
  test('aggregates what the chart plots: each seed smoothed, x in the chart mode', () => {
    const store = new SeriesStore();
    const seeds = randomSeeds(42, 3);
    const runs = seeds.map((_, i) => `exp/m-seed${i}`);
    seeds.forEach((s, i) => store.apply([chunk(runs[i]!, 'loss', 0, s.step, s.x, s.value)]));
    for (const smoothing of [0, 0.6]) {
      const band = storeBand(store, runs, 'loss', 'step', smoothing);
      const smoothed = runs.map((r) => {
        const b = store.get(r, 'loss')!;
        return { step: arr(b.step.subarray(0, b.length)), value: arr(smoothing > 0 ? b.smooth(smoothing) : b.value.subarray(0, b.length)), x: [] as number[] };
      });
      const want = direct(smoothed, false);
      expect(arr(band.mean)).toEqual(want.mean);
      expect(arr(band.min)).toEqual(want.min);
      expect(arr(band.max)).toEqual(want.max);
    }
    // Relative time: each seed's x is its time since its own start.
    const rel = storeBand(store, runs, 'loss', 'relative', 0);
    const relSeeds = seeds.map((s, i) => ({ ...s, x: s.x.map((t) => t - store.startTime(runs[i]!)) }));
    expect(arr(rel.x)).toEqual(direct(relSeeds, true).x);
    // A run without the metric counts as a seed with no points.
    expect(storeBand(store, [...runs, 'exp/none'], 'loss', 'step', 0).seeds).toBe(4);
  });
});

describe('decimateBand', () => {
  const big = () => seedBand(randomSeeds(99, 4).map((s) => ({ step: s.step.map((v) => v * 10), value: s.value })));

  test('a range with few steps keeps every step with a finite mean', () => {
    const band = seedBand([
      { step: [0, 1, 2, 3], value: [1, NaN, 3, 4] },
      { step: [0, 1, 2, 3], value: [2, NaN, -1, 5] },
    ]);
    const p = decimateBand(band, 0, 3, 100);
    expect(p.x).toEqual([0, 2, 3]);
    expect(p.mean).toEqual([1.5, 1, 4.5]);
    expect(p.min).toEqual([1, -1, 4]);
    expect(p.count).toEqual([2, 2, 2]);
    // On a log axis a step with a mean <= 0 is skipped and a min <= 0 is a gap in the band.
    const log = decimateBand(band, 0, 3, 100, true);
    expect(log.x).toEqual([0, 2, 3]);
    expect(log.min).toEqual([1, NaN, 4]);
  });

  test('thins a long band to at most 6 points per bucket and keeps its extremes, every point exact', () => {
    const band = big();
    const buckets = 20;
    const xMin = band.x[0]!;
    const xMax = band.x[band.x.length - 1]!;
    const p = decimateBand(band, xMin, xMax, buckets);
    expect(band.step.length).toBeGreaterThan(6 * buckets + 2);
    expect(p.x.length).toBeLessThanOrEqual(6 * buckets + 2);
    const at = new Map(arr(band.x).map((x, i) => [x, i]));
    for (let j = 0; j < p.x.length; j++) {
      const i = at.get(p.x[j]!)!;
      expect(p.mean[j]).toBe(band.mean[i]);
      expect(p.min[j]).toBe(band.min[i]);
      expect(p.max[j]).toBe(band.max[i]);
      expect(p.count[j]).toBe(band.count[i]);
      if (j) expect(p.x[j]!).toBeGreaterThan(p.x[j - 1]!);
    }
    const finite = (a: ArrayLike<number>) => arr(a).filter(Number.isFinite);
    expect(Math.min(...finite(p.min))).toBe(Math.min(...finite(band.min)));
    expect(Math.max(...finite(p.max))).toBe(Math.max(...finite(band.max)));
    expect(Math.min(...p.mean)).toBe(Math.min(...finite(band.mean)));
    expect(Math.max(...p.mean)).toBe(Math.max(...finite(band.mean)));
  });

  test('a zoomed range keeps one neighbour on each side', () => {
    const band = seedBand([{ step: Array.from({ length: 50 }, (_, i) => i * 2), value: Array.from({ length: 50 }, (_, i) => i) }]);
    const p = decimateBand(band, 10, 20, 100);
    expect(p.x).toEqual([8, 10, 12, 14, 16, 18, 20, 22]);
  });
});

describe('sensitivityPlot', () => {
  test('failed trials sit on the bottom of the y range and are named; the range pads the finite values', () => {
    const plot = sensitivityPlot({
      metric: 'loss',
      methods: [
        { method: 'adamw+lora', label: 'LoRA-AdamW', chosen: 1e-3, points: [{ lr: 1e-4, value: 0.5, rung: 0 }, { lr: 1e-3, value: 0.3, rung: 1 }, { lr: 1e-2, value: null, rung: 0 }] },
        { method: 'riemannion+loi', label: 'RiemannLoRA', chosen: null, points: [{ lr: 2e-3, value: 0.4, rung: 0 }] },
      ],
    });
    // 0.3–0.5 padded by 8% (0.284–0.516), widened to the round step 0.05: 0.25–0.55.
    expect(plot.yMin).toBe(0.25);
    expect(plot.yMax).toBe(0.55);
    expect(plot.methods[0]!.ok.map((p) => p.x)).toEqual([1e-4, 1e-3]);
    expect(plot.methods[0]!.failed).toEqual([{ x: 1e-2, y: plot.yMin, rung: 0, failed: true }]);
    expect(plot.failedText).toEqual(['LoRA-AdamW at lr 1e-2']);
    expect(sensitivityPlot({ metric: 'loss', methods: [{ method: 'a', label: 'A', chosen: null, points: [{ lr: 1, value: null, rung: 0 }] }] })).toMatchObject({ yMin: 0, yMax: 1 });
    // The values of the e2e's search: round ends around them.
    const e2e = sensitivityPlot({ metric: 'loss', methods: [{ method: 'a', label: 'A', chosen: null, points: [0.0335, 0.0326, 0.0297, 0.0311].map((value, i) => ({ lr: 10 ** -i, value, rung: 0 })) }] });
    expect(e2e).toMatchObject({ yMin: 0.029, yMax: 0.034 });
  });

  test('log-axis tick labels: powers of ten, and 2 and 5 times them under two decades', () => {
    expect([1e-5, 2e-5, 5e-5, 6.25e-6, 1e-4, 3e-4, 0.00009999999999].map((v) => logTick(v, 3))).toEqual(['1e-5', '', '', '', '1e-4', '', '1e-4']);
    expect([1e-3, 2e-3, 5e-3, 3e-3].map((v) => logTick(v, 1.5))).toEqual(['1e-3', '2e-3', '5e-3', '']);
    expect(formatLr(1.2345e-3)).toBe('1.23e-3');
    expect(logTick(0, 1)).toBe('');
  });
});
