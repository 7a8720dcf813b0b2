// The numbers and the verdict of a fair comparison (docs/comparisons.md), from the runs' curves.
//
// Per method: every search trial's selection numbers, the chosen learning rate, and per replicate (seed)
// the final test-half metric, the final eval loss, the final smoothed train loss (compare.ts), and the
// steps and wall seconds to the target. The target is the baseline's mean final test metric; a replicate
// reaches it at its first evaluation after step 0 that is at least as good (so steps-to-target has the
// resolution of train.eval_interval); a target no better than the baseline's start is no target at all. A replicate that never reaches it is censored: counted as "not reached", never
// dropped and never given a made-up number.
// Intervals (stats.ts): 95% Student t over seeds; differences to the baseline are paired by seed, and the
// speed-up (the baseline's steps to target over the method's) is a paired ratio on the log scale, over
// the seeds where both reached the target.
import { headlineMetric, evalMetricNames, summarizeRun } from './compare';
import type { RunSeries } from './series';
import { excludes, pairedDifference, pairedLogRatio, tInterval, type Interval } from './stats';

export interface Metric {
  name: string;
  higher: boolean;
}

export interface TrialResult {
  rung: number;
  lr: number;
  steps: number;
  run: string;
  state: string;
  /** The final validation-half evaluation: the primary metric and the eval loss (null: none, or not finite). */
  metric: number | null;
  loss: number | null;
}

export interface ReplicateResult {
  seed: number;
  run: string;
  state: string;
  lr: number;
  final_metric: number | null;
  final_eval_loss: number | null;
  final_loss_smoothed: number | null;
  steps_to_target: number | null;
  time_to_target_s: number | null;
  train_wall_s: number | null;
}

