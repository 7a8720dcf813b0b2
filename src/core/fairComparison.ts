// Runs a fair comparison (protocol.ts) with the engine and writes its record, comparison.json
// (schema/comparison.schema.json), in the experiment's folder: at the start (the plan), after every
// search rung and every method's replicates, and at the end with the summary and the verdict. Every number
// in it is recomputed from the run folders (their events), so the file can always be checked against them.
//
// Each method's search and replicates form one chain (a rung waits for the rung before it); the chains of
// all methods run side by side and the engine's queue decides how many workers run at once.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MethodPreset } from './compare';
import type { RunConfig } from './config';
import { ReadOnlyError, type Engine, type MetricsDelta } from './engine';
import { planCost, planFair, remainingSeconds, replicateConfig, replicateRunId, searchCost, trialConfig, trialRunId, type FairPlan, type FairSettings, type PlannedMethod } from './protocol';
import { runKey, writeJsonAtomic, type ExperimentInfo, type RunInfo } from './runStore';
import { formatErrors, validate } from './schemas';
import {
  improvesOn,
  primaryMetric,
  metricName,
  rankTrials,
  startOf,
  replicateResult,
  summarizeMethod,
  targetOf,
  verdictSentence,
  withTarget,
  finalEval,
  type Metric,
  type MethodSummary,
  type ReplicateResult,
  type TrialResult,
} from './verdict';

export const COMPARISON_FILE = 'comparison.json';

export interface ComparisonMethodRecord {
  id: string;
  label: string;
  init: string;
  optimizer: string;
  lr_range: [number, number];
  trials: TrialResult[];
  chosen_lr: number | null;
  replicates: ReplicateResult[];
  summary: MethodSummary | null;
}

/** comparison.json (schema/comparison.schema.json). */
export interface ComparisonRecord {
  version: 1;
  state: 'running' | 'complete' | 'stopped' | 'failed';
  protocol: {
    kind: 'fair';
    trials: number;
    seeds: number;
    eta: number;
    steps: number;
    rungs: { index: number; trials: number; steps: number }[];
    search_seed: number;
    replicate_seeds: number[];
    selection: string;
    report: string;
    interval: string;
    search_cost_full_runs: number;
  };
  budget: { runs: number; full_runs: number; steps: number };
  baseline: string;
  metric: Metric | null;
  target: number | null;
  methods: ComparisonMethodRecord[];
  verdict: string[];
  /** Why the comparison itself failed (not one of its runs: their states say that). */
  error?: string;
  /**
   * While it runs: the seconds left (protocol.ts remainingSeconds), from the runs that ended or, before any
   * has (ended_runs 0), projected from the first steps of a running one; null before either.
   */
  estimate: { remaining_s: number | null; ended_runs: number };
  created_at: number;
  updated_at: number;
}

export interface FairOptions {
  methods: readonly MethodPreset[];
  baseline: string;
  settings: FairSettings;
  name: string;
  experiment?: string;
  /** Stop creating runs (the runs already started are stopped by whoever aborted). */
  signal?: AbortSignal;
  /** Workers at once (the engine's maxConcurrent), for the time estimate. */
  concurrency?: number;
  /** Called with the record each time it is written. */
  onRecord?: (record: ComparisonRecord, experiment: ExperimentInfo) => void;
}

const now = (): number => Date.now() / 1000;

/**
 * An experiment's comparison.json, checked against its schema (a run folder is data anyone can write):
 * `absent`, `ok` with the record, or `damaged` with the reason.
 */
export function readComparisonRecord(experimentDir: string): ComparisonRead {
  const path = join(experimentDir, COMPARISON_FILE);
  // The tree and the tab ask on every run event: the file is parsed and checked once per version of it
  // (it is only ever replaced by an atomic rename, which gives it a new inode).
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'damaged', reason: `${COMPARISON_FILE} cannot be read: ${(err as Error).message}` };
  }
  const hit = recordCache.get(path);
  if (hit?.stamp === stamp) return hit.read;
  const read = parseComparisonRecord(path);
  recordCache.set(path, { stamp, read });
  return read;
}

type ComparisonRead = { kind: 'absent' } | { kind: 'ok'; record: ComparisonRecord } | { kind: 'damaged'; reason: string };
const recordCache = new Map<string, { stamp: string; read: ComparisonRead }>();

function parseComparisonRecord(path: string): ComparisonRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'damaged', reason: `${COMPARISON_FILE} cannot be read: ${(err as Error).message}` };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { kind: 'damaged', reason: `${COMPARISON_FILE} is not valid JSON (${(err as Error).message})` };
  }
  const errors = validate('comparison', doc);
  if (errors.length) return { kind: 'damaged', reason: `${COMPARISON_FILE}: ${formatErrors(errors.slice(0, 3)).replace(/\n/g, '; ')}` };
  return { kind: 'ok', record: doc as ComparisonRecord };
}

