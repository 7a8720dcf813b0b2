// The run store (DESIGN.md "Run directory"): experiments and runs on disk under one root.
//
//   <root>/<experiment>/experiment.json   name, kind (single | compare), baseline run, run order
//   <root>/<experiment>/<run>/            the run directory the worker writes:
//       config.json  events.jsonl  status.json  worker.log  checkpoints/  adapter/
//       run.json                          the engine's small index card: label, method, planned steps,
//                                         and a cached summary once the run has ended
//
// Listing reads experiment.json, status.json and run.json only (never events.jsonl), so a root with
// thousands of runs lists quickly. Ids are validated and every path is checked to stay inside the root.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, fstatSync, readSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { RunConfig } from './generated/run-config';
import type { RunStatus } from './generated/run-status';
import type { RunState } from './runState';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export function assertId(kind: 'experiment' | 'run', id: string): void {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new StoreError(
      `invalid ${kind} id ${JSON.stringify(id)}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** A run's key across the store: "<experiment>/<run>". */
export type RunKey = string;
export const runKey = (experiment: string, run: string): RunKey => `${experiment}/${run}`;
export function parseRunKey(key: RunKey): { experiment: string; run: string } {
  const i = key.indexOf('/');
  const experiment = i < 0 ? '' : key.slice(0, i);
  const run = i < 0 ? '' : key.slice(i + 1);
  assertId('experiment', experiment);
  assertId('run', run);
  return { experiment, run };
}

/** Cached end-of-run numbers (see compare.ts `summarizeRun`). */
export interface RunSummary {
  /** Last step reached. */
  steps: number;
  final_loss: number | null;
  best_loss: number | null;
  /** Name and value of the headline eval metric, when the run evaluated. */
  best_eval: { name: string; value: number; step: number } | null;
  wall_s: number | null;
  peak_memory_bytes: number | null;
  /** Every eval metric at the last evaluation. */
  final_eval: Record<string, number | null> | null;
  /** The learning rate the worker used (absent in summaries cached before it was recorded). */
  lr?: number | null;
}

export interface RunCard {
  version: 1;
  label: string;
  /** "optimizer+init", e.g. "riemannion+loi". */
  method: string;
  task: string;
  /** Planned steps (train.steps). */
  steps: number;
  created_at: number;
  summary?: RunSummary | null;
  /** Process group of the last worker the engine launched (stop/kill signal the whole group). */
  pgid?: number;
}

export interface ExperimentDoc {
  version: 1;
  id: string;
  name: string;
  kind: 'single' | 'compare';
  created_at: number;
  /** Compare experiments: the run the others are measured against. */
  baseline?: string;
  /** Runs in creation order (the store also finds runs not listed here). */
  runs: string[];
}

export interface RunInfo {
  key: RunKey;
  experiment: string;
  run: string;
  dir: string;
  label: string;
  method: string;
  task: string;
  state: RunState;
  /** Last step the worker reported in status.json. */
  step: number;
  /** Planned steps. */
  steps: number;
  pid: number | null;
  host: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  exit_code: number | null;
  last_error: RunStatus['last_error'] | null;
  summary: RunSummary | null;
}

export interface ExperimentInfo extends ExperimentDoc {
  dir: string;
}

/** Writes JSON atomically (temp file + rename), so readers see the old or the new document. */
export function writeJsonAtomic(path: string, doc: unknown): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(tmp, path);
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The last `maxBytes` of a file as text (whole lines), '' when absent. */
export function readTail(path: string, maxLines = 30, maxBytes = 16384): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    let lines = buf.toString('utf8').split('\n');
    if (len < size) lines = lines.slice(1); // first line is cut
    while (lines.length && !lines[lines.length - 1]!.trim()) lines.pop();
    return lines.slice(-maxLines).join('\n');
  } finally {
    closeSync(fd);
  }
}

const now = () => Date.now() / 1000;

export class RunStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The path of a run or experiment directory, refusing anything that would leave the root. */
  path(experiment: string, run?: string): string {
    assertId('experiment', experiment);
    if (run !== undefined) assertId('run', run);
    const p = run === undefined ? join(this.root, experiment) : join(this.root, experiment, run);
    const rel = relative(this.root, p);
    if (!rel || rel.startsWith('..') || isAbsolute(rel)) throw new StoreError(`path ${p} is outside the runs root ${this.root}`);
    return p;
  }

  runDir(key: RunKey): string {
    const { experiment, run } = parseRunKey(key);
    return this.path(experiment, run);
  }

  /** A fresh id: a sortable UTC time stamp, a slug of `hint` and a random suffix. */
  static newId(hint = ''): string {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const slug = hint
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[-._]+|[-._]+$/g, '')
      .slice(0, 60);
    return `${stamp}${slug ? `-${slug}` : ''}-${randomBytes(2).toString('hex')}`;
  }

  createExperiment(opts: { id?: string; name: string; kind: ExperimentDoc['kind'] }): ExperimentInfo {
    const id = opts.id ?? RunStore.newId(opts.name);
    const dir = this.path(id);
    if (existsSync(join(dir, 'experiment.json'))) throw new StoreError(`experiment ${id} already exists in ${this.root}`);
    mkdirSync(dir, { recursive: true });
    const doc: ExperimentDoc = { version: 1, id, name: opts.name, kind: opts.kind, created_at: now(), runs: [] };
    writeJsonAtomic(join(dir, 'experiment.json'), doc);
    return { ...doc, dir };
  }

  getExperiment(id: string): ExperimentInfo | undefined {
    const dir = this.path(id);
    const doc = readJson<ExperimentDoc>(join(dir, 'experiment.json'));
    if (!doc) return existsSync(dir) ? { version: 1, id, name: id, kind: 'single', created_at: statSync(dir).mtimeMs / 1000, runs: [], dir } : undefined;
    return { ...doc, id, dir };
  }

  updateExperiment(id: string, change: (doc: ExperimentDoc) => void): ExperimentInfo {
    const exp = this.getExperiment(id);
    if (!exp) throw new StoreError(`no experiment ${id} in ${this.root}`);
    const { dir, ...doc } = exp;
    change(doc);
    writeJsonAtomic(join(dir, 'experiment.json'), doc);
    return { ...doc, dir };
  }

  /**
   * Creates a queued run: the run directory with config.json (the worker rewrites it resolved when it
   * starts), status.json `queued` and run.json.
   */
  createRun(experiment: string, run: string, config: RunConfig, label?: string): RunInfo {
    const dir = this.path(experiment, run);
    if (existsSync(dir)) throw new StoreError(`run ${runKey(experiment, run)} already exists`);
    if (!this.getExperiment(experiment)) this.createExperiment({ id: experiment, name: experiment, kind: 'single' });
    mkdirSync(dir, { recursive: true });
    writeJsonAtomic(join(dir, 'config.json'), config);
    const card: RunCard = {
      version: 1,
      label: label ?? config.name ?? `${config.method.optimizer}+${config.method.init}`,
      method: `${config.method.optimizer}+${config.method.init}`,
      task: config.task.kind,
      steps: config.train.steps,
      created_at: now(),
      summary: null,
    };
    writeJsonAtomic(join(dir, 'run.json'), card);
    this.writeStatus(runKey(experiment, run), { version: 1, state: 'queued', pid: null, host: hostname(), updated_at: now(), step: 0 });
    this.updateExperiment(experiment, (doc) => {
      if (!doc.runs.includes(run)) doc.runs.push(run);
    });
    return this.getRun(runKey(experiment, run))!;
  }

  readStatus(key: RunKey): RunStatus | undefined {
    return readJson<RunStatus>(join(this.runDir(key), 'status.json'));
  }

  writeStatus(key: RunKey, status: RunStatus): void {
    writeJsonAtomic(join(this.runDir(key), 'status.json'), status);
  }

  readCard(key: RunKey): RunCard | undefined {
    return readJson<RunCard>(join(this.runDir(key), 'run.json'));
  }

  updateCard(key: RunKey, change: (card: RunCard) => void): void {
    const dir = this.runDir(key);
    const card = this.readCard(key) ?? this.cardFromConfig(key);
    change(card);
    writeJsonAtomic(join(dir, 'run.json'), card);
  }

  readConfig(key: RunKey): RunConfig | undefined {
    return readJson<RunConfig>(join(this.runDir(key), 'config.json'));
  }

  eventsPath(key: RunKey): string {
    return join(this.runDir(key), 'events.jsonl');
  }

  logPath(key: RunKey): string {
    return join(this.runDir(key), 'worker.log');
  }

  logTail(key: RunKey, lines = 30): string {
    return readTail(this.logPath(key), lines);
  }

  private cardFromConfig(key: RunKey): RunCard {
    const config = this.readConfig(key);
    const { run } = parseRunKey(key);
    return {
      version: 1,
      label: config?.name ?? run,
      method: config ? `${config.method.optimizer}+${config.method.init}` : 'unknown',
      task: config?.task.kind ?? 'unknown',
      steps: config?.train.steps ?? 0,
      created_at: now(),
      summary: null,
    };
  }

  /**
   * Why a run cannot be shown, or undefined when it can: `gone` (its directory does not exist) or
   * `unreadable` (the directory exists but cannot be listed, or holds none of a run's files).
   */
  problem(key: RunKey): { reason: 'gone' | 'unreadable'; message: string } | undefined {
    const dir = this.runDir(key);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return { reason: 'gone', message: `${key} was deleted: ${dir} does not exist` };
      return { reason: 'unreadable', message: e.message };
    }
    if (!['status.json', 'run.json', 'config.json'].some((f) => names.includes(f))) {
      return { reason: 'unreadable', message: `${dir} holds no status.json, run.json or config.json: it is not a run directory` };
    }
    return undefined;
  }

  /** Removes a run's directory and its entry in experiment.json. */
  deleteRun(key: RunKey): void {
    const { experiment, run } = parseRunKey(key);
    rmSync(this.path(experiment, run), { recursive: true, force: true });
    if (this.getExperiment(experiment)) {
      this.updateExperiment(experiment, (doc) => {
        doc.runs = doc.runs.filter((r) => r !== run);
      });
    }
  }

  /** One run's index entry (status.json + run.json), or undefined when the directory is not a run. */
  getRun(key: RunKey): RunInfo | undefined {
    const { experiment, run } = parseRunKey(key);
    const dir = this.path(experiment, run);
    const status = readJson<RunStatus>(join(dir, 'status.json'));
    let card = readJson<RunCard>(join(dir, 'run.json'));
    if (!status && !card && !existsSync(join(dir, 'config.json'))) return undefined;
    card ??= this.cardFromConfig(key);
    return {
      key,
      experiment,
      run,
      dir,
      label: card.label,
      method: card.method,
      task: card.task,
      state: status?.state ?? 'queued',
      step: status?.step ?? 0,
      steps: card.steps,
      pid: status?.pid ?? null,
      host: status?.host ?? null,
      created_at: card.created_at,
      started_at: status?.started_at ?? null,
      ended_at: status?.ended_at ?? null,
      exit_code: status?.exit_code ?? null,
      last_error: status?.last_error ?? null,
      summary: card.summary ?? null,
    };
  }

  listExperiments(): ExperimentInfo[] {
    let names: string[];
    try {
      names = readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && ID_PATTERN.test(d.name))
        .map((d) => d.name);
    } catch {
      return [];
    }
    return names
      .map((n) => this.getExperiment(n))
      .filter((e): e is ExperimentInfo => !!e)
      .sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  }

  /** Runs of one experiment: its recorded order first, then any other run folders by name. */
  listRuns(experiment: string): RunInfo[] {
    const exp = this.getExperiment(experiment);
    if (!exp) return [];
    let names: string[];
    try {
      names = readdirSync(exp.dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && ID_PATTERN.test(d.name))
        .map((d) => d.name);
    } catch {
      return [];
    }
    const order = new Map(exp.runs.map((r, i) => [r, i]));
    names.sort((a, b) => (order.get(a) ?? Infinity) - (order.get(b) ?? Infinity) || a.localeCompare(b));
    return names.map((n) => this.getRun(runKey(experiment, n))).filter((r): r is RunInfo => !!r);
  }

  /** Every run under the root. */
  listAll(): RunInfo[] {
    return this.listExperiments().flatMap((e) => this.listRuns(e.id));
  }
}
