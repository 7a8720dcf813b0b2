// The experiment engine: the one object the extension and the CLI drive (API in src/core/README.md).
//
// It owns a RunStore (disk), a RunQueue (max concurrent workers) and, for every run it is watching, an
// EventTailer + RunSeries. One timer polls the watched runs: new event lines become `metrics-appended`
// deltas (one per run per tick), status.json changes become `run-updated`, a process that is gone without
// reporting the end becomes `failed` with the tail of worker.log. The disk stays the source of truth:
// a new engine (a reloaded window) calls `attach()` and picks up runs that are still going.
//
// One writer per run: the engine writes a run's status.json only for a worker it launched itself. When its
// worker exits because another live worker holds the run directory (a second window started the same
// queued run; the worker's lock refuses the second one), it writes nothing, frees its queue slot and
// follows the other worker like an attached run.
//
// Read-only mode (an untrusted workspace): nothing is written to disk. Runs are still watched and a dead
// worker is still shown as failed, but that verdict is kept in memory (and written once the engine is
// made writable); creating, starting, resuming, deleting and killing runs are refused.
import { EventEmitter } from 'node:events';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { checkConfig } from './config';
import { compareRuns, DEFAULT_BASELINE, DEFAULT_METHODS, siblingConfig, summarizeEventsFile, summarizeRun, type Comparison, type MethodPreset } from './compare';
import { EventTailer, readAllEvents, type SkippedLine, type WorkerEvent } from './events';
import type { RunConfig } from './generated/run-config';
import type { RunStatus } from './generated/run-status';
import { isWorkerOf, launchWorker, liveWorkersOf, processGroupOf, signalWorker, workerAlive, type LaunchOptions, type LauncherKind } from './launcher';
import { RunQueue } from './queue';
import { isTerminal, pidAlive, reconcile, TransitionError, canResume } from './runState';
import { parseRunKey, RunStore, runKey, type ExperimentInfo, type RunInfo, type RunKey, type RunSummary } from './runStore';
import { RunSeries, type EvalPoint, type TrainPoint } from './series';

export interface EngineOptions {
  /** Folder that holds experiments and runs (created when missing). */
  root: string;
  /** Python interpreter of the worker environment. */
  python: string;
  /** Folder with the `riemannlora` package (the bundled native-worker/). */
  nativeWorkerDir: string;
  launcher?: LauncherKind;
  /** Processes per node with the torchrun launcher. */
  nproc?: number;
  /** Workers running at once (default 1). */
  maxConcurrent?: number;
  /** How often watched runs are polled, in ms (default 250). */
  pollIntervalMs?: number;
  /** Extra environment for workers. */
  env?: Record<string, string>;
  /**
   * Never write to disk (an untrusted workspace): runs are watched and verdicts shown, not recorded;
   * createRun, start, resume, deleteRun and kill throw ReadOnlyError. Stop still signals a verified worker.
   */
  readOnly?: boolean;
}

/** What a read-only engine refuses. */
export class ReadOnlyError extends Error {
  constructor(action: string) {
    super(`${action} is not possible: the engine is read-only (an untrusted workspace: trust it to change runs)`);
    this.name = 'ReadOnlyError';
  }
}

/** New points of one run since the last delta. `reset`: drop what you have and ask for a snapshot. */
export interface MetricsDelta {
  key: RunKey;
  train: TrainPoint[];
  eval: EvalPoint[];
  /** Non-metric events (started, init, checkpoint, log, error, finished) in file order. */
  events: WorkerEvent[];
  reset: boolean;
}

export interface RunSnapshot {
  info: RunInfo;
  config: RunConfig | undefined;
  train: TrainPoint[];
  eval: EvalPoint[];
  /** Non-metric events, the last 500. */
  events: WorkerEvent[];
  /** Lines of events.jsonl that were skipped (malformed), the last 50. */
  skipped: SkippedLine[];
  /** The tail of worker.log (failed runs show it). */
  logTail: string;
  /** Why events.jsonl could not be read (a directory, no permission); what could be read is above. */
  unreadable?: string;
}

export interface EngineEvents {
  'run-added': [RunInfo];
  'run-updated': [RunInfo];
  'metrics-appended': [MetricsDelta];
  'run-finished': [RunInfo];
  /** A run's directory was deleted through the engine. */
  'run-removed': [RunKey];
  /** Something the user may want to know that is not an error of the engine (e.g. a malformed event line). */
  warning: [{ key?: RunKey; message: string }];
}

