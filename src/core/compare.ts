// Comparisons: sibling runs of one config with baseline methods, and the numbers that compare them.
//
// Definitions (shown in the report, the comparison panel and the CLI table; SMOOTHING_NOTE):
//   smoothed loss   trailing mean of the train loss over a window of max(1, ceil(SMOOTHING_FRACTION × the
//                   number of logged points))
//   final_loss_smoothed  the smoothed loss at the last logged step (the mean of the last window)
//   best_loss_smoothed   the lowest smoothed loss
//   steps to target the first step whose smoothed loss is <= the baseline's final_loss_smoothed
//   speedup         baseline's steps to target / this run's steps to target (> 1: reaches it sooner)
// The worker's own numbers (its finished event: last_loss, min_loss) are raw, one mini-batch each.
// Smoothing keeps one lucky mini-batch from deciding "reached": the baseline reaches its own smoothed
// final loss at or before its last step by construction.
import { INITS, isRiemannian, takes } from './catalogue';
import { checkConfig } from './config';
import type { RunConfig } from './generated/run-config';
import { readAllEvents } from './events';
import type { RunSummary } from './runStore';
import { RunSeries, type EvalPoint, type TrainPoint } from './series';

type Method = RunConfig['method'];

export interface MethodPreset {
  /** Stable id used in run ids. */
  id: string;
  /** Name in tables and legends. */
  label: string;
  init: Method['init'];
  optimizer: Method['optimizer'];
  /** Learning rate; absent: the optimizer's own default (the worker knows it). */
  lr?: number;
}

/** The main comparison: RiemannLoRA against three LoRA baselines (docs/baselines.md). */
export const DEFAULT_METHODS: readonly MethodPreset[] = [
  { id: 'riemannlora', label: 'RiemannLoRA', init: 'loi', optimizer: 'riemannion' },
  { id: 'lora-adamw', label: 'LoRA-AdamW', init: 'lora', optimizer: 'adamw' },
  { id: 'pissa', label: 'PiSSA', init: 'pissa', optimizer: 'adamw' },
  { id: 'scaled-adamw', label: 'ScaledAdamW', init: 'lora', optimizer: 'scaled-adamw' },
];

/** The method every other run is measured against (its final loss, smoothed, is the target). */
export const DEFAULT_BASELINE = 'lora-adamw';

/**
 * The config of a sibling run: the same task, adapter, budget and schedule, the preset's initialization
 * and optimizer, and optimizer-specific options only where they apply. Without a preset lr the learning
 * rate is left to the optimizer's own default (what makes a fair "out of the box" comparison).
 */
export function siblingConfig(base: RunConfig, preset: MethodPreset): RunConfig {
  const m = base.method;
  const method: Method = { init: preset.init, optimizer: preset.optimizer };
  for (const key of ['weight_decay', 'schedule', 'warmup_steps', 'grad_clip'] as const) {
    if (m[key] !== undefined) (method as Record<string, unknown>)[key] = m[key];
  }
  if (preset.lr !== undefined) method.lr = preset.lr;
  else if (m.lr !== undefined && m.optimizer === preset.optimizer) method.lr = m.lr;
  // Optimizer-specific fields travel only to the optimizers that take them (the catalogue's `params`).
  for (const key of ['momentum', 'betas', 'momentum_store', 'loraplus_ratio'] as const) {
    if (m[key] !== undefined && takes(preset.optimizer, key)) (method as Record<string, unknown>)[key] = m[key];
  }
  if (m.loi !== undefined && preset.init === 'loi') method.loi = m.loi;
  const config = { ...structuredClone(base), method } as RunConfig;
  config.name = `${base.name ?? base.task.kind} · ${preset.label}`.slice(0, 120);
  // DoRA needs a factor optimizer and a zero-product start (the catalogue): a sibling that cannot have it runs without.
  if (config.adapter.dora && (isRiemannian(preset.optimizer) || !INITS.find((i) => i.id === preset.init)?.zero_product)) {
    config.adapter = { ...config.adapter, dora: false };
  }
  return checkConfig(config, `comparison run ${preset.label}`);
}