/** The run folders of a record's replicates (every method × every replicate seed), the rest are search trials. */
export function replicateRuns(record: Pick<ComparisonRecord, 'methods' | 'protocol'>): Set<string> {
  return new Set(record.methods.flatMap((m) => record.protocol.replicate_seeds.map((seed) => replicateRunId(m.id, seed))));
}

const runs = (n: number): string => `${Number(n.toFixed(2))} full run${n === 1 ? '' : 's'}`;

/** The protocol and its budget in one parenthesis: how every verdict sentence ends. */
export function protocolTag(plan: FairPlan): string {
  return `(fair protocol: ${plan.settings.trials} learning rates searched per method, ${runs(searchCost(plan))} each; ${plan.replicateSeeds.length} matched seeds × ${plan.steps} steps)`;
}

/** Validates every config the plan can create before anything is written (a bad rate range fails here). */
function checkPlan(base: RunConfig, plan: FairPlan): void {
  for (const m of plan.methods) {
    for (const rung of plan.rungs) for (const lr of m.grid) trialConfig(base, plan, m, rung, lr);
    for (const lr of m.grid) for (const seed of plan.replicateSeeds) replicateConfig(base, m, lr, seed);
  }
}

export function initialRecord(plan: FairPlan): ComparisonRecord {
  const cost = planCost(plan);
  const t = now();
  return {
    version: 1,
    state: 'running',
    protocol: {
      kind: 'fair',
      trials: plan.settings.trials,
      seeds: plan.settings.seeds,
      eta: 2,
      steps: plan.steps,
      rungs: plan.rungs.map((r) => ({ ...r })),
      search_seed: plan.searchSeed,
      replicate_seeds: [...plan.replicateSeeds],
      selection: 'the final evaluation on the validation half of the held-out set: the primary metric, ties by eval loss, then the lower rate',
      report: 'the final evaluation on the test half of the held-out set, and the final smoothed train loss',
      interval: '95% two-sided Student t over seeds (n−1 degrees of freedom); differences and speed-ups paired by seed, speed-ups on the log scale',
      search_cost_full_runs: searchCost(plan),
    },
    budget: { runs: cost.runs, full_runs: cost.fullRuns, steps: cost.steps },
    baseline: plan.baseline,
    metric: null,
    target: null,
    methods: plan.methods.map((m) => ({
      id: m.preset.id,
      label: m.preset.label,
      init: m.preset.init,
      optimizer: m.preset.optimizer,
      lr_range: [...m.range] as [number, number],
      trials: [],
      chosen_lr: plan.rungs.length ? null : m.grid[0]!,
      replicates: [],
      summary: null,
    })),
    verdict: [],
    estimate: { remaining_s: null, ended_runs: 0 },
    created_at: t,
    updated_at: t,
  };
}

/** "RiemannLoRA's chosen rate 0.0169 is the highest it searched" when the choice is an end of the grid, else null. */
export function edgeOfSearch(m: Pick<ComparisonMethodRecord, 'label' | 'chosen_lr' | 'trials'>): string | null {
  const grid = m.trials.filter((t) => t.rung === 0).map((t) => t.lr);
  if (m.chosen_lr === null || grid.length < 2) return null;
  if (m.chosen_lr === Math.max(...grid)) return `${m.label}'s chosen rate ${m.chosen_lr} is the highest it searched`;
  if (m.chosen_lr === Math.min(...grid)) return `${m.label}'s chosen rate ${m.chosen_lr} is the lowest it searched`;
  return null;
}

/** "about 4 min left, estimated from 3 ended runs" (or "… from the first steps …"); '' when there is none. */
export function estimateWords(record: Pick<ComparisonRecord, 'estimate' | 'state'>): string {
  const left = record.estimate.remaining_s;
  if (left === null || record.state !== 'running') return '';
  const n = record.estimate.ended_runs;
  const basis = n === 0 ? 'the first steps of a running run' : `${n} ended run${n === 1 ? '' : 's'}`;
  const time = left < 90 ? `${Math.max(1, Math.round(left))} s` : `${Math.round(left / 60)} min`;
  return `about ${time} left, estimated from ${basis}`;
}

/**
 * Plans, validates and runs a fair comparison; resolves with the final record once every run has ended
 * (or, after `signal` aborts, once the runs already created have ended).
 */