interface Watched {
  key: RunKey;
  tailer: EventTailer;
  series: RunSeries;
  nonMetric: WorkerEvent[];
  skipped: SkippedLine[];
  /** Process group of a worker this engine launched (never one read from a run folder: see signal()). */
  pgid?: number;
  /** Set once the launched process exited. */
  exit?: { exitCode: number | null; signal: string | null; error?: string };
  /** The status.json pid once its command line showed it to be this run's worker (checked once, not per tick). */
  verifiedPid?: number;
  /** The last polling failure reported (the same one is not reported again every tick). */
  pollError?: string;
  lastStatusText?: string;
  waiters: ((info: RunInfo) => void)[];
  /** Resolves the queue job when the run is over. */
  release?: () => void;
  finished: boolean;
  /** stop() was called for the current launch. */
  stopRequested?: boolean;
  /** Pid of another live worker of this run that this engine follows (its own launch lost the run directory). */
  following?: number;
}

/** A verdict a read-only engine shows but does not write: the status it was drawn from, and the result. */
interface HeldVerdict {
  basis: string;
  status: RunStatus;
}

const statusBasis = (s: RunStatus | undefined) => (s ? `${s.state}|${s.pid ?? ''}|${s.step ?? 0}|${s.updated_at}` : '');

const NON_METRIC_KEEP = 500;

/**
 * A worker killed in the middle of writing leaves a line without its newline; the next worker (--resume)
 * appends to the same file, so the file gets its newline first and the cut line stays a line of its own.
 */
function endWithNewline(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return;
  }
  try {
    const size = fstatSync(fd).size;
    if (!size) return;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    if (last[0] !== 0x0a) writeSync(fd, '\n', size);
  } finally {
    closeSync(fd);
  }
}

export class Engine extends EventEmitter<EngineEvents> {
  readonly store: RunStore;
  private readonly queue: RunQueue;
  private readonly watched = new Map<RunKey, Watched>();
  private timer: NodeJS.Timeout | undefined;
  private opts: EngineOptions;
  private disposed = false;
  /** Read-only mode: verdicts (a dead worker is failed) and summaries not written to disk. */
  private readonly held = new Map<RunKey, HeldVerdict>();
  private readonly heldSummaries = new Map<RunKey, RunSummary>();

  constructor(opts: EngineOptions) {
    super();
    this.opts = { ...opts };
    this.store = new RunStore(opts.root);
    this.queue = new RunQueue(opts.maxConcurrent ?? 1);
  }

  /**
   * Changes launch settings for runs started from now on (python, launcher, nproc, env, maxConcurrent),
   * and read-only mode: leaving it writes the verdicts it held back (for runs whose status.json has not
   * changed since).
   */
  /** Workers at once. */
  get maxConcurrent(): number {
    return this.queue.maxConcurrent;
  }

  configure(change: Partial<Omit<EngineOptions, 'root'>>): void {
    const wasReadOnly = !!this.opts.readOnly;
    this.opts = { ...this.opts, ...change };
    if (change.maxConcurrent !== undefined) this.queue.setMaxConcurrent(change.maxConcurrent);
    if (wasReadOnly && !this.opts.readOnly) this.writeHeld();
  }

  get readOnly(): boolean {
    return !!this.opts.readOnly;
  }

  private assertWritable(action: string): void {
    if (this.opts.readOnly) throw new ReadOnlyError(action);
  }

  private writeHeld(): void {
    for (const [key, v] of this.held) {
      try {
        if (statusBasis(this.store.readStatus(key)) === v.basis) this.store.writeStatus(key, v.status);
      } catch (err) {
        this.emit('warning', { key, message: `cannot record the run's state: ${(err as Error).message}` });
      }
    }
    for (const [key, summary] of this.heldSummaries) {
      try {
        this.store.updateCard(key, (c) => (c.summary = summary));
      } catch (err) {
        this.emit('warning', { key, message: `cannot cache the run summary: ${(err as Error).message}` });
      }
    }
    this.held.clear();
    this.heldSummaries.clear();
  }

