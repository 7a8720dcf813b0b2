// The engine's supervision logic against a fast stand-in worker (fake-worker.mjs, same file contract):
// events become deltas, a worker that dies without `finished` is failed with its log tail, the queue
// limit holds, queued runs can be cancelled, and a new engine re-attaches to what is on disk.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RunConfig } from '../../../src/core/config';
import { Engine, ReadOnlyError, type MetricsDelta } from '../../../src/core/engine';
import { liveWorkersOf } from '../../../src/core/launcher';
import { DEFAULT_METHODS } from '../../../src/core/compare';
import { runFairComparison } from '../../../src/core/fairComparison';
import type { RunInfo } from '../../../src/core/runStore';
import { tempDir } from './helpers';

const FAKE = join(import.meta.dirname, 'fake-worker.mjs');
const config: RunConfig = { name: 'fake', task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2 }, method: { init: 'loi', optimizer: 'riemannion' }, train: { steps: 20 } };

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

function engine(env: Record<string, string> = {}, opts: { python?: string; maxConcurrent?: number; root?: string } = {}) {
  const t = tempDir();
  const e = new Engine({ root: opts.root ?? join(t.dir, 'runs'), python: opts.python ?? FAKE, nativeWorkerDir: t.dir, env, maxConcurrent: opts.maxConcurrent ?? 2, pollIntervalMs: 20 });
  cleanups.push(() => e.dispose(), t.cleanup);
  return { e, dir: t.dir };
}

