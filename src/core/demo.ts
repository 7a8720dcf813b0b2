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
    const steps = opts.quick ? 12 : 120;
    config = {
      name: 'built-in default demo',
      task: { kind: 'builtin-default' },
      adapter: { rank: 8 },
      method: { init: 'loi', optimizer: 'riemannion' },
      train: { steps, batch_size: 8, eval_interval: opts.quick ? 6 : 30, eval_batches: 4, seed: 0, threads, device: 'cpu' },
      output: { checkpoint_interval: 0, export_adapter: true },
    };
  }
  return checkConfig(config, `demo config (${task})`);
}

/**
 * Learning rates of the demo, per task and method. The optimizers' own defaults (the worker's DEFAULT_LR:
 * the paper's values for Llama-3-8B) barely move a 0.6M-parameter model in a CPU-minute budget, which
 * would make the comparison about the defaults, not the methods. So each method gets the best rate of a
 * small grid on the same budget (final train loss; see the sweep in the engine's report, 120 steps,
 * rank 8, batch 8, seed 0): the same tuning effort for every method.
 *   riemannion+loi   1e-3 2.028 | 3e-3 1.791 | 1e-2 1.703 | 3e-2 1.966
 *   adamw+lora       1e-3 1.877 | 3e-3 1.830 | 1e-2 1.752
 *   adamw+pissa      3e-4 1.887 | 1e-3 1.779 | 3e-3 1.684
 *   scaled-adamw     1e-3 1.909 | 3e-3 1.814 | 1e-2 1.709
 * The synthetic task keeps the defaults (its demo is a fast smoke run, not a benchmark).
 */
const DEMO_LR: Record<DemoTask, Partial<Record<string, number>>> = {
  'builtin-default': { 'riemannlora': 1e-2, 'lora-adamw': 1e-2, 'pissa': 3e-3, 'scaled-adamw': 1e-2 },
  'synthetic-lowrank': {},
};

/** The four methods of the demo with the task's learning rates. */
export function demoMethods(task: DemoTask): MethodPreset[] {
  return DEFAULT_METHODS.map((m) => {
    const lr = DEMO_LR[task][m.id];
    return lr === undefined ? { ...m } : { ...m, lr };
  });
}
