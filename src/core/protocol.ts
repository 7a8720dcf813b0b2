// The plan of a fair comparison (docs/comparisons.md): which runs, at which learning rates, steps and
// seeds. Pure: fairComparison.ts executes a plan with the engine, verdict.ts turns its results into numbers.
//
// The protocol follows AlgoPerf's external tuning (the same search budget for every method, selection on
// validation data, reported numbers on data not used for selection, repeated runs):
//   1. search: `trials` learning rates per method, log-uniform over the catalogue's `lr.search` range
//      (schema/methods.json), by successive halving with η = 2: every trial at steps/η^R, the better half
//      again at η× the steps, …, until two remain at steps/2; the better of those is chosen. With 4 trials
//      that costs 4·S/4 + 2·S/2 = 2 full runs per method. Trials evaluate on the validation half of the
//      held-out set (task.heldout) with their own seed (SEARCH_SEED_OFFSET), never a replicate's.
//   2. replicates: the chosen rate at the full budget for `seeds` seeds. Seed i is the same for every
//      method (train.seed drives the data order and every random draw of an initialization), so the
//      per-seed differences are paired. Replicates evaluate on the test half.
import { lrSearchRange } from './catalogue';
import { siblingConfig, type MethodPreset } from './compare';
import { checkConfig, type RunConfig } from './config';

export type ProtocolKind = 'quick' | 'fair';

export const FAIR_DEFAULTS = { trials: 4, seeds: 3 } as const;
/** Successive halving keeps 1/η of the trials and gives them η× the steps. */
export const HALVING_ETA = 2;
/** Search trials use seed base + this, so that no trial shares a replicate's seed. */
export const SEARCH_SEED_OFFSET = 1000;

export interface FairSettings {
  trials: number;
  seeds: number;
}

export interface Rung {
  /** 0-based. */
  index: number;
  /** Trials run in this rung (the better 1/η go on to the next). */
  trials: number;
  steps: number;
}

export interface PlannedMethod {
  preset: MethodPreset;
  /** The catalogue's search range of the preset's optimizer on the base config's task (catalogue.ts lrSearchRange). */
  range: [number, number];
  /** The learning rates of the first rung, low to high. */
  grid: number[];
}

export interface FairPlan {
  settings: FairSettings;
  /** The full step budget (the base config's train.steps): what every replicate trains. */
  steps: number;
  rungs: Rung[];
  searchSeed: number;
  replicateSeeds: number[];
  methods: PlannedMethod[];
  baseline: string;
}

/** `trials` learning rates spread log-uniformly over [lo, hi]: the centres of equal cells in log(lr). */
export function lrGrid(range: readonly [number, number], trials: number): number[] {
  const [lo, hi] = range;
  if (!(lo > 0 && hi > lo)) throw new RangeError(`a learning-rate range needs 0 < low < high (got ${lo}, ${hi})`);
  const a = Math.log(lo);
  const span = Math.log(hi) - a;
  return Array.from({ length: trials }, (_, i) => Number(Math.exp(a + (span * (i + 0.5)) / trials).toPrecision(3)));
}

/**
 * The rungs of successive halving for `trials` trials and a budget of `steps`: rung r runs
 * ceil(trials / η^r) trials at steps / η^(R−r) steps, R = ceil(log_η trials), so the last rung trains two
 * trials at half the budget (one trial: no search, one rung-less choice).
 */
export function halvingRungs(trials: number, steps: number, eta = HALVING_ETA): Rung[] {
  if (!Number.isInteger(trials) || trials < 1) throw new RangeError(`trials must be a positive integer (got ${trials})`);
  const rungCount = trials === 1 ? 0 : Math.ceil(Math.log(trials) / Math.log(eta) - 1e-9);
  const rungs: Rung[] = [];
  for (let r = 0; r < rungCount; r++) {
    rungs.push({ index: r, trials: Math.ceil(trials / eta ** r), steps: Math.max(1, Math.round(steps / eta ** (rungCount - r))) });
  }
  return rungs;
}

/** The search's cost in full runs (steps trained / the full budget), per method. */
export const searchCost = (plan: Pick<FairPlan, 'rungs' | 'steps'>): number => plan.rungs.reduce((s, r) => s + r.trials * r.steps, 0) / plan.steps;

