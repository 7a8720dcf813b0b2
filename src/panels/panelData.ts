// Host-side translation from the engine's points (TrainPoint / EvalPoint) to the webview contract's
// series chunks, with per-(run, metric) offsets so deltas continue snapshots exactly. No `vscode` import:
// tested on its own (test/webview/panelData.test.ts).
import type { RunConfig } from '../core/config';
import type { ComparisonRecord } from '../core/fairComparison';
import type { RunInfo } from '../core/runStore';
import type { EvalPoint, TrainPoint } from '../core/series';
import type { WorkerEvent } from '../core/events';
import { chunk, type MetricKey, type RunView, type SensitivityView, type SeriesChunk } from '../shared/messages';

type Cols = { step: number[]; time: number[]; value: number[] };
const TRAIN_FIELDS: [MetricKey, (p: TrainPoint) => number | null | undefined][] = [
  ['loss', (p) => p.loss],
  ['lr', (p) => p.lr],
  ['grad_norm', (p) => p.grad_norm],
  ['tokens_per_s', (p) => p.tokens_per_s],
  ['memory_bytes', (p) => p.memory_bytes],
];

/** Splits points into per-metric columns. A field that is absent is skipped; null (NaN/inf) stays as NaN for loss. */
export function toColumns(train: readonly TrainPoint[], evals: readonly EvalPoint[]): Map<MetricKey, Cols> {
  const out = new Map<MetricKey, Cols>();
  const col = (m: MetricKey) => {
    let c = out.get(m);
    if (!c) out.set(m, (c = { step: [], time: [], value: [] }));
    return c;
  };
  for (const [metric, get] of TRAIN_FIELDS) {
    for (const p of train) {
      const v = get(p);
      if (v === undefined || (v === null && metric !== 'loss')) continue;
      const c = col(metric);
      c.step.push(p.step);
      c.time.push(p.time);
      c.value.push(v === null ? NaN : v);
    }
  }
  for (const p of evals) {
    for (const [name, v] of Object.entries(p.metrics)) {
      const c = col(name === 'loss' ? 'eval_loss' : `eval:${name}`);
      c.step.push(p.step);
      c.time.push(p.time);
      c.value.push(v === null ? NaN : v);
    }
  }
  return out;
}

/**
 * The points of one run already sent to one webview, per metric. `snapshot` starts over; `delta` turns
 * appended points into chunks that continue exactly where the last ones ended. The engine re-delivers an
 * eval point when a second event adds metrics to the same step: per metric, points at or before the last
 * step sent are skipped, so nothing is doubled (a run that resumes from an earlier step comes with the
 * engine's `reset`, and the host sends a new snapshot).
 */
export class SentSeries {
  private sent = new Map<string, { count: number; lastStep: number }>();
  private key = (run: string, metric: MetricKey) => `${run}\u0000${metric}`;

  snapshot(run: string, train: readonly TrainPoint[], evals: readonly EvalPoint[]): SeriesChunk[] {
    this.forget(run);
    return this.delta(run, train, evals);
  }

  delta(run: string, train: readonly TrainPoint[], evals: readonly EvalPoint[]): SeriesChunk[] {
    const out: SeriesChunk[] = [];
    for (const [metric, c] of toColumns(train, evals)) {
      const k = this.key(run, metric);
      const prev = this.sent.get(k) ?? { count: 0, lastStep: -Infinity };
      let from = 0;
      while (from < c.step.length && c.step[from]! <= prev.lastStep) from++;
      if (from === c.step.length) continue;
      out.push(chunk(run, metric, prev.count, c.step.slice(from), c.time.slice(from), c.value.slice(from)));
      this.sent.set(k, { count: prev.count + c.step.length - from, lastStep: c.step[c.step.length - 1]! });
    }
    return out;
  }

  forget(run: string): void {
    for (const k of [...this.sent.keys()]) if (k.startsWith(`${run}\u0000`)) this.sent.delete(k);
  }
}