  /** A run as this engine sees it: the disk, plus verdicts and summaries a read-only engine holds back. */
  private view(info: RunInfo): RunInfo {
    const held = this.held.get(info.key);
    const summary = this.heldSummaries.get(info.key);
    let out = info;
    if (held) {
      if (statusBasis(this.store.readStatus(info.key)) === held.basis) out = RunStore.withStatus(out, held.status);
      else this.held.delete(info.key); // the worker (or someone) wrote a newer status
    }
    const fresh = summary ?? (out.summary_stale ? this.recomputeStale(out) : undefined);
    if (fresh && !out.summary) {
      const { summary_stale: _stale, ...rest } = out;
      out = { ...rest, summary: fresh };
    }
    return out;
  }

  /**
   * A summary cached under the old names (runStore.ts isStaleSummary) is recomputed from events.jsonl
   * once, for a run that has ended, and cached like a new one (held while read-only). undefined when
   * the events cannot be read: the run shows no summary then.
   */
  private recomputeStale(info: RunInfo): RunSummary | undefined {
    if (!isTerminal(info.state) || info.state === 'damaged' || this.watched.get(info.key)?.finished === false) return undefined;
    const summary = summarizeEventsFile(this.store.eventsPath(info.key));
    if (!summary) return undefined;
    if (this.opts.readOnly) {
      this.heldSummaries.set(info.key, summary);
      return summary;
    }
    try {
      this.store.updateCard(info.key, (c) => (c.summary = summary));
    } catch (err) {
      this.heldSummaries.set(info.key, summary);
      this.emit('warning', { key: info.key, message: `cannot cache the run summary: ${(err as Error).message}` });
    }
    return summary;
  }

  get root(): string {
    return this.store.root;
  }

  // ---------------------------------------------------------------------------------------------------
  // Creating and controlling runs

  /** Creates a queued run (validating the config) and starts it when a slot is free. */
  createRun(config: RunConfig, opts: { experiment?: string; run?: string; label?: string; start?: boolean } = {}): RunInfo {
    this.assertWritable('creating a run');
    const valid = checkConfig(config);
    const experiment = opts.experiment ?? this.store.createExperiment({ name: valid.name ?? valid.task.kind, kind: 'single' }).id;
    const run = opts.run ?? RunStore.newId(`${valid.method.optimizer}-${valid.method.init}`);
    const info = this.store.createRun(experiment, run, valid, opts.label);
    this.emit('run-added', info);
    if (opts.start ?? true) this.start(info.key);
    return info;
  }

  /**
   * A comparison: one experiment with a sibling run per method (same task, adapter and budget; each
   * optimizer's own default learning rate). The baseline's final loss (smoothed) is the target of "steps to target".
   */
  createComparison(
    base: RunConfig,
    opts: { methods?: readonly MethodPreset[]; baseline?: string; name?: string; experiment?: string; start?: boolean } = {},
  ): { experiment: ExperimentInfo; runs: RunInfo[] } {
    this.assertWritable('creating a comparison');
    const methods = opts.methods ?? DEFAULT_METHODS;
    const configs = methods.map((m) => siblingConfig(base, m)); // validate all before creating anything
    const name = opts.name ?? `${base.name ?? base.task.kind} comparison`;
    const exp = this.store.createExperiment({ id: opts.experiment, name, kind: 'compare' });
    const baselineId = opts.baseline ?? (methods.some((m) => m.id === DEFAULT_BASELINE) ? DEFAULT_BASELINE : methods[0]?.id);
    const runs = methods.map((m, i) => this.createRun(configs[i]!, { experiment: exp.id, run: m.id, label: m.label, start: opts.start }));
    const experiment = this.store.updateExperiment(exp.id, (doc) => {
      if (baselineId) doc.baseline = baselineId;
    });
    return { experiment, runs };
  }

  /** Queues a run that is in state `queued` (e.g. created with start: false, or found queued on disk). */
  start(key: RunKey): void {
    this.assertWritable('starting a run');
    const info = this.mustGet(key);
    if (info.state === 'damaged') throw new Error(`${info.label} (${key}) is damaged and is not started: ${info.damaged}`);
    if (info.state !== 'queued') throw new TransitionError(info.state, 'running');
    if (this.queue.has(key)) return;
    this.watch(key);
    this.queue.enqueue(key, () => this.execute(key, false));
  }