describe('Engine (stand-in worker)', () => {
  it('streams a completed run: added, updated, metric deltas with every point, finished with a summary', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '30', FAKE_STEP_MS: '10' });
    const seen: string[] = [];
    const deltas: MetricsDelta[] = [];
    e.on('run-added', (i) => seen.push(`added:${i.state}`));
    e.on('run-updated', (i) => seen.push(`updated:${i.state}`));
    e.on('run-finished', (i) => seen.push(`finished:${i.state}`));
    e.on('metrics-appended', (d) => deltas.push(d));
    const info = e.createRun(config);
    const done = await e.wait(info.key);
    expect(done.state).toBe('completed');
    expect(seen[0]).toBe('added:queued');
    expect(seen[seen.length - 1]).toBe('finished:completed');
    // updates follow the state machine (a loaded machine may poll past the short `running` phase)
    const order = ['queued', 'running', 'completed'];
    const ranks = seen.filter((x) => x.startsWith('updated:')).map((x) => order.indexOf(x.slice(8)));
    expect(ranks.every((r, i) => r >= 0 && (i === 0 || r >= ranks[i - 1]!))).toBe(true);
    expect(ranks.at(-1)).toBe(2);
    expect(deltas.flatMap((d) => d.train.map((p) => p.step))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(deltas.flatMap((d) => d.events.map((ev) => ev.type))).toEqual(['started', 'finished']);
    expect(done.summary?.steps).toBe(30);
    expect(done.summary?.best_eval).toEqual({ name: 'loss', value: 1.1 / 30, step: 30 });
    const snap = e.snapshot(info.key);
    expect(snap.train).toHaveLength(30);
    expect(snap.eval.map((p) => p.step)).toEqual([5, 10, 15, 20, 25, 30]);
    expect(snap.config?.name).toBe('fake');
    expect(e.list().map((r) => r.state)).toEqual(['completed']);
  });

  it('a worker that dies without `finished` is failed with the tail of worker.log; the cut line is reported', async () => {
    const { e } = engine({ FAKE_MODE: 'crash', FAKE_STEPS: '10' });
    const warnings: string[] = [];
    e.on('warning', (w) => warnings.push(w.message));
    const info = e.createRun(config);
    const done = await e.wait(info.key);
    expect(done.state).toBe('failed');
    expect(done.exit_code).toBe(1);
    expect(done.last_error?.message).toMatch(/exited with code 1/);
    expect(done.last_error?.message).toContain('RuntimeError: boom from the fake worker');
    expect(e.snapshot(info.key).train).toHaveLength(10); // every complete line before the crash
    // started + 10 metrics + 2 evals, then the cut line 14
    expect(warnings).toEqual([expect.stringMatching(/^events.jsonl line 14 skipped: not JSON/)]);
  });

  it('a worker that exits before writing any status is failed, not left queued', async () => {
    const { e } = engine({ FAKE_MODE: 'silent-exit' });
    const done = await e.wait(e.createRun(config).key);
    expect(done.state).toBe('failed');
    expect(done.last_error?.message).toContain('giving up before writing anything');
  });

  it('an interpreter that cannot be started fails the run with the reason', async () => {
    const { e } = engine({}, { python: '/nonexistent/bin/python' });
    const done = await e.wait(e.createRun(config).key);
    expect(done.state).toBe('failed');
    expect(done.last_error?.message).toMatch(/ENOENT|cannot start/);
    expect(readFileSync(join(done.dir, 'worker.log'), 'utf8')).toContain('launching: "/nonexistent/bin/python" "-m" "riemannlora.worker" "run"');
  });

  it('runs at most maxConcurrent workers; a queued run can be cancelled (stopped)', async () => {
    const { e, dir } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '15', FAKE_LOG: '' }, { maxConcurrent: 1 });
    const log = join(dir, 'order.log');
    e.configure({ env: { FAKE_MODE: 'complete', FAKE_STEPS: '15', FAKE_LOG: log } });
    const runs = [0, 1, 2].map((i) => e.createRun({ ...config, name: `r${i}` }));
    e.stop(runs[2]!.key);
    expect(e.get(runs[2]!.key)?.state).toBe('stopped');
    const done = await Promise.all(runs.map((r) => e.wait(r.key)));
    expect(done.map((d) => d.state)).toEqual(['completed', 'completed', 'stopped']);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
    expect(lines).toEqual(['start', 'end', 'start', 'end']); // never two at once
  });

  it('a new engine attaches to a run left "running" by a vanished worker and fails it', async () => {
    const { e } = engine({ FAKE_MODE: 'complete' });
    const info = e.createRun(config, { start: false });
    // what a killed worker leaves: status running with a pid that no longer exists
    e.store.writeStatus(info.key, { version: 1, state: 'running', pid: 2 ** 30, host: (await import('node:os')).hostname(), started_at: 1, updated_at: 2, step: 3 });
    e.dispose();
    const { e: e2 } = engine({}, { root: e.root });
    const finished: RunInfo[] = [];
    e2.on('run-finished', (i) => finished.push(i));
    expect(e2.attach().map((r) => r.key)).toEqual([info.key]);
    const done = await e2.wait(info.key);
    expect(done.state).toBe('failed');
    expect(done.last_error?.message).toMatch(/process is gone/);
    expect(finished.map((f) => f.key)).toEqual([info.key]);
  });

  it('stop() while the worker is still starting (no signal handler yet) gives stopped, not failed', async () => {
    const { e } = engine({ FAKE_MODE: 'slow-start' });
    const info = e.createRun(config);
    for (let i = 0; i < 500 && !e.store.readCard(info.key)?.pgid; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100)); // let the process exist for real
    e.stop(info.key);
    const done = await e.wait(info.key);
    expect(done.state).toBe('stopped');
    expect(done.last_error?.kind).toBe('interrupted');
    expect(e.resume(info.key).state).toBe('queued'); // a stopped run can be resumed
    e.kill(info.key);
  });

  it('refuses what the state machine forbids', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '3' });
    const info = e.createRun(config);
    await e.wait(info.key);
    expect(() => e.resume(info.key)).toThrow(/completed run cannot become queued/);
    expect(() => e.start(info.key)).toThrow(/cannot become running/);
    expect(() => e.createRun({ ...config, adapter: { rank: 0 } })).toThrow(/\/adapter\/rank/);
  });

  it('Stop and Kill signal only a verified worker: a run folder claiming pid/pgid 1 or a foreign process gets no signal', async () => {
    const { e } = engine({ FAKE_MODE: 'complete' });
    const { hostname } = await import('node:os');
    const { spawn } = await import('node:child_process');
    // An unrelated live process in its own group, named by a shipped (or stale) run folder.
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { detached: true, stdio: 'ignore' });
    cleanups.push(() => bystander.kill('SIGKILL'));
    const claims: [string, number][] = [['init', 1], ['bystander', bystander.pid!]];
    const keys: string[] = [];
    for (const [name, pid] of claims) {
      const info = e.createRun(config, { experiment: 'shipped', run: name, start: false });
      e.store.writeStatus(info.key, { version: 1, state: 'running', pid, host: hostname(), started_at: 1, updated_at: 2, step: 3 });
      e.store.updateCard(info.key, (c) => (c.pgid = pid));
      keys.push(info.key);
    }
    e.dispose();
    const { e: e2 } = engine({}, { root: e.root });
    const warnings: string[] = [];
    e2.on('warning', (w) => warnings.push(w.message));
    const kill = vi.spyOn(process, 'kill');
    try {
      for (const key of keys) {
        expect(e2.get(key)?.state).toBe('running'); // what the folder claims
        e2.stop(key);
        e2.kill(key);
      }
      const signalled = kill.mock.calls.filter(([, sig]) => sig !== 0 && sig !== undefined);
      expect(signalled).toEqual([]);
    } finally {
      kill.mockRestore();
    }
    expect(warnings.filter((w) => /not signalled .*no live worker of this run/.test(w))).toHaveLength(4);
    expect(() => process.kill(bystander.pid!, 0)).not.toThrow(); // still alive
    // Neither claim is taken for a live worker: attached, both runs end failed instead of "running" for ever.
    e2.attach();
    const done = await Promise.all(keys.map((k) => e2.wait(k)));
    expect(done.map((d) => d.state)).toEqual(['failed', 'failed']);
  });

  it('a new engine stops a worker that an earlier one launched (verified by its command line)', async () => {
    const { e } = engine({ FAKE_MODE: 'hold' });
    const info = e.createRun(config);
    const { hostname } = await import('node:os');
    for (;;) {
      const st = e.store.readStatus(info.key);
      if (st?.state === 'running' && st.host === hostname()) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    e.dispose(); // the window goes; the worker stays
    const { e: e2 } = engine({}, { root: e.root });
    expect(e2.attach().map((r) => r.key)).toEqual([info.key]);
    e2.stop(info.key);
    const done = await e2.wait(info.key);
    expect(done.state).toBe('stopped');
  });

  it('deletes an ended run (run-removed) and refuses a queued one', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '3' });
    const removed: string[] = [];
    e.on('run-removed', (k) => removed.push(k));
    const done = e.createRun(config);
    await e.wait(done.key);
    const queued = e.createRun(config, { experiment: done.experiment, start: false });
    expect(() => e.deleteRun(queued.key)).toThrow(/is queued: stop it before deleting it/);
    e.deleteRun(done.key);
    expect(removed).toEqual([done.key]);
    expect(e.get(done.key)).toBeUndefined();
    expect(e.runs(done.experiment).map((r) => r.key)).toEqual([queued.key]);
  });

  it('a run whose events cannot be read is an error, not an empty run', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '3' });
    const info = e.createRun(config);
    await e.wait(info.key);
    // A second engine (a reloaded window) reads the run from disk.
    const { e: later } = engine({}, { root: e.root });
    expect(later.snapshot(info.key).train).toHaveLength(3);
    const events = join(info.dir, 'events.jsonl');
    rmSync(events);
    mkdirSync(events); // reads fail with EISDIR, as they would with EACCES for a user without root
    // Not an exception out of snapshot() or comparison(): the run says why it shows nothing.
    const snap = later.snapshot(info.key);
    expect(snap.train).toEqual([]);
    expect(snap.info.state).toBe('damaged');
    expect(snap.info.damaged).toMatch(/^events\.jsonl cannot be read \(EISDIR/);
    const sibling = e.createRun(config, { experiment: info.experiment });
    await e.wait(sibling.key);
    const table = later.comparison(info.experiment);
    expect(table.rows.map((r) => [r.key, r.state, r.summary.steps])).toEqual([
      [info.key, 'damaged', 0],
      [sibling.key, 'completed', 3],
    ]);
    rmSync(events, { recursive: true });
    expect(later.snapshot(info.key).train).toEqual([]); // absent (a queued run's case) is just empty
    expect(later.snapshot(info.key).info.state).toBe('completed');
  });

  it('a watched run whose events.jsonl becomes unreadable is still settled when its worker dies; the failure is reported once', async () => {
    const { e } = engine({ FAKE_MODE: 'hold' });
    const info = e.createRun(config);
    await until(() => e.snapshot(info.key).train.length === 1); // the fake has written all it writes until a signal
    const events = join(info.dir, 'events.jsonl');
    rmSync(events);
    mkdirSync(events);
    const warnings: string[] = [];
    e.on('warning', (w) => warnings.push(w.message));
    await new Promise((r) => setTimeout(r, 150)); // several polls
    expect(e.snapshot(info.key).info.damaged).toMatch(/events\.jsonl cannot be read \(EISDIR/);
    process.kill(e.store.readStatus(info.key)!.pid!, 'SIGKILL');
    const done = await e.wait(info.key);
    expect(done.state).toBe('failed');
    expect(e.store.readStatus(info.key)?.state).toBe('failed'); // settled on disk, not left running
    expect(warnings.filter((w) => /EISDIR/.test(w))).toHaveLength(1);
  });

  it('a damaged run never enters the queue: start and resume refuse it with the reason; it can be deleted', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '3' });
    const info = e.createRun(config, { start: false });
    writeFileSync(join(info.dir, 'status.json'), '{"version": 1, "state": "queued", "updated_at": 1, "pid": "x"}');
    const damaged = e.get(info.key)!;
    expect(damaged.state).toBe('damaged');
    expect(() => e.start(info.key)).toThrow(/is damaged and is not started: status\.json: \/pid: "x" must be integer,null/);
    expect(() => e.resume(info.key)).toThrow(/is damaged and is not resumed/);
    expect(await e.wait(info.key)).toMatchObject({ state: 'damaged' }); // terminal: nothing to wait for
    const other = e.createRun(config, { experiment: info.experiment });
    expect((await e.wait(other.key)).state).toBe('completed'); // the queue is not blocked
    e.deleteRun(info.key);
    expect(e.get(info.key)).toBeUndefined();
  });

  it('a run launched here whose status.json gets damaged while it runs frees its slot once the worker exits', async () => {
    const { e } = engine({ FAKE_MODE: 'hold' });
    const info = e.createRun(config);
    await until(() => e.store.readStatus(info.key)?.state === 'running');
    const pid = e.store.readStatus(info.key)!.pid!;
    writeFileSync(join(info.dir, 'status.json'), 'garbage');
    process.kill(pid, 'SIGKILL');
    const done = await e.wait(info.key);
    expect(done.state).toBe('damaged');
    await e.idle();
  });
});

