// The engine with the REAL worker on the synthetic-lowrank task: stop mid-way (SIGINT to the process
// group → checkpoint → `finished: stopped`), resume to completion, and SIGKILL another run (failed with
// the tail of worker.log, every event flushed before the kill parsed). Two engines (two windows) starting
// the same queued run: it is trained once and neither engine writes `failed` over it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../src/core/config';
import { Engine } from '../../src/core/engine';
import { readAllEvents, type WorkerEvent } from '../../src/core/events';
import type { RunKey } from '../../src/core/runStore';
import { NATIVE_WORKER, WORKER_ENV, workerPython } from './helpers';

const base: RunConfig = {
  task: { kind: 'synthetic-lowrank', synthetic: { width: 32, depth: 2, target_rank: 2, n_train: 1024, n_eval: 128 } },
  adapter: { rank: 2 },
  method: { init: 'loi', optimizer: 'riemannion', lr: 0.01 },
  train: { steps: 300, batch_size: 16, eval_interval: 100, eval_batches: 2, threads: 1, device: 'cpu' },
  output: { checkpoint_interval: 0, export_adapter: true },
};

let root = '';
let engine: Engine;

afterAll(() => {
  engine?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Resolves when the run's train series has reached `step` (from the live deltas). */
function reach(key: RunKey, step: number, timeoutMs = 90_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${key} did not reach step ${step} in time; state ${engine.get(key)?.state}, log:\n${engine.store.logTail(key)}`)), timeoutMs);
    const check = () => {
      const last = engine.snapshot(key).train.at(-1);
      if (last && last.step >= step) {
        clearTimeout(timer);
        engine.off('metrics-appended', onDelta);
        resolve();
      }
    };
    const onDelta = (d: { key: string }) => d.key === key && check();
    engine.on('metrics-appended', onDelta);
    check();
  });
}

const trainSteps = (events: WorkerEvent[]) => events.flatMap((e) => (e.type === 'metric' && e.split === 'train' ? [e.step] : []));

describe('engine + real worker (synthetic-lowrank)', () => {
  it('stops a run mid-way, resumes it to completion, and fails a SIGKILLed one with its log tail, losing no event', async () => {
    const python = workerPython(); // throws (the test FAILS, never skips) when the worker is missing
    root = mkdtempSync(join(tmpdir(), 'rlora-int-'));
    engine = new Engine({ root, python, nativeWorkerDir: NATIVE_WORKER, env: WORKER_ENV, maxConcurrent: 2, pollIntervalMs: 50 });
    const stopped = engine.createRun({ ...base, name: 'stop-and-resume' }, { run: 'stop-resume' });
    const killed = engine.createRun({ ...base, name: 'killed', train: { ...base.train, steps: 1_000_000 } }, { run: 'killed' });

    // --- stop: SIGINT to the worker's process group; it checkpoints and reports `finished: stopped`
    await reach(stopped.key, 20);
    engine.stop(stopped.key);
    const afterStop = await engine.wait(stopped.key);
    expect(afterStop.state).toBe('stopped');
    expect(afterStop.exit_code).toBe(0);
    const stopSnap = engine.snapshot(stopped.key);
    const stopCheckpoint = stopSnap.events.find((e) => e.type === 'checkpoint');
    expect(stopCheckpoint).toMatchObject({ type: 'checkpoint', reason: 'stop' });
    expect(stopSnap.events.at(-1)).toMatchObject({ type: 'finished', status: 'stopped' });
    const stopStep = stopSnap.train.at(-1)!.step;
    expect(stopStep).toBeGreaterThanOrEqual(20);
    expect(stopStep).toBeLessThan(300);

    // --- SIGKILL: no chance to report; the engine sees the pid gone and fails the run
    await reach(killed.key, 20);
    engine.kill(killed.key);
    const afterKill = await engine.wait(killed.key);
    expect(afterKill.state).toBe('failed');
    expect(afterKill.last_error?.message).toMatch(/worker (process is gone|exited)/);
    expect(afterKill.last_error?.message).toContain('last lines of worker.log');
    expect(afterKill.last_error?.message).toContain('riemannlora.worker'); // the worker's own log line
    expect(afterKill.last_error?.hint).toMatch(/resume/);
    // no event lost: the engine's curve is exactly every complete metric line in the file
    const onDisk = readAllEvents(engine.store.eventsPath(killed.key));
    const killedSnap = engine.snapshot(killed.key);
    expect(killedSnap.train.map((p) => p.step)).toEqual(trainSteps(onDisk.events));
    expect(killedSnap.train.map((p) => p.step)).toEqual(Array.from({ length: killedSnap.train.length }, (_, i) => i + 1));
    expect(killedSnap.train.length).toBeGreaterThanOrEqual(20);
    expect(onDisk.events.some((e) => e.type === 'finished')).toBe(false);

    // --- resume the stopped run: continues from its checkpoint to the end
    let liveDeltas = 0;
    engine.on('metrics-appended', (d) => {
      if (d.key === stopped.key && d.train.length && engine.get(stopped.key)?.state === 'running') liveDeltas += 1;
    });
    engine.resume(stopped.key);
    const resumed = await engine.wait(stopped.key);
    expect(liveDeltas).toBeGreaterThan(1); // the resumed run streams live, not only at its end
    expect(resumed.state).toBe('completed');
    const snap = engine.snapshot(stopped.key);
    const restart = snap.events.filter((e) => e.type === 'started');
    expect(restart).toHaveLength(2);
    expect(restart[1]).toMatchObject({ resumed: true, start_step: stopCheckpoint?.type === 'checkpoint' ? stopCheckpoint.step : -1 });
    expect(snap.train.map((p) => p.step)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(snap.events.at(-1)).toMatchObject({ type: 'finished', status: 'completed' });
    expect(snap.skipped).toEqual([]);
    expect(resumed.summary?.steps).toBe(300);
    expect(resumed.summary?.final_loss_smoothed).toBeGreaterThan(0);
    // the same curve from disk by a fresh reader (e.g. a reloaded window)
    const fresh = new Engine({ root, python: 'unused', nativeWorkerDir: NATIVE_WORKER });
    expect(fresh.snapshot(stopped.key).train.map((p) => p.step)).toEqual(snap.train.map((p) => p.step));
    fresh.dispose();
  }, 240_000);

  it('two windows start the same queued run: one worker trains it once, the other engine writes nothing and follows it', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'rlora-two-windows-'));
    const opts = { root: shared, python: workerPython(), nativeWorkerDir: NATIVE_WORKER, env: WORKER_ENV, pollIntervalMs: 50 };
    const a = new Engine(opts);
    const b = new Engine(opts);
    try {
      const info = a.createRun({ ...base, train: { ...base.train, steps: 120 } }, { experiment: 'shared', run: 'r', start: false });
      const seen: string[] = [];
      for (const e of [a, b]) e.on('run-updated', (i) => seen.push(i.state));
      a.start(info.key); // both windows auto-start the queued run at the same moment
      b.start(info.key);
      const [da, db] = await Promise.all([a.wait(info.key), b.wait(info.key)]);
      expect([da.state, db.state]).toEqual(['completed', 'completed']);
      expect(seen).not.toContain('failed');
      const all = readAllEvents(a.store.eventsPath(info.key));
      expect(all.events.filter((e) => e.type === 'started')).toHaveLength(1); // trained once
      expect(trainSteps(all.events)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
      expect(all.skipped).toEqual([]);
    } finally {
      a.dispose();
      b.dispose();
      rmSync(shared, { recursive: true, force: true });
    }
  }, 180_000);
});