export function planFair(base: RunConfig, methods: readonly MethodPreset[], baseline: string, settings: FairSettings): FairPlan {
  for (const [name, v] of Object.entries(settings)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer (got ${v})`);
  }
  if (settings.seeds < 2) throw new RangeError('the fair protocol needs at least 2 seeds (an interval needs two values); use the quick protocol for one');
  if (!methods.some((m) => m.id === baseline)) throw new RangeError(`the baseline ${baseline} is not one of the compared methods`);
  const seed = base.train.seed ?? 0;
  const steps = base.train.steps;
  return {
    settings: { ...settings },
    steps,
    rungs: halvingRungs(settings.trials, steps),
    searchSeed: seed + SEARCH_SEED_OFFSET,
    replicateSeeds: Array.from({ length: settings.seeds }, (_, i) => seed + i),
    methods: methods.map((preset) => {
      const range = lrSearchRange(preset.optimizer, base.task.kind);
      // One trial: the centre of the range (the catalogue default when the range is symmetric about it).
      return { preset, range, grid: lrGrid(range, settings.trials) };
    }),
    baseline,
  };
}

/** Run ids inside the comparison's experiment. */
export const trialRunId = (method: string, rung: number, lr: number): string => `${method}-r${rung}-lr${lr.toExponential(2).replace('+', '')}`;
export const replicateRunId = (method: string, seed: number): string => `${method}-seed${seed}`;

function withTrain(config: RunConfig, change: Partial<RunConfig['train']>, heldout: 'validation' | 'test', label: string): RunConfig {
  const next = structuredClone(config);
  next.train = { ...next.train, ...change };
  next.task = { ...next.task, heldout };
  // No adapter export or checkpoints for search trials; replicates keep what the base asks for.
  return checkConfig(next, label);
}

/** Task kinds whose evaluations can generate completions (`task.eval_generate`). */
const GENERATING_KINDS: ReadonlySet<string> = new Set(['causal-lm', 'builtin-default']);

/** The config of one search trial: the method at `lr`, the rung's steps, the search seed, validation half. */
export function trialConfig(base: RunConfig, plan: FairPlan, method: PlannedMethod, rung: Rung, lr: number): RunConfig {
  const config = siblingConfig(base, { ...method.preset, lr });
  const warmup = config.method.warmup_steps;
  if (warmup !== undefined) config.method = { ...config.method, warmup_steps: Math.floor((warmup * rung.steps) / plan.steps) };
  config.output = { ...config.output, export_adapter: false, checkpoint_interval: 0 };
  // Selection reads the primary metric (token_accuracy where a causal-LM task has completions, else the
  // loss), never exact match: the trials skip the greedy generation it costs. Replicates keep the base's.
  if (GENERATING_KINDS.has(config.task.kind)) config.task = { ...config.task, eval_generate: false };
  config.name = `${config.name ?? ''} · lr ${lr}`.slice(0, 120);
  return withTrain(config, { steps: rung.steps, seed: plan.searchSeed, eval_interval: rung.steps }, 'validation', `search trial ${method.preset.label} lr ${lr}`);
}

/** The config of one replicate: the method at its chosen `lr`, the full budget, `seed`, test half. */
export function replicateConfig(base: RunConfig, method: PlannedMethod, lr: number, seed: number): RunConfig {
  const config = siblingConfig(base, { ...method.preset, lr });
  config.name = `${config.name ?? ''} · seed ${seed}`.slice(0, 120);
  return withTrain(config, { seed }, 'test', `replicate ${method.preset.label} seed ${seed}`);
}

/** How many runs and full-run equivalents a plan costs (what the user sees before starting). */
export function planCost(plan: FairPlan): { runs: number; fullRuns: number; steps: number } {
  const perMethodRuns = plan.rungs.reduce((s, r) => s + r.trials, 0) + plan.replicateSeeds.length;
  const perMethodSteps = plan.rungs.reduce((s, r) => s + r.trials * r.steps, 0) + plan.replicateSeeds.length * plan.steps;
  const n = plan.methods.length;
  return { runs: n * perMethodRuns, fullRuns: (n * perMethodSteps) / plan.steps, steps: n * perMethodSteps };
}

/** The lengths (steps) of every run a plan makes, all methods. */
export function plannedRunSteps(plan: FairPlan): number[] {
  const perMethod = [...plan.rungs.flatMap((r) => Array<number>(r.trials).fill(r.steps)), ...plan.replicateSeeds.map(() => plan.steps)];
  return plan.methods.flatMap(() => perMethod);
}

/**
 * Wall seconds of a run as start-up + per-step cost, a + b·steps, fitted by least squares on the runs that
 * ended (one length only: the start-up is not separable and a = 0). null before any run ended.
 */
export function fitRunSeconds(samples: readonly { steps: number; seconds: number }[]): { a: number; b: number } | null {
  if (!samples.length) return null;
  const n = samples.length;
  const mx = samples.reduce((s, p) => s + p.steps, 0) / n;
  const my = samples.reduce((s, p) => s + p.seconds, 0) / n;
  const sxx = samples.reduce((s, p) => s + (p.steps - mx) ** 2, 0);
  if (sxx === 0) return { a: 0, b: my / Math.max(mx, 1) };
  const b = samples.reduce((s, p) => s + (p.steps - mx) * (p.seconds - my), 0) / sxx;
  const a = my - b * mx;
  // A negative start-up (noise with few samples) would make short runs look free.
  return a >= 0 && b >= 0 ? { a, b } : { a: 0, b: my / Math.max(mx, 1) };
}

/**
 * Seconds left: the runs not yet ended (by length, from the plan) at the fitted cost, `concurrency` at a
 * time. Rough by nature (the rungs wait on each other); refined each time a run ends.
 */
export function remainingSeconds(plan: FairPlan, ended: readonly { steps: number; seconds: number }[], concurrency: number): number | null {
  const fit = fitRunSeconds(ended);
  if (!fit) return null;
  const left = [...plannedRunSteps(plan)];
  for (const e of ended) {
    const i = left.indexOf(e.steps);
    if (i >= 0) left.splice(i, 1);
  }
  return left.reduce((s, steps) => s + fit.a + fit.b * steps, 0) / Math.max(1, concurrency);
}