export interface MethodSummary {
  final_metric: Interval | null;
  final_loss_smoothed: Interval | null;
  steps_to_target: { reached: number; of: number; interval: Interval | null };
  /** Paired by seed against the baseline (absent for the baseline itself). */
  vs_baseline?: {
    final_metric_diff: Interval | null;
    final_loss_smoothed_diff: Interval | null;
    /** The baseline's steps to target over this method's, over the seeds where both reached it. */
    speedup: Interval | null;
    speedup_pairs: number;
  };
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The primary metric of a comparison: accuracy-like when the evaluations have one, else eval loss. */
export function primaryMetric(series: readonly RunSeries[]): Metric | null {
  const names = new Set<string>();
  for (const s of series) for (const n of evalMetricNames(s.eval)) names.add(n);
  return headlineMetric(names);
}

/** The last evaluation's value of `name` (null when there is none or it is not finite). */
export function finalEval(series: RunSeries, name: string): number | null {
  const last = series.eval[series.eval.length - 1];
  const v = last?.metrics[name];
  return finite(v) ? v : null;
}

/**
 * The trials that go on (or, from the last rung, the one chosen): best primary metric first, a trial
 * without a finite one (failed, diverged) last; ties by the lower eval loss, then the lower rate.
 */
export function rankTrials(trials: readonly TrialResult[], metric: Metric): TrialResult[] {
  const worst = metric.higher ? -Infinity : Infinity;
  const key = (t: TrialResult) => (t.metric === null ? worst : t.metric);
  return [...trials].sort((a, b) => {
    const d = metric.higher ? key(b) - key(a) : key(a) - key(b);
    if (d !== 0 && !Number.isNaN(d)) return d;
    const la = a.loss ?? Infinity;
    const lb = b.loss ?? Infinity;
    if (la !== lb) return la < lb ? -1 : 1;
    return a.lr - b.lr;
  });
}

const reaches = (v: number, target: number, higher: boolean): boolean => (higher ? v >= target : v <= target);

/** First evaluation at least as good as `target`: its step and the run's wall seconds by then. */
export function evalTarget(series: RunSeries, metric: Metric, target: number): { step: number; seconds: number | null } | null {
  for (const e of series.eval) {
    if (e.step === 0) continue; // the start: a run reaches the target by training
    const v = e.metrics[metric.name];
    if (finite(v) && reaches(v, target, metric.higher)) return { step: e.step, seconds: series.wallSecondsAt(e.time) };
  }
  return null;
}

/** One replicate's numbers (steps/time to target filled in once the target is known: withTarget). */
export function replicateResult(series: RunSeries, metric: Metric, r: { seed: number; run: string; state: string; lr: number }): ReplicateResult {
  const summary = summarizeRun(series);
  return {
    ...r,
    final_metric: finalEval(series, metric.name),
    final_eval_loss: finalEval(series, 'loss'),
    final_loss_smoothed: summary.final_loss_smoothed,
    steps_to_target: null,
    time_to_target_s: null,
    train_wall_s: summary.train_wall_s,
  };
}

export function withTarget(result: ReplicateResult, series: RunSeries, metric: Metric, target: number | null): ReplicateResult {
  const hit = target === null ? null : evalTarget(series, metric, target);
  return { ...result, steps_to_target: hit?.step ?? null, time_to_target_s: hit?.seconds ?? null };
}

/** The target: the baseline's mean final test metric (null without one finite value). */
export function targetOf(baseline: readonly ReplicateResult[]): number | null {
  const vals = baseline.map((r) => r.final_metric).filter(finite);
  return vals.length ? vals.reduce((s, v) => s + v, 0) / vals.length : null;
}

/** The mean of the runs' first evaluation (step 0: the start every run is measured from). */
export function startOf(series: readonly RunSeries[], metric: Metric): number | null {
  const vals = series.map((s) => s.eval[0]).filter((e) => e && e.step === 0).map((e) => e!.metrics[metric.name]).filter(finite);
  return vals.length ? vals.reduce((s, v) => s + v, 0) / vals.length : null;
}

/** A target no better than where the baseline started is reached by doing nothing: it measures no speed. */
export const improvesOn = (target: number, start: number | null, metric: Metric): boolean => start === null || (metric.higher ? target > start : target < start);

function pairs(a: readonly ReplicateResult[], b: readonly ReplicateResult[], pick: (r: ReplicateResult) => number | null): [number[], number[]] {
  const bySeed = new Map(b.map((r) => [r.seed, r]));
  const xs: number[] = [];
  const ys: number[] = [];
  for (const r of a) {
    const other = bySeed.get(r.seed);
    const x = pick(r);
    const y = other ? pick(other) : null;
    if (finite(x) && finite(y)) {
      xs.push(x);
      ys.push(y);
    }
  }
  return [xs, ys];
}

const interval = (vals: (number | null)[]): Interval | null => tInterval(vals.filter(finite));

export function summarizeMethod(replicates: readonly ReplicateResult[], baseline: readonly ReplicateResult[] | null): MethodSummary {
  const reached = replicates.map((r) => r.steps_to_target).filter(finite);
  const out: MethodSummary = {
    final_metric: interval(replicates.map((r) => r.final_metric)),
    final_loss_smoothed: interval(replicates.map((r) => r.final_loss_smoothed)),
    steps_to_target: { reached: reached.length, of: replicates.length, interval: tInterval(reached) },
  };
  if (baseline) {
    const [m, mb] = pairs(replicates, baseline, (r) => r.final_metric);
    const [l, lb] = pairs(replicates, baseline, (r) => r.final_loss_smoothed);
    const [s, sb] = pairs(replicates, baseline, (r) => (r.steps_to_target && r.steps_to_target > 0 ? r.steps_to_target : null));
    out.vs_baseline = {
      final_metric_diff: pairedDifference(m, mb),
      final_loss_smoothed_diff: pairedDifference(l, lb),
      speedup: pairedLogRatio(sb, s),
      speedup_pairs: s.length,
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Words

/** Accuracy-like metrics in [0, 1] are stated in points (×100); others in their own unit. */
const isFraction = (metric: Metric): boolean => metric.higher && /acc|exact|match/i.test(metric.name);

const sig = (v: number, digits = 3): string => String(Number(v.toPrecision(digits)));
const signed = (s: string): string => (s.startsWith('-') ? `−${s.slice(1)}` : `+${s}`);

export function formatValue(metric: Metric, v: number): string {
  return isFraction(metric) ? (v * 100).toFixed(1) : sig(v, 4);
}

export function formatDiff(metric: Metric, v: number): string {
  return signed(isFraction(metric) ? (v * 100).toFixed(1) : sig(v, 3));
}

/** "0.482 ± 0.012" or, for accuracy, "48.2 ± 1.2": mean ± the interval's half-width. */
export function formatInterval(metric: Metric, iv: Interval | null, single?: number | null): string {
  if (!iv) return finite(single) ? formatValue(metric, single) : '—';
  return `${formatValue(metric, iv.mean)} ± ${isFraction(metric) ? ((iv.high - iv.mean) * 100).toFixed(1) : sig(iv.high - iv.mean, 2)}`;
}

/** A speed-up in words: the baseline's steps over the method's, so < 1 means the method took more steps. */
const pace = (ratio: number): string => (ratio >= 1 ? `${sig(ratio, 2)}× fewer steps` : `${sig(1 / ratio, 2)}× as many steps`);

/** A metric's name as the tables and sentences state it ("exact_match (points)" for fractions). */
/** A metric's name as words (`token_accuracy` → "token accuracy"). */
export const metricName = (metric: Metric): string => metric.name.replace(/_/g, ' ');
export const metricWords = (metric: Metric): string => (isFraction(metric) ? `${metricName(metric)} (points)` : metricName(metric));

export interface VerdictInput {
  label: string;
  baselineLabel: string;
  metric: Metric;
  summary: MethodSummary;
  baselineSummary: MethodSummary;
  seeds: number;
  protocol: string;
  /** Why there is no target (then no speed-up is stated), e.g. the baseline did not improve on its start. */
  noTarget?: string;
  /** Said after the numbers, e.g. that a chosen learning rate is an end of its searched range. */
  caveat?: string;
}

/**
 * One sentence per method against the baseline: the paired difference of the final test metric and the
 * speed-up to the baseline's final quality, each with its interval; "not significant" whenever an interval
 * covers 0 (1× for the ratio), with the size of difference the seeds could not resolve.
 */
export function verdictSentence(v: VerdictInput): string {
  const vs = v.summary.vs_baseline;
  const parts: string[] = [];
  const d = vs?.final_metric_diff ?? null;
  if (d && d.sd === 0) {
    // Every seed differs by the same amount (a saturated or coarse metric): an interval of width 0 is not evidence.
    parts.push(`final test ${metricWords(v.metric)} ${formatDiff(v.metric, d.mean)} in each of ${d.n} seeds (no spread across seeds: no interval, no significance claimed)`);
  } else if (d) {
    const better = v.metric.higher ? d.mean > 0 : d.mean < 0;
    const s = excludes(d, 0);
    parts.push(
      `final test ${metricWords(v.metric)} ${formatDiff(v.metric, d.mean)} (95% CI ${formatDiff(v.metric, d.low)} to ${formatDiff(v.metric, d.high)}, ${d.n} seeds): ` +
        (s ? `significantly ${better ? 'better' : 'worse'}` : `not significant — ${d.n} seeds cannot resolve a difference smaller than about ±${formatDiff(v.metric, d.high - d.mean).slice(1)}`),
    );
  } else {
    parts.push(`final test ${metricName(v.metric)}: too few completed seeds to compare`);
  }
  const st = v.summary.steps_to_target;
  const bst = v.baselineSummary.steps_to_target;
  const target = `${v.baselineLabel}'s mean final ${metricName(v.metric)}`;
  if (v.noTarget) {
    parts.push(v.noTarget);
  } else if (vs?.speedup && vs.speedup.sd === 0) {
    parts.push(`speed-up to ${target} ${sig(vs.speedup.mean, 2)}× (${pace(vs.speedup.mean)}) in each of the ${vs.speedup.n} seeds where both reached it (no spread: no interval, no significance claimed)`);
  } else if (vs?.speedup) {
    const r = vs.speedup;
    const s = excludes(r, 1);
    parts.push(
      `speed-up to ${target} ${sig(r.mean, 2)}× (${pace(r.mean)}; 95% CI ${sig(r.low, 2)}–${sig(r.high, 2)}×, ${r.n} seeds where both reached it): ` +
        (s ? (r.mean > 1 ? 'significantly sooner' : 'significantly later') : 'not significant'),
    );
  } else {
    parts.push(`reaches ${target} in ${st.reached} of ${st.of} seeds (${v.baselineLabel}: ${bst.reached} of ${bst.of}); too few pairs for a speed-up interval`);
  }
  if (v.caveat) parts.push(v.caveat);
  return `${v.label} vs ${v.baselineLabel}: ${parts.join('; ')} ${v.protocol}`.trimEnd() + '.';
}