  /** Continues a stopped or failed run from its last checkpoint (the worker's --resume). */
  resume(key: RunKey): RunInfo {
    this.assertWritable('resuming a run');
    const info = this.mustGet(key);
    if (info.state === 'damaged') throw new Error(`${info.label} (${key}) is damaged and is not resumed: ${info.damaged}`);
    if (!canResume(info.state)) throw new TransitionError(info.state, 'queued');
    const status = this.store.readStatus(key);
    this.store.writeStatus(key, { ...(status ?? { version: 1, updated_at: 0 }), state: 'queued', updated_at: Date.now() / 1000, ended_at: null, exit_code: null, last_error: null });
    const w = this.watch(key);
    w.finished = false;
    w.exit = undefined;
    const updated = this.mustGet(key);
    this.emit('run-updated', updated);
    this.queue.enqueue(key, () => this.execute(key, true));
    return updated;
  }

  /**
   * Asks a run to stop: a queued run is cancelled at once (state stopped); a running worker gets SIGINT
   * (to its process group), checkpoints and reports `finished: stopped`.
   */
  stop(key: RunKey): void {
    const info = this.mustGet(key);
    if (info.state === 'queued' && this.queue.has(key) && !this.queue.isRunning(key)) this.assertWritable('cancelling a queued run');
    if (info.state === 'queued' && this.queue.cancel(key)) {
      const status = this.store.readStatus(key);
      this.store.writeStatus(key, { ...(status ?? { version: 1, updated_at: 0 }), state: 'stopped', updated_at: Date.now() / 1000, ended_at: Date.now() / 1000 });
      void this.finish(key);
      return;
    }
    if (info.state !== 'running' && info.state !== 'queued') return;
    const w = this.watched.get(key);
    if (w) w.stopRequested = true;
    this.signal(key, info, 'SIGINT');
  }

  /** Kills a running worker at once (SIGKILL to its process group); the run becomes failed. A queued run is cancelled. */
  kill(key: RunKey): void {
    this.assertWritable('killing a run');
    const info = this.mustGet(key);
    if (info.state === 'queued' && this.queue.has(key) && !this.queue.isRunning(key)) {
      this.stop(key);
      return;
    }
    this.signal(key, info, 'SIGKILL');
  }

  /**
   * Signals the run's worker, and only it: the process group this engine launched while it runs; else
   * (a worker of an earlier window or of the CLI) the group or pid that the run folder names, once the
   * process is verified to be this run's worker by its command line (launcher.ts isWorkerOf). A run
   * folder is data that anyone can write: a pgid of 1 or a reused pid must not turn Stop into a signal
   * to unrelated processes. Returns whether a signal was sent.
   */
  private signal(key: RunKey, info: RunInfo, sig: NodeJS.Signals): boolean {
    const w = this.watched.get(key);
    if (w?.pgid && w.exit === undefined) return signalWorker(w.pgid, undefined, sig);
    const dir = this.store.runDir(key);
    const pgid = this.store.readCard(key)?.pgid;
    const target = { pgid: isWorkerOf(pgid, dir) ? pgid : undefined, pid: isWorkerOf(info.pid, dir) ? info.pid : undefined };
    if (!target.pgid && !target.pid) {
      this.emit('warning', { key, message: `not signalled (${sig}): no live worker of this run found (the pid in its folder is not a riemannlora worker of ${dir})` });
      return false;
    }
    return signalWorker(target.pgid, target.pid, sig);
  }

  /** Deletes an ended run (its directory and its place in the experiment); a queued or running one is refused. */
  deleteRun(key: RunKey): void {
    this.assertWritable('deleting a run');
    const info = this.mustGet(key);
    if (info.state === 'running' || info.state === 'queued' || this.queue.has(key)) {
      throw new Error(`${info.label} (${key}) is ${info.state}: stop it before deleting it`);
    }
    // A damaged run's status cannot say whether a worker is on it: never delete one under a live worker.
    // (A run whose worker reported its end may still have the process exiting: that one writes nothing
    // more, and deleting must not wait for its teardown.)
    const live = info.state === 'damaged' ? liveWorkersOf(this.store.runDir(key)) : [];
    if (live.length) throw new Error(`${info.label} (${key}) has a live worker (pid ${live.join(', ')}): stop it before deleting the run`);
    this.watched.delete(key);
    this.held.delete(key);
    this.heldSummaries.delete(key);
    this.store.deleteRun(key);
    this.emit('run-removed', key);
  }

