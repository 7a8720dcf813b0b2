// The main job's run configs (`npm run demo`): the same four methods on the built-in default task (or the
// fast synthetic one); `quick` keeps the shape (all methods, evaluation, report) with fewer steps.
import { DEFAULT_METHODS, type MethodPreset } from './compare';
import { checkConfig, type RunConfig } from './config';

export const DEMO_TASKS = ['builtin-default', 'synthetic-lowrank'] as const;
export type DemoTask = (typeof DEMO_TASKS)[number];

export interface DemoOptions {
  quick?: boolean;
  /** torch threads per worker: 1 when several workers share a small CPU (0: torch's default). */
  threads?: number;
}

/** The demo's base config; every method's run is derived from it by compare.ts `siblingConfig`. */
export function demoConfig(task: DemoTask, opts: DemoOptions = {}): RunConfig {
  const threads = opts.threads ?? 1;
  let config: RunConfig;
  if (task === 'synthetic-lowrank') {
    const steps = opts.quick ? 40 : 300;
    config = {
      name: 'synthetic-lowrank demo',
      task: { kind: 'synthetic-lowrank', synthetic: { width: 64, depth: 3, target_rank: 4, n_train: 4096, n_eval: 512 } },
      adapter: { rank: 4 },
      method: { init: 'loi', optimizer: 'riemannion' },
      train: { steps, batch_size: 32, eval_interval: opts.quick ? 20 : 50, eval_batches: 4, seed: 0, threads, device: 'cpu' },
      output: { checkpoint_interval: 0, export_adapter: true },
    };
  } else {
    const steps = opts.quick ? 12 : 200;
    config = {
      name: 'built-in default demo',
      task: { kind: 'builtin-default' },
      adapter: { rank: 8 },
      method: { init: 'loi', optimizer: 'riemannion' },
      train: { steps, batch_size: 8, eval_interval: opts.quick ? 6 : 50, eval_batches: 4, seed: 0, threads, device: 'cpu' },
      output: { checkpoint_interval: 0, export_adapter: true },
    };
  }
  return checkConfig(config, `demo config (${task})`);
}

/**
 * Learning rates of the demo, per task and method. The optimizers' own defaults (the worker's DEFAULT_LR:
 * the paper's values for Llama-3-8B) barely move a 0.6M-parameter model in a CPU-minute budget, which
 * would make the comparison about the defaults, not the methods. So each method gets the best rate of a
 * small grid (same tuning effort for every method): the demo's budget (200 steps, rank 8, batch 8, seed 0)
 * on the shipped assets, run with the worker directly; the worker's final train loss and eval accuracy:
 *   riemannion+loi  1e-2 0.664 (acc 0.385) | 2e-2 0.171* (0.655) | 3e-2 2.263 (0)
 *   adamw+lora      5e-3 0.520 (acc 0.475) | 1e-2 0.993* (0.35)  | 1.5e-2 3.096 (0)
 *   adamw+pissa     1e-3 0.467 (acc 0.485) | 2e-3 0.724 (0.265)  | 3e-3 1.972* (0)
 *   scaled-adamw    5e-3 0.673 (acc 0.23)  | 1e-2 0.360* (0.49)  | 2e-2 2.763 (0)
 * (* from a demo run: the engine's smoothed final loss.) Rates above the best diverge or stall for every
 * method, so the grid brackets each optimum. The synthetic task keeps the defaults (its demo is a fast
 * smoke run, not a benchmark).
 */
const DEMO_LR: Record<DemoTask, Partial<Record<string, number>>> = {
  'builtin-default': { 'riemannlora': 2e-2, 'lora-adamw': 5e-3, 'pissa': 1e-3, 'scaled-adamw': 1e-2 },
  'synthetic-lowrank': {},
};

/** The four methods of the demo with the task's learning rates. */
export function demoMethods(task: DemoTask): MethodPreset[] {
  return DEFAULT_METHODS.map((m) => {
    const lr = DEMO_LR[task][m.id];
    return lr === undefined ? { ...m } : { ...m, lr };
  });
}