// ---------------------------------------------------------------------------------------------------
// One writer per run (issue 14 item 3): two windows start the same queued run; the worker's lock lets
// one of them run it, the other worker exits 75 (EXIT_BUSY) without writing. The losing engine must not write
// `failed` over the live run: it frees its slot and follows the winner.

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A worker of `dir` that this engine did not launch: another window's, in its own process group. */
describe('deleting next to a live process', () => {
  it('a run whose worker reported its end is deleted while the process still exits; a damaged run under a live worker is refused', async () => {
    const { e } = engine({ FAKE_MODE: 'complete', FAKE_STEPS: '2' });
    const done = e.createRun(config);
    await e.wait(done.key);
    // a process that is still a worker of this run directory (exiting, as under load): writes nothing
    const lingering = await otherWindowsWorker(done.dir, { FAKE_MODE: 'slow-start' });
    await until(() => liveWorkersOf(done.dir).includes(lingering.pid!));
    const damaged = e.createRun(config, { experiment: done.experiment, start: false });
    writeFileSync(join(damaged.dir, 'status.json'), '{"state": ');
    const other = await otherWindowsWorker(damaged.dir, { FAKE_MODE: 'slow-start' });
    await until(() => liveWorkersOf(damaged.dir).includes(other.pid!));
    expect(() => e.deleteRun(damaged.key)).toThrow(/has a live worker .*stop it before deleting the run/);
    e.deleteRun(done.key);
    expect(e.get(done.key)).toBeUndefined();
  });
});

