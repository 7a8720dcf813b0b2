// The main job (`npm run demo`, Run Demo Comparison): the four methods on the built-in default task (or the
// fast synthetic one) by the fair protocol (docs/comparisons.md: every learning rate comes from the same
// search, none is hand-picked); `quick` keeps the shape (all methods, the search, seeds, the verdict and the
// report) with fewer steps.
import { DEFAULT_BASELINE, DEFAULT_METHODS, type MethodPreset } from './compare';
import { checkConfig, type RunConfig } from './config';
import { FAIR_DEFAULTS, type FairSettings } from './protocol';

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
    // The settings the assets document (native-worker/riemannlora/assets/default/data/recommended.json):
    // rank 8, alpha 16 on every linear layer, batch 16, 200 steps; every evaluation covers the whole
    // held-out half it is given (the builtin task's evaluate). A cosine schedule with a 5% warmup, as
    // fine-tuning recipes use: at the rates a search picks (the top of its range) a constant rate diverged
    // late in 2 of 3 LoRA-AdamW seeds (docs/comparisons.md "The demo").
    const steps = opts.quick ? 12 : 200;
    config = {
      name: 'built-in default demo',
      task: { kind: 'builtin-default', seq_len: 32 },
      adapter: { rank: 8, alpha: 16, target_modules: 'all-linear' },
      method: { init: 'loi', optimizer: 'riemannion', schedule: 'cosine', warmup_steps: Math.round(steps / 20), grad_clip: 1 },
      train: { steps, batch_size: 16, eval_interval: opts.quick ? 6 : 50, eval_batches: 13, seed: 0, threads, device: 'cpu' },
      output: { checkpoint_interval: 0, export_adapter: true },
    };
  }
  return checkConfig(config, `demo config (${task})`);
}

/** The demo as one comparison: the same for `npm run demo` (src/cli.ts) and Run Demo Comparison (the editor). */
export interface DemoComparison {
  base: RunConfig;
  methods: readonly MethodPreset[];
  baseline: string;
  /** The fair protocol's settings (docs/comparisons.md); quick demos search 2 rates and run 2 seeds. */
  settings: FairSettings;
  name: string;
}

export function demoComparison(task: DemoTask, opts: DemoOptions = {}): DemoComparison {
  return {
    base: demoConfig(task, opts),
    methods: DEFAULT_METHODS,
    baseline: DEFAULT_BASELINE,
    settings: opts.quick ? { trials: 2, seeds: 2 } : { ...FAIR_DEFAULTS },
    name: `demo ${task}${opts.quick ? ' quick' : ''}`,
  };
}