/** Trailing mean over `window` finite values (non-finite losses are skipped, not averaged in). */
export function smooth(points: readonly TrainPoint[], window: number): { step: number; loss: number }[] {
  const finite = points.filter((p): p is TrainPoint & { loss: number } => p.loss !== null && Number.isFinite(p.loss));
  const out: { step: number; loss: number }[] = [];
  let sum = 0;
  for (let i = 0; i < finite.length; i++) {
    sum += finite[i]!.loss;
    if (i >= window) sum -= finite[i - window]!.loss;
    out.push({ step: finite[i]!.step, loss: sum / Math.min(i + 1, window) });
  }
  return out;
}

/** The smoothing window as a fraction of the logged train points: the one constant every text derives from. */
export const SMOOTHING_FRACTION = 0.1;
/** "10%": the window as the texts state it. */
export const SMOOTHING_PERCENT = `${Math.round(SMOOTHING_FRACTION * 100)}%`;
/** What "smoothed" means, in the words of the report, the comparison panel and the CLI table. */
export const SMOOTHING_NOTE = `trailing mean of the train loss over the last ${SMOOTHING_PERCENT} of the logged steps`;

export const smoothingWindow = (n: number): number => Math.max(1, Math.ceil(n * SMOOTHING_FRACTION));

/** First step whose smoothed loss is <= target; null when never reached. */
export function stepsToTarget(points: readonly TrainPoint[], target: number, window = smoothingWindow(points.length)): number | null {
  for (const p of smooth(points, window)) if (p.loss <= target) return p.step;
  return null;
}

const HIGHER_IS_BETTER = /acc|exact|match|f1|bleu|rouge|score/i;
// token_accuracy first: graded per token where exact match is all-or-nothing per record, so its seed-to-seed
// spread is several times smaller (docs/comparisons.md "The protocol", item 2).
const PREFERRED = ['token_accuracy', 'exact_match', 'accuracy', 'acc', 'loss'];

/** The eval metric names that hold a finite number somewhere in `evals`. */
export function evalMetricNames(evals: readonly EvalPoint[]): Set<string> {
  const names = new Set<string>();
  for (const e of evals) for (const [k, v] of Object.entries(e.metrics)) if (typeof v === 'number' && Number.isFinite(v)) names.add(k);
  return names;
}

/** The headline metric among `names`: accuracy-like first, then loss; whether higher is better. */
export function headlineMetric(names: ReadonlySet<string>): { name: string; higher: boolean } | null {
  if (!names.size) return null;
  const name = PREFERRED.find((n) => names.has(n)) ?? [...names].sort()[0]!;
  return { name, higher: HIGHER_IS_BETTER.test(name) };
}

