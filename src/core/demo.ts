// The main job's run configs (`npm run demo`): the same four methods on the built-in default task (or the
// fast synthetic one); `quick` keeps the shape (all methods, evaluation, report) with fewer steps.
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