export async function runFairComparison(engine: Engine, base: RunConfig, opts: FairOptions): Promise<{ experiment: ExperimentInfo; record: ComparisonRecord; runs: RunInfo[] }> {
  if (engine.readOnly) throw new ReadOnlyError('running a fair comparison');
  const plan = planFair(base, opts.methods, opts.baseline, opts.settings);
  checkPlan(base, plan);
  const exp = engine.store.createExperiment({ id: opts.experiment, name: opts.name, kind: 'compare' });
  const record = initialRecord(plan);
  const created: RunInfo[] = [];
  const path = join(exp.dir, COMPARISON_FILE);
  const write = () => {
    record.updated_at = now();
    writeJsonAtomic(path, record);
    opts.onRecord?.(record, exp);
  };
  engine.store.updateExperiment(exp.id, (doc) => {
    doc.protocol = 'fair';
    doc.baseline = replicateRunId(plan.baseline, plan.replicateSeeds[0]!);
  });
  write();

  let metric: Metric | null = null;
  const aborted = () => opts.signal?.aborted ?? false;
  const ended: { steps: number; seconds: number }[] = [];
  // Until a run has ended, the first steps of a running one give the estimate: its start-up (launch to
  // first logged step) and per-step cost (first to latest logged step) as the two points of the same
  // start-up + per-step fit the ended runs get, once per run after a tenth of its steps; from the first
  // ended run on, the fit over ended runs replaces it.
  const plannedSteps = new Map<string, number>();
  const firstPoint = new Map<string, { step: number; time: number }>();
  const projected = new Set<string>();
  const onMetrics = (d: MetricsDelta): void => {
    const steps = plannedSteps.get(d.key);
    if (ended.length || steps === undefined || projected.has(d.key) || !d.train.length) return;
    const head = firstPoint.get(d.key) ?? d.train[0]!;
    firstPoint.set(d.key, head);
    const last = d.train[d.train.length - 1]!;
    if (last.step - head.step < Math.max(2, steps / 10)) return;
    // The engine may see a run's first metrics in the same poll as its running status: read it from disk then.
    const startedAt = engine.get(d.key)?.started_at ?? engine.store.readStatus(d.key)?.started_at;
    if (startedAt === null || startedAt === undefined || head.time < startedAt || last.time <= head.time) return;
    projected.add(d.key);
    const samples = [
      { steps: head.step, seconds: head.time - startedAt },
      { steps: last.step, seconds: last.time - startedAt },
    ];
    record.estimate = { remaining_s: remainingSeconds(plan, samples, opts.concurrency ?? 1), ended_runs: 0 };
    write();
  };
  engine.on('metrics-appended', onMetrics);
  const launch = async (config: RunConfig, run: string, label: string): Promise<RunInfo | null> => {
    if (aborted()) return null;
    const info = engine.createRun(config, { experiment: exp.id, run, label });
    created.push(info);
    plannedSteps.set(info.key, config.train.steps);
    const done = await engine.wait(info.key);
    if (done.state === 'completed' && done.started_at !== null && done.ended_at !== null) {
      ended.push({ steps: config.train.steps, seconds: done.ended_at - done.started_at });
      record.estimate = { remaining_s: remainingSeconds(plan, ended, opts.concurrency ?? 1), ended_runs: ended.length };
      write();
    }
    return done;
  };
  const metricOf = (keys: string[]): Metric | null => metric ?? (metric = primaryMetric(keys.map((k) => engine.series(k).series)));

  const chain = async (m: PlannedMethod, rec: ComparisonMethodRecord): Promise<void> => {
    let candidates = m.grid;
    for (const rung of plan.rungs) {
      const results = await Promise.all(
        candidates.map((lr) => launch(trialConfig(base, plan, m, rung, lr), trialRunId(m.preset.id, rung.index, lr), `${m.preset.label} · search ${rung.index + 1}/${plan.rungs.length} · lr ${lr}`)),
      );
      if (results.some((r) => r === null) || aborted()) {
        // Stopped: what ended is recorded, nothing is chosen from trials that were cut short.
        rec.trials.push(...results.flatMap((info, i): TrialResult[] => (info ? [{ rung: rung.index, lr: candidates[i]!, steps: rung.steps, run: info.run, state: info.state, metric: null, loss: null }] : [])));
        write();
        return;
      }
      const done = results as RunInfo[];
      const mt = metricOf(done.map((r) => r.key));
      const trials = done.map((info, i): TrialResult => {
        const { series } = engine.series(info.key);
        return {
          rung: rung.index,
          lr: candidates[i]!,
          steps: rung.steps,
          run: info.run,
          state: info.state,
          metric: info.state === 'completed' && mt ? finalEval(series, mt.name) : null,
          loss: info.state === 'completed' ? finalEval(series, 'loss') : null,
        };
      });
      rec.trials.push(...trials);
      const next = plan.rungs[rung.index + 1];
      const ranked = mt ? rankTrials(trials, mt) : trials;
      candidates = ranked.slice(0, next ? next.trials : 1).map((t) => t.lr);
      if (!next) rec.chosen_lr = candidates[0]!;
      write();
    }
    const lr = rec.chosen_lr!;
    await Promise.all(plan.replicateSeeds.map((seed) => launch(replicateConfig(base, m, lr, seed), replicateRunId(m.preset.id, seed), `${m.preset.label} · seed ${seed}`)));
  };

  try {
    await Promise.all(plan.methods.map((m, i) => chain(m, record.methods[i]!)));
  } catch (err) {
    // The record must not say `running` forever: it says why the comparison ended.
    record.state = 'failed';
    record.error = (err as Error).message;
    write();
    throw err;
  } finally {
    engine.off('metrics-appended', onMetrics);
  }
  finish(engine, exp, plan, record, aborted());
  record.estimate = { remaining_s: 0, ended_runs: ended.length };
  write();
  return { experiment: engine.store.getExperiment(exp.id) ?? exp, record, runs: created.map((r) => engine.get(r.key) ?? r) };
}