/** The headline eval metric: accuracy-like first, then loss; best over all evaluations. */
export function bestEval(evals: readonly EvalPoint[]): RunSummary['best_eval'] {
  const headline = headlineMetric(evalMetricNames(evals));
  if (!headline) return null;
  const { name, higher } = headline;
  let best: { name: string; value: number; step: number } | null = null;
  for (const e of evals) {
    const v = e.metrics[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    if (!best || (higher ? v > best.value : v < best.value)) best = { name, value: v, step: e.step };
  }
  return best;
}

/** The end-of-run numbers of one run, from its curves. */
export function summarizeRun(series: RunSeries): RunSummary {
  const w = smoothingWindow(series.train.length);
  const sm = smooth(series.train, w);
  const last = sm[sm.length - 1];
  const lastEval = series.eval[series.eval.length - 1];
  return {
    steps: series.lastStep,
    final_loss_smoothed: last ? last.loss : null,
    best_loss_smoothed: sm.length ? Math.min(...sm.map((p) => p.loss)) : null,
    best_eval: bestEval(series.eval),
    train_wall_s: series.trainWallSeconds,
    peak_memory_bytes: series.peakMemory,
    final_eval: lastEval ? { ...lastEval.metrics } : null,
    lr: series.lr,
  };
}

/**
 * The summary of a run from its events.jsonl: how a summary cached under the old names (runStore.ts
 * isStaleSummary) is recomputed. undefined when the file cannot be read or holds no event.
 */
export function summarizeEventsFile(path: string): RunSummary | undefined {
  let events;
  try {
    events = readAllEvents(path).events;
  } catch {
    return undefined;
  }
  if (!events.length) return undefined;
  const series = new RunSeries();
  series.add(events);
  return summarizeRun(series);
}

export interface ComparisonRow {
  key: string;
  label: string;
  method: string;
  state: string;
  summary: RunSummary;
  /** Steps to reach the baseline's final_loss_smoothed (null: not reached). */
  steps_to_target: number | null;
  /** Baseline's steps to its own final_loss_smoothed / this run's (null when either is missing). */
  speedup: number | null;
  baseline: boolean;
}

export interface Comparison {
  /** The target: the baseline's final_loss_smoothed; null without a baseline with a finite loss. */
  target_loss: number | null;
  baseline: string | null;
  rows: ComparisonRow[];
}

export interface ComparedRun {
  key: string;
  label: string;
  method: string;
  state: string;
  series: RunSeries;
}

/** Summaries of sibling runs measured against the run `baselineKey`. */
export function compareRuns(runs: readonly ComparedRun[], baselineKey: string | null): Comparison {
  const summaries = new Map(runs.map((r) => [r.key, summarizeRun(r.series)]));
  const base = runs.find((r) => r.key === baselineKey);
  const target = base ? (summaries.get(base.key)!.final_loss_smoothed ?? null) : null;
  const baseSteps = base && target !== null ? stepsToTarget(base.series.train, target) : null;
  return {
    target_loss: target,
    baseline: base?.key ?? null,
    rows: runs.map((r) => {
      const s = target === null ? null : stepsToTarget(r.series.train, target);
      return {
        key: r.key,
        label: r.label,
        method: r.method,
        state: r.state,
        summary: summaries.get(r.key)!,
        steps_to_target: s,
        speedup: s !== null && baseSteps !== null && s > 0 ? baseSteps / s : null,
        baseline: r.key === base?.key,
      };
    }),
  };
}

const fmt = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '—' : Number(v.toPrecision(digits)).toString());
const fmtBytes = (b: number | null): string => (b === null ? '—' : b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(2)} GiB` : `${(b / (1 << 20)).toFixed(1)} MiB`);

/** Table columns (header, cell) shared by the terminal table and the HTML report. */
export function tableColumns(c: Comparison): { header: string; cells: string[] }[] {
  const r = c.rows;
  return [
    { header: 'method', cells: r.map((x) => `${x.label}${x.baseline ? ' (baseline)' : ''}`) },
    { header: 'state', cells: r.map((x) => x.state) },
    { header: 'lr', cells: r.map((x) => (x.summary.lr === null || x.summary.lr === undefined ? '—' : String(x.summary.lr))) },
    { header: 'steps', cells: r.map((x) => String(x.summary.steps)) },
    { header: 'final loss (smoothed)', cells: r.map((x) => fmt(x.summary.final_loss_smoothed)) },
    { header: 'best loss (smoothed)', cells: r.map((x) => fmt(x.summary.best_loss_smoothed)) },
    { header: 'best eval', cells: r.map((x) => (x.summary.best_eval ? `${x.summary.best_eval.name} ${fmt(x.summary.best_eval.value)}` : '—')) },
    { header: 'steps to target', cells: r.map((x) => (x.steps_to_target === null ? (c.target_loss === null ? '—' : 'not reached') : String(x.steps_to_target))) },
    { header: 'speedup', cells: r.map((x) => (x.speedup === null ? '—' : `${x.speedup.toFixed(2)}x`)) },
    { header: 'train wall s', cells: r.map((x) => (x.summary.train_wall_s === null ? '—' : x.summary.train_wall_s.toFixed(1))) },
    { header: 'peak memory', cells: r.map((x) => fmtBytes(x.summary.peak_memory_bytes)) },
  ];
}

/** The line under a table with a target: what the target and "smoothed" are. */
export const targetNote = (target: number): string =>
  `Target: the baseline's final loss (smoothed) ${fmt(target)}. Smoothed: ${SMOOTHING_NOTE}. Speedup: the baseline's steps to the target over this run's.`;

/** A plain-text table (monospace), one row per run. */
export function formatTable(c: Comparison): string {
  const cols = tableColumns(c);
  const widths = cols.map((col) => Math.max(col.header.length, ...col.cells.map((s) => s.length)));
  const line = (cells: string[]) => cells.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
  const out = [line(cols.map((col) => col.header)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (let i = 0; i < c.rows.length; i++) out.push(line(cols.map((col) => col.cells[i]!)));
  if (c.target_loss !== null) out.push('', targetNote(c.target_loss));
  return out.join('\n');
}
