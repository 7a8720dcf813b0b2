// The engine launching the REAL worker through torchrun (launcher "torchrun", 2 processes, gloo on CPU):
// one synthetic-lowrank run to completion, reported by rank 0 alone with world_size 2.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../src/core/config';
import { Engine } from '../../src/core/engine';
import { readAllEvents } from '../../src/core/events';
import { NATIVE_WORKER, WORKER_ENV, workerPython } from './helpers';

const config: RunConfig = {
  task: { kind: 'synthetic-lowrank', synthetic: { width: 16, depth: 2, target_rank: 2, n_train: 256, n_eval: 64 } },
  adapter: { rank: 2 },
  method: { init: 'loi', optimizer: 'riemannion', lr: 0.05 },
  // batch_size is the GLOBAL micro-batch: 8 = 4 per rank with 2 processes
  train: { steps: 10, batch_size: 8, eval_interval: 5, eval_batches: 1, threads: 1, device: 'cpu', log_interval: 1 },
  output: { checkpoint_interval: 5, export_adapter: true },
};

let root = '';
let engine: Engine | undefined;

afterAll(() => {
  engine?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('engine + real worker under torchrun', () => {
  it('trains one run with --nproc-per-node 2 to completion, world_size 2 in `started`', async () => {
    const python = workerPython(); // throws (the test FAILS, never skips) when the worker is missing
    root = mkdtempSync(join(tmpdir(), 'rlora-torchrun-'));
    engine = new Engine({ root, python, nativeWorkerDir: NATIVE_WORKER, env: WORKER_ENV, launcher: 'torchrun', nproc: 2, pollIntervalMs: 50 });
    const run = engine.createRun({ ...config, name: 'ddp' }, { run: 'ddp' });
    const done = await engine.wait(run.key);
    expect(done.state, engine.store.logTail(run.key)).toBe('completed');
    expect(done.exit_code).toBe(0);

    const events = readAllEvents(engine.store.eventsPath(run.key)).events;
    const started = events.filter((e) => e.type === 'started');
    expect(started).toHaveLength(1); // rank 0 alone writes events
    expect(started[0]).toMatchObject({ world_size: 2, global_batch: 8, start_step: 0 });
    expect(events.filter((e) => e.type === 'finished')).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ type: 'finished', status: 'completed' });
    const snap = engine.snapshot(run.key);
    expect(snap.train.map((p) => p.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(events.filter((e) => e.type === 'checkpoint').map((e) => (e.type === 'checkpoint' ? e.step : -1))).toEqual([5, 10]);
    expect(existsSync(join(engine.store.runDir(run.key), 'adapter', 'adapter_model.safetensors'))).toBe(true);
  }, 180_000);
});
