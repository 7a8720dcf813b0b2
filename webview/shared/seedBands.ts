// A fair comparison's seeds of one method as one curve: at every step the mean over the seeds, with the
// min–max range as a band (webview/compare/main.ts, "Seeds: mean ± range"). Free of chart.js and of the
// DOM, so it is tested on its own (test/webview/seedBands.test.ts).
//
// Which steps: the UNION of the seeds' steps, each with its count of seeds. At a step, the mean, min and
// max are over the seeds that have a finite value there: a seed that has not got that far yet (a live
// comparison), that ended earlier, or whose value is NaN (a NaN/inf loss) does not count there, and `count`
// says how many did. The chart draws the mean dashed where fewer than all the method's seeds count, so a
// mean of fewer seeds is never taken for the mean of all of them. A step where no seed has a finite value
// stays, with NaN (the chart skips it). The intersection would hide a live comparison's curves until its
// slowest seed reached each step, and a diverged seed would end its method's curve.
import type { MetricKey } from '../../src/shared/messages';
import type { SeriesStore, XMode } from './chartModel';

/** One seed's points: steps non-decreasing; NaN in `value` is no value. */
export interface SeedSeries {
  step: ArrayLike<number>;
  value: ArrayLike<number>;
  /** x of each point when the chart's x axis is not the step (relative or wall time); default: the step. */
  x?: ArrayLike<number>;
  /** Points used (a buffer's arrays may be longer than its length); default step.length. */
  length?: number;
}

export interface SeedBand {
  /** The union of the seeds' steps, ascending. */
  step: Float64Array;
  /**
   * x of each step: the step itself, or (seeds with `x`) the mean x of the seeds' points at that step, made
   * non-decreasing (a running maximum: which seeds have a step changes, and a line needs ordered x).
   */
  x: Float64Array;
  /** Mean over the seeds with a finite value at the step (summed in seed order); NaN where none has one. */
  mean: Float64Array;
  min: Float64Array;
  max: Float64Array;
  /** How many seeds have a finite value at the step. */
  count: Uint32Array;
  /** Seeds aggregated (the input's length). */
  seeds: number;
}