async function otherWindowsWorker(dir: string, env: Record<string, string>) {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [FAKE, '-m', 'riemannlora.worker', 'run', '--config', join(dir, 'config.json'), '--run-dir', dir], {
    env: { ...process.env, FAKE_MODE: 'hold', ...env },
    detached: true,
    stdio: 'ignore',
  });
  cleanups.push(() => {
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return child;
}

describe('one writer per run', () => {
  it('losing the run directory (exit 75, EXIT_BUSY) while status.json names the live winner: no write, slot freed, the winner is followed', async () => {
    const { e } = engine({ FAKE_MODE: 'busy', FAKE_BUSY_AFTER_RUNNING: '1' }, { maxConcurrent: 1 });
    const info = e.createRun(config, { start: false });
    const states: string[] = [];
    const warnings: string[] = [];
    e.on('run-updated', (i) => states.push(i.state));
    e.on('warning', (w) => warnings.push(w.message));
    e.start(info.key); // our worker waits until the winner runs, then exits 75
    const winner = await otherWindowsWorker(info.dir, {});
    await e.idle(); // the slot is free although the run goes on
    const status = e.store.readStatus(info.key)!;
    expect(status).toMatchObject({ state: 'running', pid: winner.pid });
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`another worker \\(pid ${winner.pid}\\) already runs this run .*exited with code 75 without touching it`))]);
    await new Promise((r) => setTimeout(r, 150)); // more polls: still nothing written
    expect(e.store.readStatus(info.key)).toEqual(status);
    expect(e.get(info.key)?.state).toBe('running');
    expect(e.store.readCard(info.key)?.pgid).toBe(winner.pid); // not our dead group any more
    // Followed like an attached run: Stop reaches the verified winner, its end ends the run here.
    e.stop(info.key);
    const done = await e.wait(info.key);
    expect(done.state).toBe('stopped');
    expect(states).not.toContain('failed');
  });

  it('losing it before the winner wrote its status (status.json still queued): still no failed, the winner is followed', async () => {
    const { e } = engine({ FAKE_MODE: 'busy' });
    const info = e.createRun(config, { start: false });
    const states: string[] = [];
    e.on('run-updated', (i) => states.push(i.state));
    e.start(info.key); // launched: our worker exits 75 at once
    const winner = await otherWindowsWorker(info.dir, { FAKE_START_DELAY_MS: '1500' }); // alive, status not written yet
    await e.idle();
    expect(e.store.readStatus(info.key)?.state).toBe('queued');
    await until(() => e.get(info.key)?.state === 'running');
    expect(e.store.readStatus(info.key)?.pid).toBe(winner.pid);
    e.stop(info.key);
    expect((await e.wait(info.key)).state).toBe('stopped');
    expect(states).not.toContain('failed');
    // the losing worker wrote nothing into the winner's log (the engine's own launch line is all there is)
    expect(readFileSync(join(info.dir, 'worker.log'), 'utf8').split('\n').filter((l) => l && !l.startsWith('[engine]'))).toEqual([]);
  });

  it('a run already held by a live worker of another window is not launched again, only followed', async () => {
    const { e } = engine({ FAKE_MODE: 'complete' });
    const info = e.createRun(config, { start: false });
    const winner = await otherWindowsWorker(info.dir, { FAKE_START_DELAY_MS: '400' });
    await until(() => {
      try {
        return readFileSync(`/proc/${winner.pid}/cmdline`, 'utf8').includes('riemannlora.worker');
      } catch {
        return true; // no /proc: ps is used, nothing to wait for
      }
    });
    e.start(info.key);
    await e.idle();
    expect(existsSync(join(info.dir, 'worker.log'))).toBe(false); // nothing launched, nothing logged
    await until(() => e.get(info.key)?.state === 'running');
    e.stop(info.key);
    expect((await e.wait(info.key)).state).toBe('stopped');
  });

  it('our own worker that dies is still failed (the check looks for other workers, not for ours)', async () => {
    const { e } = engine({ FAKE_MODE: 'crash', FAKE_STEPS: '3' });
    const done = await e.wait(e.createRun(config).key);
    expect(done.state).toBe('failed');
  });
});