  /** Resolves with the run's info once it has ended (at once when it already has and nothing is pending). */
  wait(key: RunKey): Promise<RunInfo> {
    const info = this.mustGet(key);
    const w = this.watched.get(key);
    if (!w && isTerminal(info.state)) return Promise.resolve(info);
    if (w?.finished && isTerminal(info.state)) return this.queue.whenFreed(key).then(() => this.mustGet(key));
    return new Promise((resolve) => this.watch(key).waiters.push(resolve));
  }

  /** Resolves once no run is queued or running in this engine. */
  idle(): Promise<void> {
    return this.queue.onIdle();
  }

  // ---------------------------------------------------------------------------------------------------
  // Reading

  list(): RunInfo[] {
    return this.store.listAll().map((i) => this.view(i));
  }

  experiments(): ExperimentInfo[] {
    return this.store.listExperiments();
  }

  runs(experiment: string): RunInfo[] {
    return this.store.listRuns(experiment).map((i) => this.view(i));
  }

  get(key: RunKey): RunInfo | undefined {
    const info = this.store.getRun(key);
    return info && this.view(info);
  }

  /**
   * Everything a view needs to draw a run from scratch; deltas follow as `metrics-appended`. A run whose
   * events.jsonl cannot be read (a directory, no permission) comes back with what could be read, and
   * `info.damaged` saying why (state `damaged` unless it is running).
   */
  snapshot(key: RunKey): RunSnapshot {
    const info = this.mustGet(key);
    const w = this.watched.get(key);
    let series: RunSeries;
    let nonMetric: WorkerEvent[];
    let skipped: SkippedLine[];
    let unreadable: string | undefined;
    if (w) {
      try {
        this.pollRun(w);
      } catch (err) {
        unreadable = (err as Error).message;
      }
      ({ series, nonMetric, skipped } = w);
    } else {
      const all = this.readEvents(key);
      unreadable = all.error;
      series = new RunSeries();
      series.add(all.events);
      nonMetric = all.events.filter((e) => e.type !== 'metric' && e.type !== 'eval').slice(-NON_METRIC_KEEP);
      skipped = all.skipped;
    }
    let shown = this.get(key) ?? info;
    if (unreadable) shown = withProblem(shown, unreadable);
    return {
      info: shown,
      config: this.store.readConfig(key),
      train: [...series.train],
      eval: series.eval.map((e) => ({ ...e, metrics: { ...e.metrics } })),
      events: [...nonMetric],
      skipped: skipped.slice(-50),
      logTail: this.store.logTail(key, 40),
      ...(unreadable ? { unreadable } : {}),
    };
  }

  /** A run's curves (the watched series, else read from its events) and its state as shown. */
  series(key: RunKey): { series: RunSeries; state: RunInfo['state'] } {
    const r = this.mustGet(key);
    const w = this.watched.get(key);
    if (w) return { series: w.series, state: r.state };
    const series = new RunSeries();
    const all = this.readEvents(key);
    series.add(all.events);
    return { series, state: all.error ? withProblem(r, all.error).state : r.state };
  }

  /** The summary table of an experiment's runs, measured against its baseline (compare.ts). */
  comparison(experiment: string): Comparison {
    const exp = this.store.getExperiment(experiment);
    const runs = this.store.listRuns(experiment);
    const compared = runs.map((r) => ({ key: r.key, label: r.label, method: r.method, ...this.series(r.key) }));
    const baseline = exp?.baseline ? runKey(experiment, exp.baseline) : null;
    return compareRuns(compared, baseline);
  }

  // ---------------------------------------------------------------------------------------------------
  // Re-attaching after a reload

  /**
   * Watches every run on disk that says it is running (started by an earlier engine or window): its
   * events are tailed and a dead process is reported as failed. Returns the runs picked up.
   */
  attach(): RunInfo[] {
    const picked: RunInfo[] = [];
    for (const info of this.list()) {
      if (info.state !== 'running') continue;
      const old = this.watched.get(info.key);
      if (old && !old.finished) continue;
      // Ended here, running again (resumed by another window or a terminal): follow it from the start.
      if (old) this.watched.delete(info.key);
      this.watch(info.key);
      picked.push(info);
    }
    if (picked.length) this.ensureTimer();
    for (const info of picked) this.pollRun(this.watched.get(info.key)!);
    return picked;
  }

  /** Stops polling. Workers keep running (they are detached); a new engine can attach to them. */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------------
  // Internals