/** The mean and min–max of the seeds at every step of the union of their steps (see the file comment). */
export function seedBand(seeds: readonly SeedSeries[]): SeedBand {
  const k = seeds.length;
  const len = seeds.map((s) => Math.min(s.length ?? s.step.length, s.step.length, s.value.length));
  let total = 0;
  for (const n of len) total += n;
  const step = new Float64Array(total);
  const x = new Float64Array(total);
  const mean = new Float64Array(total);
  const min = new Float64Array(total);
  const max = new Float64Array(total);
  const count = new Uint32Array(total);
  const at = new Array<number>(k).fill(0);
  let out = 0;
  let lastX = -Infinity;
  for (;;) {
    // The next step: the smallest head among the seeds (k is a handful: a linear scan beats a heap).
    let s = Infinity;
    for (let j = 0; j < k; j++) if (at[j]! < len[j]!) s = Math.min(s, seeds[j]!.step[at[j]!]!);
    if (s === Infinity) break;
    let sum = 0;
    let n = 0;
    let lo = Infinity;
    let hi = -Infinity;
    let xs = 0;
    let xn = 0;
    for (let j = 0; j < k; j++) {
      const seed = seeds[j]!;
      // Every point of this seed at this step (a seed's steps are normally strictly increasing).
      while (at[j]! < len[j]! && seed.step[at[j]!] === s) {
        const i = at[j]!;
        const v = seed.value[i]!;
        if (Number.isFinite(v)) {
          sum += v;
          n++;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        if (seed.x) {
          xs += seed.x[i]!;
          xn++;
        }
        at[j] = i + 1;
      }
    }
    step[out] = s;
    const xv = xn ? xs / xn : s;
    lastX = Math.max(lastX, xv);
    x[out] = lastX;
    mean[out] = n ? sum / n : NaN;
    min[out] = n ? lo : NaN;
    max[out] = n ? hi : NaN;
    count[out] = n;
    out++;
  }
  return { step: step.slice(0, out), x: x.slice(0, out), mean: mean.slice(0, out), min: min.slice(0, out), max: max.slice(0, out), count: count.slice(0, out), seeds: k };
}

/** The band of some runs' `metric` from the chart's store, as the chart plots it: smoothed (weight > 0) and in its x mode. */
export function storeBand(store: SeriesStore, runs: readonly string[], metric: MetricKey, xMode: XMode, smoothing: number): SeedBand {
  const seeds: SeedSeries[] = [];
  for (const run of runs) {
    const b = store.get(run, metric);
    if (!b?.length) {
      seeds.push({ step: [], value: [] });
      continue;
    }
    const t0 = store.startTime(run);
    const value = smoothing > 0 ? b.smooth(smoothing) : b.value;
    const x = xMode === 'step' ? undefined : Float64Array.from({ length: b.length }, (_, i) => b.x(xMode, i, t0));
    seeds.push({ step: b.step, value, x, length: b.length });
  }
  return seedBand(seeds);
}

/** A band thinned for drawing: mean, min and max share their x, so the band's two edges and the line line up. */
export interface BandPoints {
  x: number[];
  mean: number[];
  min: number[];
  max: number[];
  count: number[];
}

/**
 * Min-max decimation of a band, like chartModel's decimateMinMax: the steps with x in [xMin, xMax] (plus one
 * neighbour each side) in `buckets` equal-width x buckets, per bucket the first and last step and those
 * with the lowest min, the highest max, the lowest and the highest mean, in x order, each once — so the
 * band's extremes survive. A step whose mean is not finite (or, `positiveOnly`, not > 0: a log axis) is
 * skipped; on a log axis a min that is not > 0 becomes NaN (the band has a gap there, the line has none).
 * At most 6 × buckets + 2 steps; when the range holds fewer than that, all of them.
 */
export function decimateBand(b: SeedBand, xMin: number, xMax: number, buckets: number, positiveOnly = false): BandPoints {
  const out: BandPoints = { x: [], mean: [], min: [], max: [], count: [] };
  const n = b.step.length;
  if (n === 0) return out;
  let lo = 0;
  while (lo < n && b.x[lo]! < xMin) lo++;
  lo = Math.max(0, lo - 1);
  let hi = lo;
  while (hi < n && b.x[hi]! <= xMax) hi++;
  hi = Math.min(n, hi + 1);
  const ok = (v: number) => Number.isFinite(v) && (!positiveOnly || v > 0);
  const push = (i: number) => {
    out.x.push(b.x[i]!);
    out.mean.push(b.mean[i]!);
    out.min.push(positiveOnly && !(b.min[i]! > 0) ? NaN : b.min[i]!);
    out.max.push(b.max[i]!);
    out.count.push(b.count[i]!);
  };
  if (hi - lo <= 6 * buckets + 2) {
    for (let i = lo; i < hi; i++) if (ok(b.mean[i]!)) push(i);
    return out;
  }
  const x0 = b.x[lo]!;
  const span = b.x[hi - 1]! - x0 || 1;
  const nb = Math.max(1, Math.floor(buckets));
  const bucket = (i: number) => Math.min(nb - 1, Math.floor(((b.x[i]! - x0) / span) * nb));
  let i = lo;
  while (i < hi) {
    const which = bucket(i);
    let first = -1;
    let last = -1;
    let lowMin = -1;
    let highMax = -1;
    let lowMean = -1;
    let highMean = -1;
    for (; i < hi && bucket(i) === which; i++) {
      const m = b.mean[i]!;
      if (!ok(m)) continue;
      if (first < 0) first = lowMin = highMax = lowMean = highMean = i;
      last = i;
      if (b.min[i]! < b.min[lowMin]!) lowMin = i;
      if (b.max[i]! > b.max[highMax]!) highMax = i;
      if (m < b.mean[lowMean]!) lowMean = i;
      if (m > b.mean[highMean]!) highMean = i;
    }
    if (first < 0) continue;
    const idx = [first, lowMin, highMax, lowMean, highMean, last].sort((p, q) => p - q);
    for (let k = 0; k < idx.length; k++) if (k === 0 || idx[k] !== idx[k - 1]) push(idx[k]!);
  }
  return out;
}