// ---------------------------------------------------------------------------------------------------
// Restricted Mode (issue 14, LOW): the engine of an untrusted workspace never writes to disk.

describe('read-only engine', () => {
  it('shows a dead worker as failed without writing, refuses every change, and records the verdict once writable', async () => {
    const { e } = engine({ FAKE_MODE: 'complete' });
    const info = e.createRun(config, { start: false });
    const { hostname } = await import('node:os');
    e.store.writeStatus(info.key, { version: 1, state: 'running', pid: 2 ** 30, host: hostname(), started_at: 1, updated_at: 2, step: 3 });
    e.dispose();
    const files = ['status.json', 'run.json', 'config.json', 'events.jsonl', 'worker.log'];
    const before = files.map((f) => (existsSync(join(info.dir, f)) ? readFileSync(join(info.dir, f), 'utf8') : null));
    const { e: ro } = engine({}, { root: e.root });
    ro.configure({ readOnly: true });
    expect(ro.attach().map((r) => r.key)).toEqual([info.key]);
    const done = await ro.wait(info.key);
    expect(done.state).toBe('failed');
    expect(done.last_error?.message).toMatch(/process is gone/);
    expect(ro.list().map((r) => r.state)).toEqual(['failed']);
    expect(ro.get(info.key)?.summary?.steps).toBe(0);
    expect(files.map((f) => (existsSync(join(info.dir, f)) ? readFileSync(join(info.dir, f), 'utf8') : null))).toEqual(before);
    expect(readdirSync(info.dir).sort()).toEqual(['config.json', 'run.json', 'status.json']);
    for (const change of [
      () => ro.createRun(config),
      () => ro.createComparison(config),
      () => ro.start(info.key),
      () => ro.resume(info.key),
      () => ro.deleteRun(info.key),
      () => ro.kill(info.key),
    ]) {
      expect(change).toThrow(ReadOnlyError);
    }
    // A fair comparison is refused before it creates its experiment.
    const experiments = ro.experiments().length;
    await expect(runFairComparison(ro, config, { methods: DEFAULT_METHODS, baseline: 'lora-adamw', settings: { trials: 2, seeds: 2 }, name: 'refused' })).rejects.toThrow(ReadOnlyError);
    expect(ro.experiments()).toHaveLength(experiments);
    expect(() => ro.resume(info.key)).toThrow(/read-only/);
    expect(ro.store.listAll()).toHaveLength(1); // nothing created
    ro.configure({ readOnly: false });
    expect(ro.store.readStatus(info.key)).toMatchObject({ state: 'failed', last_error: { kind: 'crashed' } });
    expect(ro.store.readCard(info.key)?.summary).toMatchObject({ steps: 0 });
  });

  it('a verdict held back is dropped when the worker writes a newer status meanwhile', async () => {
    const { e } = engine({});
    const info = e.createRun(config, { start: false });
    const { hostname } = await import('node:os');
    e.store.writeStatus(info.key, { version: 1, state: 'running', pid: 2 ** 30, host: hostname(), started_at: 1, updated_at: 2, step: 3 });
    const { e: ro } = engine({}, { root: e.root });
    ro.configure({ readOnly: true });
    ro.attach();
    expect((await ro.wait(info.key)).state).toBe('failed');
    e.store.writeStatus(info.key, { version: 1, state: 'completed', pid: null, host: hostname(), started_at: 1, updated_at: 9, step: 20, exit_code: 0 });
    expect(ro.get(info.key)?.state).toBe('completed');
    ro.configure({ readOnly: false });
    expect(ro.store.readStatus(info.key)?.state).toBe('completed');
  });

  it('Stop still reaches a verified worker in read-only mode', async () => {
    const { e } = engine({ FAKE_MODE: 'hold' });
    const info = e.createRun(config);
    await until(() => e.store.readStatus(info.key)?.state === 'running');
    e.dispose();
    const { e: ro } = engine({}, { root: e.root });
    ro.configure({ readOnly: true });
    ro.attach();
    ro.stop(info.key);
    expect((await ro.wait(info.key)).state).toBe('stopped');
  });
});

