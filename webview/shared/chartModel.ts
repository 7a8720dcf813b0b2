// The charts' data model, free of chart.js and of the DOM so it can be tested on its own:
// raw buffers per (run, metric), x modes, smoothing, outlier-robust y range and min-max decimation.
//
// Why our own decimation: chart.js' decimation plugin drops points appended to a live dataset
// (chartjs/Chart.js#11929). We keep every raw point in growable Float64Arrays and, per frame, hand chart.js
// at most ~2 points per horizontal pixel of the visible x-range: per pixel bucket the first, the minimum,
// the maximum and the last point, in x order, so a one-step loss spike is never smoothed away.
import type { MetricKey, SeriesChunk } from '../../src/shared/messages';

export type XMode = 'step' | 'relative' | 'wall';

/** A growable column store of one metric of one run. */
export class SeriesBuffer {
  step = new Float64Array(256);
  time = new Float64Array(256);
  value = new Float64Array(256);
  length = 0;
  /** Cached EMA of `value` (valid for `smoothLength` points with weight `smoothWeight`). */
  private smoothed = new Float64Array(0);
  private smoothLength = 0;
  private smoothWeight = -1;
  private emaState = { last: 0, debias: 0, count: 0 };

  /** Appends a chunk if it continues this buffer; returns false on a gap or overlap (caller resyncs). */
  append(c: Pick<SeriesChunk, 'offset' | 'step' | 'time' | 'value'>): boolean {
    if (c.offset !== this.length) return false;
    const n = c.step.length;
    this.reserve(this.length + n);
    this.step.set(c.step, this.length);
    this.time.set(c.time, this.length);
    this.value.set(c.value, this.length);
    this.length += n;
    return true;
  }

  private reserve(n: number): void {
    if (n <= this.step.length) return;
    let cap = this.step.length;
    while (cap < n) cap *= 2;
    const grow = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a.subarray(0, this.length));
      return b;
    };
    this.step = grow(this.step);
    this.time = grow(this.time);
    this.value = grow(this.value);
  }

  /** x of point i in a given mode; `t0` is the run's start (relative mode). Wall time is in ms (Date). */
  x(mode: XMode, i: number, t0: number): number {
    if (mode === 'step') return this.step[i]!;
    if (mode === 'relative') return this.time[i]! - t0;
    return this.time[i]! * 1000;
  }

  /**
   * Exponential moving average with TensorBoard's debiasing (weight 0: the raw values). NaN/inf points stay
   * NaN and do not disturb the average. Incremental: appended points extend the cache.
   */
  smooth(weight: number): Float64Array {
    if (weight !== this.smoothWeight) {
      this.smoothWeight = weight;
      this.smoothLength = 0;
      this.emaState = { last: 0, debias: 0, count: 0 };
    }
    if (this.smoothed.length < this.step.length) {
      const b = new Float64Array(this.step.length);
      b.set(this.smoothed.subarray(0, this.smoothLength));
      this.smoothed = b;
    }
    const s = this.emaState;
    for (let i = this.smoothLength; i < this.length; i++) {
      const v = this.value[i]!;
      if (!Number.isFinite(v)) {
        this.smoothed[i] = NaN;
        continue;
      }
      if (weight <= 0) {
        this.smoothed[i] = v;
        continue;
      }
      s.last = s.last * weight + (1 - weight) * v;
      s.count += 1;
      s.debias = 1 - Math.pow(weight, s.count);
      this.smoothed[i] = s.last / s.debias;
    }
    this.smoothLength = this.length;
    return this.smoothed.subarray(0, this.length);
  }
}

/** All buffers of one view, keyed by run and metric. */
export class SeriesStore {
  private buffers = new Map<string, SeriesBuffer>();
  private key = (run: string, metric: MetricKey) => `${run}\u0000${metric}`;

  get(run: string, metric: MetricKey): SeriesBuffer | undefined {
    return this.buffers.get(this.key(run, metric));
  }

  /** Applies chunks; returns false if any did not continue its buffer (a resync is needed). */
  apply(chunks: readonly SeriesChunk[]): boolean {
    let ok = true;
    for (const c of chunks) {
      const k = this.key(c.run, c.metric);
      let b = this.buffers.get(k);
      if (!b) {
        b = new SeriesBuffer();
        this.buffers.set(k, b);
      }
      if (!b.append(c)) ok = false;
    }
    return ok;
  }