  private mustGet(key: RunKey): RunInfo {
    const info = this.get(key);
    if (!info) throw new Error(`no run ${key} in ${this.store.root}`);
    return info;
  }

  /** All events of a run not watched; a file that cannot be read gives what there is and the reason. */
  private readEvents(key: RunKey): ReturnType<typeof readAllEvents> & { error?: string } {
    try {
      return readAllEvents(this.store.eventsPath(key));
    } catch (err) {
      return { events: [], skipped: [], error: eventsProblem(err) };
    }
  }

  private watch(key: RunKey): Watched {
    let w = this.watched.get(key);
    if (!w) {
      w = { key, tailer: new EventTailer(this.store.eventsPath(key)), series: new RunSeries(), nonMetric: [], skipped: [], waiters: [], finished: false };
      this.watched.set(key, w);
    }
    // (Re)start polling: the timer stops when every watched run has finished, and a resume revives one.
    this.ensureTimer();
    return w;
  }

  private ensureTimer(): void {
    if (this.timer || this.disposed) return;
    this.timer = setInterval(() => this.tick(), this.opts.pollIntervalMs ?? 250);
  }

  private tick(): void {
    for (const w of this.watched.values()) {
      if (!w.finished) this.safePoll(w);
    }
    if (![...this.watched.values()].some((w) => !w.finished) && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** The queue job of one run: launch, wait for the process to exit, settle the state. */
  private async execute(key: RunKey, resume: boolean): Promise<void> {
    const w = this.watch(key);
    w.stopRequested = false;
    const dir = this.store.runDir(key);
    const done = new Promise<void>((resolve) => (w.release = resolve));
    // Another window (or a terminal) already runs it: follow that worker instead of racing it (the
    // worker's lock settles the race that this check cannot see).
    const busy = liveWorkersOf(dir);
    if (busy.length) {
      this.follow(w, busy[0]!, this.store.readStatus(key)?.pid);
      await done;
      return;
    }
    try {
      endWithNewline(this.store.eventsPath(key));
      const worker = await launchWorker(
        {
          python: this.opts.python,
          nativeWorkerDir: this.opts.nativeWorkerDir,
          launcher: this.opts.launcher,
          nproc: this.opts.nproc,
          env: this.opts.env,
        } satisfies LaunchOptions,
        { runDir: dir, configPath: join(dir, 'config.json'), resume },
      );
      w.pgid = worker.pid;
      this.store.updateCard(key, (c) => (c.pgid = worker.pid));
      void worker.exited.then((exit) => {
        w.exit = exit;
        this.safePoll(w);
      });
    } catch (err) {
      w.exit = { exitCode: null, signal: null, error: (err as Error).message };
    }
    this.safePoll(w);
    await done;
  }

  /** pollRun that never throws; once the process has exited, a failure to settle still ends the run. */
  private safePoll(w: Watched): void {
    try {
      this.pollRun(w);
      w.pollError = undefined;
    } catch (err) {
      // Once per distinct failure: an unreadable events.jsonl fails every tick (250 ms) until it is fixed.
      const message = `polling failed: ${(err as Error).message}`;
      if (message !== w.pollError) this.emit('warning', { key: w.key, message });
      w.pollError = message;
      if (w.exit !== undefined) void this.finish(w.key);
    }
  }

  /** Reads new events and the status of one watched run and emits what changed. */
  private pollRun(w: Watched): void {
    if (w.finished) return;
    const exited = w.exit !== undefined;
    // An unreadable events.jsonl must not keep the run's state from being settled: read the status
    // anyway, and report the events afterwards.
    let readError: string | undefined;
    let chunk: ReturnType<EventTailer['read']>;
    try {
      chunk = exited ? w.tailer.finish() : w.tailer.read();
    } catch (err) {
      readError = eventsProblem(err);
      chunk = { events: [], skipped: [] };
    }
    this.settle(w, exited, chunk);
    if (readError) throw new Error(readError);
  }

  private settle(w: Watched, exited: boolean, chunk: ReturnType<EventTailer['read']>): void {
    if (chunk.skipped.length) {
      w.skipped.push(...chunk.skipped);
      if (w.skipped.length > 200) w.skipped.splice(0, w.skipped.length - 200);
      for (const s of chunk.skipped) this.emit('warning', { key: w.key, message: `events.jsonl line ${s.line} skipped: ${s.reason}` });
    }
    if (chunk.events.length) {
      const appended = w.series.add(chunk.events);
      const others = chunk.events.filter((e) => e.type !== 'metric' && e.type !== 'eval');
      w.nonMetric.push(...others);
      if (w.nonMetric.length > NON_METRIC_KEEP) w.nonMetric.splice(0, w.nonMetric.length - NON_METRIC_KEEP);
      this.emit('metrics-appended', { key: w.key, train: appended.train, eval: appended.eval, events: others, reset: appended.reset });
    }

    let status = this.store.readStatus(w.key);
    if (!status) {
      // status.json is damaged (or gone). A worker of ours still running rewrites it at its next state
      // change; otherwise the run is over for the queue: it is listed as damaged, with the reason.
      if (w.release !== undefined && !exited) return;
      const owner = exited && w.pgid !== undefined ? this.foreignOwner(w, null) : undefined;
      if (owner !== undefined) this.follow(w, owner, null);
      else {
        const info = this.get(w.key);
        if (info) this.emit('run-updated', info);
        void this.finish(w.key);
      }
      return;
    }
    if (exited && w.pgid !== undefined && (status.state === 'running' || status.state === 'queued')) {
      // Our worker is gone but the run is not over: is another live worker (not ours) writing this run?
      const owner = this.foreignOwner(w, status.pid);
      if (owner !== undefined) {
        this.follow(w, owner, status.pid);
        return;
      }
    }
    if (w.following !== undefined && status.state === 'queued' && !pidAlive(w.following)) {
      // The worker we followed is gone before it wrote a word: its own engine settles the run.
      this.emit('warning', { key: w.key, message: `the other worker of this run (pid ${w.following}) is gone before it started; the run stays queued` });
      void this.finish(w.key);
      return;
    }
    const basis = statusBasis(status); // of the document on disk
    const held = this.held.get(w.key);
    if (held && basis === held.basis) status = held.status; // read-only: what we showed
    // A worker that exited before writing its own status (cannot start Python, import error) is "running"
    // from the engine's point of view: it was launched.
    if (exited && status.state === 'queued') status = { ...status, state: 'running' };
    const verdict = reconcile({
      status,
      finished: w.series.finished?.status,
      pidAlive: status.pid ? this.isWorkerAlive(w, status.pid, exited) : undefined,
      sameHost: !status.host || status.host === hostname(),
      exitCode: exited ? (w.exit!.exitCode ?? null) : undefined,
      logTail: () => [w.exit?.error ? `[engine] ${w.exit.error}` : '', this.store.logTail(w.key, 20)].filter(Boolean).join('\n'),
    });
    if (verdict.write && verdict.state === 'failed' && w.stopRequested && (w.exit?.exitCode === 130 || w.exit?.signal === 'SIGINT')) {
      // Stopped before the worker could handle the interrupt (still starting up): a stop, not a failure.
      verdict.state = 'stopped';
      verdict.write = {
        ...verdict.write,
        state: 'stopped',
        last_error: { kind: 'interrupted', message: 'stopped while the worker was starting, before its first checkpoint', hint: 'resume starts it again from the beginning' },
      };
    }
    if (verdict.write) {
      status = verdict.write;
      // Read-only: shown (list, get, run-updated), recorded once the engine may write.
      if (this.opts.readOnly) this.held.set(w.key, { basis, status });
      else this.store.writeStatus(w.key, status);
    }
    const text = `${status.state}|${status.step ?? 0}|${status.pid ?? ''}|${status.updated_at}`;
    const changed = text !== w.lastStatusText;
    w.lastStatusText = text;
    if (changed) {
      const info = this.get(w.key);
      if (info) this.emit('run-updated', info);
    }
    // Over when the state is terminal and, for a worker we launched, the process has exited (so the
    // queue slot is free only when the CPU is).
    const launchedHere = w.release !== undefined;
    if (isTerminal(status.state) && (!launchedHere || exited)) void this.finish(w.key);
  }

  /**
   * Another live worker of this run that this engine did not launch: the status' pid, or any process
   * whose command line runs a worker of this run directory, outside the process group we launched (a
   * torchrun rank of ours is ours). undefined when there is none.
   */
  private foreignOwner(w: Watched, statusPid: number | null | undefined): number | undefined {
    const dir = this.store.runDir(w.key);
    const ours = (pid: number) => pid === w.pgid || processGroupOf(pid) === w.pgid;
    if (statusPid && statusPid !== w.pgid && isWorkerOf(statusPid, dir) && !ours(statusPid)) return statusPid;
    return liveWorkersOf(dir).find((pid) => !ours(pid));
  }

  /**
   * Our launch lost the run directory to another live worker: write nothing, free the queue slot and
   * follow the other worker as an attached run (its own engine, or its end, settles the run).
   */
  private follow(w: Watched, owner: number, statusPid: number | null | undefined): void {
    const launched = w.pgid;
    const code = w.exit?.exitCode;
    w.pgid = undefined;
    w.exit = undefined;
    w.following = owner;
    w.verifiedPid = statusPid === owner ? owner : undefined;
    w.lastStatusText = undefined;
    if (!this.opts.readOnly && launched !== undefined) {
      try {
        // run.json named our (dead) process group: name the owner's instead, or none.
        this.store.updateCard(w.key, (c) => {
          if (c.pgid !== launched) return;
          const group = processGroupOf(owner);
          if (group && group > 1) c.pgid = group;
          else delete c.pgid;
        });
      } catch {
        /* the card is only an index */
      }
    }
    this.emit('warning', {
      key: w.key,
      message:
        launched === undefined
          ? `another worker (pid ${owner}) already runs this run (started by another window or a terminal): not launched again; following it`
          : `another worker (pid ${owner}) already runs this run (started by another window or a terminal): this engine's worker exited${code === null || code === undefined ? '' : ` with code ${code}`} without touching it; following the other one`,
    });
    const release = w.release;
    w.release = undefined;
    release?.();
    const info = this.get(w.key);
    if (info) this.emit('run-updated', info);
  }

  /**
   * A worker launched here is alive until it exits; any other pid only if it is this run's worker (its
   * command line, read once per pid: a reused pid of an unrelated process counts as dead).
   */
  private isWorkerAlive(w: Watched, pid: number, exited: boolean): boolean {
    if (w.pgid !== undefined && !exited) return true;
    if (w.verifiedPid === pid) return pidAlive(pid);
    const alive = workerAlive(pid, this.store.runDir(w.key));
    if (alive) w.verifiedPid = pid;
    return alive;
  }

  private async finish(key: RunKey): Promise<void> {
    const w = this.watch(key);
    if (w.finished) return;
    w.finished = true;
    try {
      const summary = summarizeRun(w.series);
      if (this.opts.readOnly) this.heldSummaries.set(key, summary);
      else this.store.updateCard(key, (c) => (c.summary = summary));
    } catch (err) {
      // e.g. the run folder was deleted under us: the run still ends and frees its slot
      this.emit('warning', { key, message: `cannot cache the run summary: ${(err as Error).message}` });
    }
    const release = w.release;
    w.release = undefined;
    release?.();
    // Waiters hear of the end once the queue slot is free, so they may resume the run at once.
    await this.queue.whenFreed(key);
    const info = this.get(key);
    if (info) this.emit('run-finished', info);
    const waiters = w.waiters;
    w.waiters = [];
    const { experiment, run } = parseRunKey(key);
    const gone: RunInfo = {
      key, experiment, run, dir: '', label: run, method: 'unknown', task: 'unknown', state: 'failed', step: 0, steps: 0, pid: null, host: null,
      created_at: 0, started_at: null, ended_at: null, exit_code: null, last_error: { kind: 'missing-path', message: `the run folder of ${key} is gone` }, summary: null, damaged: null,
    };
    for (const resolve of waiters) resolve(info ?? gone);
  }
}

/** The reason events.jsonl cannot be read, e.g. "events.jsonl cannot be read (EISDIR: …)". */
function eventsProblem(err: unknown): string {
  return `events.jsonl cannot be read (${(err as Error).message})`;
}

/** A run shown with a problem found while reading it (its events): damaged unless a worker is still on it. */
function withProblem(info: RunInfo, problem: string): RunInfo {
  const damaged = info.damaged ? `${info.damaged}; ${problem}` : problem;
  if (info.state === 'running') return { ...info, damaged };
  return { ...info, state: 'damaged', damaged, last_error: { kind: 'damaged', message: damaged, hint: 'repair or delete the file (or delete the run)' } };
}

export type { RunInfo, RunKey, ExperimentInfo } from './runStore';
export type { TrainPoint, EvalPoint } from './series';
export type { RunStatus };