describe('summaries cached under the old names', () => {
  /** A completed run whose run.json holds a summary of an engine before the rename (final_loss: 9, not the curve's). */
  function oldRun(e: Engine) {
    const info = e.createRun(config, { start: false });
    e.store.writeStatus(info.key, { version: 1, state: 'completed', started_at: 1, ended_at: 5, updated_at: 5, step: 20, exit_code: 0 });
    const lines = [{ type: 'started', version: 1, time: 1, device: 'cpu', dtype: 'fp32', trainable_params: 1, total_params: 2, task: 't', method: 'm' }];
    for (let s = 1; s <= 20; s++) lines.push({ type: 'metric', version: 1, time: 1 + s / 10, step: s, split: 'train', loss: 1 / s } as never);
    lines.push({ type: 'finished', version: 1, time: 4, status: 'completed', summary: { steps: 20, final_loss: 0.05, best_loss: 0.05, wall_s: 3 } } as never);
    writeFileSync(join(info.dir, 'events.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const card = JSON.parse(readFileSync(join(info.dir, 'run.json'), 'utf8')) as Record<string, unknown>;
    card.summary = { steps: 20, final_loss: 9, best_loss: 9, best_eval: null, wall_s: 9, peak_memory_bytes: null, final_eval: null };
    writeFileSync(join(info.dir, 'run.json'), JSON.stringify(card));
    // window = 2 of 20 points: the mean of 1/19 and 1/20
    return { info, expected: (1 / 19 + 1 / 20) / 2 };
  }

  it('are recomputed from events.jsonl and rewritten under the new names', () => {
    const { e } = engine();
    const { info, expected } = oldRun(e);
    const got = e.get(info.key)!;
    expect(got.summary_stale).toBeUndefined();
    expect(got.summary?.final_loss_smoothed).toBeCloseTo(expected, 12);
    expect(got.summary).toMatchObject({ steps: 20, best_loss_smoothed: got.summary!.final_loss_smoothed, train_wall_s: expect.closeTo(3, 9) });
    const card = JSON.parse(readFileSync(join(info.dir, 'run.json'), 'utf8')) as { summary: Record<string, unknown> };
    expect(card.summary.final_loss_smoothed).toBeCloseTo(expected, 12);
    expect(card.summary).not.toHaveProperty('final_loss');
    expect(e.list()[0]!.summary?.final_loss_smoothed).toBeCloseTo(expected, 12);
  });

  it('a read-only engine shows the recomputed summary without writing, and records it once writable', () => {
    const { e } = engine();
    const { info, expected } = oldRun(e);
    const before = readFileSync(join(info.dir, 'run.json'), 'utf8');
    e.configure({ readOnly: true });
    expect(e.list()[0]!.summary?.final_loss_smoothed).toBeCloseTo(expected, 12);
    expect(readFileSync(join(info.dir, 'run.json'), 'utf8')).toBe(before);
    e.configure({ readOnly: false });
    expect(e.store.readCard(info.key)?.summary).toMatchObject({ final_loss_smoothed: expect.closeTo(expected, 12) });
  });

  it('without readable events the run shows no summary (never the stale numbers)', () => {
    const { e } = engine();
    const { info } = oldRun(e);
    rmSync(join(info.dir, 'events.jsonl'));
    expect(e.get(info.key)).toMatchObject({ summary: null, summary_stale: true, state: 'completed' });
  });
});