  clear(): void {
    this.buffers.clear();
  }

  /** Metrics that have at least one point, in first-seen order. */
  metrics(): MetricKey[] {
    const out = new Set<MetricKey>();
    for (const [k, b] of this.buffers) if (b.length) out.add(k.split('\u0000')[1] as MetricKey);
    return [...out];
  }

  /** Earliest wall time of a run over all its metrics (the origin of relative time). */
  startTime(run: string): number {
    let t = Infinity;
    for (const [k, b] of this.buffers) if (k.startsWith(`${run}\u0000`) && b.length) t = Math.min(t, b.time[0]!);
    return Number.isFinite(t) ? t : 0;
  }

  totalPoints(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.length;
    return n;
  }
}

export interface XYPoints {
  x: number[];
  y: number[];
}

/** First index i in [lo, hi) with xs(i) >= v (xs non-decreasing). */
function lowerBound(xs: (i: number) => number, lo: number, hi: number, v: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs(mid) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index i in [lo, hi) with xs(i) > v (xs non-decreasing). */
function upperBound(xs: (i: number) => number, lo: number, hi: number, v: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs(mid) <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Min-max decimation of the points with x in [xMin, xMax] (plus one neighbour on each side, so lines run
 * to the edges) into `buckets` equal-width x buckets: per bucket the first, min, max and last point in x
 * order, duplicates removed. Non-finite y (NaN loss, or <= 0 on a log axis when `positiveOnly`) is skipped.
 * Output size is at most 4 × buckets + 2; when the range has fewer points than that, all are returned.
 *
 * Cost: a point's bucket, floor((x − x0) / span · buckets), never decreases along the series, so each
 * bucket's index range is found by a galloping search on x (O(log width) calls of `xs` per bucket) and
 * only its y values are scanned, in a tight loop; ties keep the first index, as a scan in x order does.
 * Every frame of a live chart re-decimates every line, so this loop is most of a frame.
 */
export function decimateMinMax(
  xs: (i: number) => number,
  ys: ArrayLike<number>,
  length: number,
  xMin: number,
  xMax: number,
  buckets: number,
  positiveOnly = false,
): XYPoints {
  const out: XYPoints = { x: [], y: [] };
  if (length === 0) return out;
  const lo = Math.max(0, lowerBound(xs, 0, length, xMin) - 1);
  const hi = Math.min(length, upperBound(xs, lo, length, xMax) + 1);
  const push = (i: number) => {
    out.x.push(xs(i));
    out.y.push(ys[i]!);
  };
  if (hi - lo <= 4 * buckets + 2) {
    for (let i = lo; i < hi; i++) {
      const v = ys[i]!;
      if (Number.isFinite(v) && (!positiveOnly || v > 0)) push(i);
    }
    return out;
  }
  const x0 = xs(lo);
  const span = xs(hi - 1) - x0 || 1;
  const nb = Math.max(1, Math.floor(buckets));
  const bucketOf = (i: number) => Math.min(nb - 1, Math.floor(((xs(i) - x0) / span) * nb));
  const floor = positiveOnly ? 0 : -Infinity;
  let i = lo;
  while (i < hi) {
    const b = bucketOf(i);
    // end = the first index after i in a later bucket: gallop, then bisect
    let step = 1;
    let inside = i;
    while (inside + step < hi && bucketOf(inside + step) === b) {
      inside += step;
      step *= 2;
    }
    let a = inside + 1;
    let z = Math.min(hi, inside + step);
    while (a < z) {
      const mid = (a + z) >>> 1;
      if (bucketOf(mid) === b) a = mid + 1;
      else z = mid;
    }
    const end = a;
    const start = i;
    i = end;
    // Valid: finite and, on a log axis, positive. The first and the last valid point bound the scan; inside
    // it a value is only tested for validity when it would become the new min or max (NaN fails both).
    let first = start;
    while (first < end && !(ys[first]! > floor && ys[first]! < Infinity)) first++;
    if (first === end) continue;
    let last = end - 1;
    while (!(ys[last]! > floor && ys[last]! < Infinity)) last--;
    let min = first;
    let max = first;
    let minV = ys[first]!;
    let maxV = minV;
    for (let k = first + 1; k < last; k++) {
      const v = ys[k]!;
      if (v < minV) {
        if (v > floor) {
          min = k;
          minV = v;
        }
      } else if (v > maxV && v < Infinity) {
        max = k;
        maxV = v;
      }
    }
    if (last > first) {
      const v = ys[last]!;
      if (v < minV) min = last;
      else if (v > maxV) max = last;
    }
    // Emit in index (x) order, each index once: first <= min, max <= last, so only min and max may swap.
    push(first);
    const [p, q] = min <= max ? [min, max] : [max, min];
    if (p !== first) push(p);
    if (q !== p && q !== first) push(q);
    if (last !== q && last !== first) push(last);
  }
  return out;
}

/** The k-th smallest of a[lo..hi) (k in [lo, hi)), moving it to a[k]: Hoare quickselect, median-of-three. */
function selectInPlace(a: Float64Array, lo: number, hi: number, k: number): number {
  let l = lo;
  let r = hi - 1;
  while (l < r) {
    const m = (l + r) >>> 1;
    const x = a[l]!;
    const y = a[m]!;
    const z = a[r]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = l;
    let j = r;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) r = j;
    else if (k >= i) l = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * The y range that ignores outliers: the [q, 1 - q] quantiles of the finite values (positive only for a
 * log axis), widened by 5% of the span. Undefined when there are no values. The two order statistics come
 * from quickselect (linear time) rather than a full sort: this runs every frame over every drawn point.
 */
export function robustRange(values: readonly ArrayLike<number>[], q = 0.02, positiveOnly = false): { min: number; max: number } | undefined {
  let n = 0;
  for (const v of values) n += v.length;
  const all = new Float64Array(n);
  let k = 0;
  for (const arr of values) {
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i]!;
      if (Number.isFinite(v) && (!positiveOnly || v > 0)) all[k++] = v;
    }
  }
  if (k === 0) return undefined;
  const rank = (p: number) => Math.min(k - 1, Math.max(0, Math.round(p * (k - 1))));
  const iLo = rank(q);
  const iHi = rank(1 - q);
  const first = selectInPlace(all, 0, k, Math.min(iLo, iHi));
  // everything from that index on is >= it, so the second statistic is selected in the rest
  const second = selectInPlace(all, Math.min(iLo, iHi), k, Math.max(iLo, iHi));
  const [lo, hi] = iLo <= iHi ? [first, second] : [second, first];
  if (positiveOnly) {
    const pad = Math.pow(hi / lo, 0.05);
    return { min: lo / pad, max: hi * pad };
  }
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  return { min: lo - pad, max: hi + pad };
}

/** Seconds as "1:02:03" / "2:03" / "4.5 s" (relative-time axis ticks). */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '';
  const sign = s < 0 ? '-' : '';
  s = Math.abs(s);
  if (s < 60) return `${sign}${Number(s.toFixed(s < 10 ? 1 : 0))} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const two = (v: number) => String(v).padStart(2, '0');
  return h ? `${sign}${h}:${two(m)}:${two(sec)}` : `${sign}${m}:${two(sec)}`;
}

/** Wall time (ms since the epoch) as local "HH:MM:SS". */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const two = (v: number) => String(v).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Compact number for ticks and tables: 3 significant digits, k/M/G for large magnitudes. */
export function formatNumber(v: number, bytes = false): string {
  if (!Number.isFinite(v)) return '—';
  if (bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${Number(v.toPrecision(3))} ${units[u]}`;
  }
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** A palette that stays distinguishable on dark, light and high-contrast backgrounds (Okabe–Ito + extras). */
export const RUN_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#9467BD', '#8C564B', '#7F7F7F'];

/** Colour of the i-th run: the palette, then golden-angle hues. */
export function runColor(i: number): string {
  if (i < RUN_COLORS.length) return RUN_COLORS[i]!;
  return `hsl(${Math.round((i * 137.508) % 360)}, 65%, 55%)`;
}

/** The colour with an alpha (hex #rrggbb or hsl(...)), for the faded raw line. */
export function withAlpha(color: string, alpha: number): string {
  if (color.startsWith('#') && color.length === 7) {
    const a = Math.round(alpha * 255).toString(16).padStart(2, '0');
    return `${color}${a}`;
  }
  if (color.startsWith('hsl(')) return color.replace('hsl(', 'hsla(').replace(')', `, ${alpha})`);
  return color;
}