const fmt = (v: unknown): string => (Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** "name: value" lines: what distinguishes runs (method, rank, lr, task, budget). */
export function configSummary(config: RunConfig | undefined): string[] {
  if (!config) return [];
  const m = config.method;
  const lines = [
    `task: ${config.task.kind}${config.task.model ? ` (${config.task.model})` : ''}`,
    `optimizer: ${m.optimizer}`,
    `init: ${m.init}`,
    `rank: ${config.adapter.rank}`,
  ];
  if (m.lr !== undefined) lines.push(`lr: ${m.lr}`);
  if (m.schedule) lines.push(`schedule: ${m.schedule}${m.warmup_steps ? ` (warmup ${m.warmup_steps})` : ''}`);
  if (config.adapter.target_modules !== undefined) lines.push(`target modules: ${fmt(config.adapter.target_modules)}`);
  lines.push(`steps: ${config.train.steps}`);
  if (config.train.batch_size !== undefined) lines.push(`batch size: ${config.train.batch_size}`);
  if (config.train.seed !== undefined) lines.push(`seed: ${config.train.seed}`);
  if (config.train.device !== undefined) lines.push(`device: ${config.train.device}`);
  return lines;
}

/** The webview's view of a run. */
export function runView(info: RunInfo, config: RunConfig | undefined, extra: { events?: readonly WorkerEvent[]; logTail?: string } = {}): RunView {
  const started = extra.events?.filter((e) => e.type === 'started').pop();
  const lastError = extra.events?.filter((e) => e.type === 'error').pop();
  const failed = info.state === 'failed' || info.state === 'diverged';
  // A damaged run's metadata cannot be trusted: the reason is its error, whatever the events said.
  const error = info.damaged
    ? { kind: 'damaged', message: info.damaged, hint: 'repair or delete its status.json / run.json, or delete the run; a damaged run is never started or resumed' }
    : lastError?.type === 'error'
      ? { kind: lastError.kind, message: lastError.message, hint: lastError.hint }
      : info.last_error
        ? { ...info.last_error }
        : undefined;
  return {
    key: info.key,
    experiment: info.experiment,
    label: info.label,
    method: info.method,
    state: info.state,
    step: info.summary?.steps ?? info.step,
    totalSteps: info.steps,
    startedAt: info.started_at,
    endedAt: info.ended_at,
    device: started?.type === 'started' ? started.device : undefined,
    config: configSummary(config),
    finalLossSmoothed: info.summary?.final_loss_smoothed ?? null,
    bestLossSmoothed: info.summary?.best_loss_smoothed ?? null,
    trainWallSeconds: info.summary?.train_wall_s ?? null,
    peakMemory: info.summary?.peak_memory_bytes ?? null,
    error: failed || info.damaged ? error : undefined,
    logTail: failed ? extra.logTail : undefined,
  };
}

/**
 * A fair comparison's learning-rate sensitivity for the tab (VerdictView.sensitivity), from its record: per
 * method every searched rate once, with the final validation value of its trial at the longest rung that
 * rate reached (the rates successive halving kept ran longer), sorted by rate; the chosen rate; the
 * method as "optimizer+init" like RunView.method. The same points as the report's chart (report.ts).
 */
export function sensitivityView(record: Pick<ComparisonRecord, 'metric' | 'methods'>): SensitivityView {
  return {
    metric: record.metric?.name ?? 'selection metric',
    methods: record.methods.map((m) => {
      const longest = new Map<number, ComparisonRecord['methods'][number]['trials'][number]>();
      for (const t of m.trials) {
        const seen = longest.get(t.lr);
        if (!seen || t.rung >= seen.rung) longest.set(t.lr, t);
      }
      return {
        method: `${m.optimizer}+${m.init}`,
        label: m.label,
        chosen: m.chosen_lr,
        points: [...longest.values()].sort((a, b) => a.lr - b.lr).map((t) => ({ lr: t.lr, value: typeof t.metric === 'number' && Number.isFinite(t.metric) ? t.metric : null, rung: t.rung })),
      };
    }),
  };
}