/** Fills in the replicates' numbers, the summaries and the verdict from the run folders. */
function finish(engine: Engine, exp: ExperimentInfo, plan: FairPlan, record: ComparisonRecord, aborted: boolean): void {
  const replicateKeys = record.methods.flatMap((m) => (m.chosen_lr === null ? [] : plan.replicateSeeds.map((s) => runKey(exp.id, replicateRunId(m.id, s)))));
  const existing = replicateKeys.filter((k) => engine.get(k));
  const metric = primaryMetric(existing.map((k) => engine.series(k).series));
  record.metric = metric;
  if (!metric) {
    record.state = aborted ? 'stopped' : 'failed';
    return;
  }
  const seriesOf = new Map(existing.map((k) => [k, engine.series(k)]));
  for (const m of record.methods) {
    m.replicates = [];
    if (m.chosen_lr === null) continue;
    for (const seed of plan.replicateSeeds) {
      const run = replicateRunId(m.id, seed);
      const s = seriesOf.get(runKey(exp.id, run));
      if (!s) continue;
      m.replicates.push(replicateResult(s.series, metric, { seed, run, state: s.state, lr: m.chosen_lr }));
    }
  }
  const base = record.methods.find((m) => m.id === plan.baseline);
  // Only completed replicates count: a failed or stopped run's last evaluation is not a final one.
  const completed = (rs: ReplicateResult[]) => rs.filter((r) => r.state === 'completed');
  record.target = base ? targetOf(completed(base.replicates)) : null;
  let noTarget: string | undefined;
  if (base && record.target !== null) {
    const start = startOf(completed(base.replicates).map((r) => seriesOf.get(runKey(exp.id, r.run))!.series), metric);
    if (!improvesOn(record.target, start, metric)) {
      noTarget = `no speed-up: ${base.label}'s mean final ${metricName(metric)} (${Number(record.target.toPrecision(4))}) is no better than at step 0, so there is no target to reach`;
      record.target = null;
    }
  }
  for (const m of record.methods) {
    m.replicates = m.replicates.map((r) => withTarget(r, seriesOf.get(runKey(exp.id, r.run))!.series, metric, record.target));
  }
  const baseCompleted = base ? completed(base.replicates) : null;
  for (const m of record.methods) m.summary = summarizeMethod(completed(m.replicates), m.id === plan.baseline ? null : baseCompleted);
  const words = protocolTag(plan);
  record.verdict = base?.summary
    ? record.methods
        .filter((m) => m.id !== plan.baseline && m.summary)
        .map((m) => {
          const edges = [m, base].map(edgeOfSearch).filter((e): e is string => e !== null);
          const caveat = edges.length ? `${edges.join('; ')}: a wider search range could change this` : undefined;
          return verdictSentence({ label: m.label, baselineLabel: base.label, metric, summary: m.summary!, baselineSummary: base.summary!, seeds: plan.replicateSeeds.length, protocol: words, noTarget, caveat });
        })
    : [];
  const all = record.methods.flatMap((m) => m.replicates);
  const expected = record.methods.length * plan.replicateSeeds.length;
  record.state = aborted || all.some((r) => r.state === 'stopped') ? 'stopped' : all.length === expected && all.every((r) => r.state === 'completed') ? 'complete' : 'failed';
}
