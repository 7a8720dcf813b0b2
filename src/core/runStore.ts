// The run store (docs/architecture.md "Run directory"): experiments and runs on disk under one root.
//
//   <root>/<experiment>/experiment.json   name, kind (single | compare), baseline run, run order
//   <root>/<experiment>/<run>/            the run directory the worker writes:
//       config.json  events.jsonl  status.json  worker.log  checkpoints/  adapter/
//       run.json                          the engine's small index card: label, method, planned steps,
//                                         and a cached summary once the run has ended (a summary cached
//                                         under the old names is stale: RunInfo.summary_stale)
//
// Listing reads experiment.json, status.json and run.json only (never events.jsonl), so a root with
// thousands of runs lists quickly. Each of them is checked against its schema (metadata.ts): a file that
// is not JSON or does not match lists its run as `damaged` with the reason (an experiment: listed with
// defaults and the reason), never as queued and never as a crash. Ids are validated and every path is
// checked to stay inside the root, symbolic links resolved (a link out of the root is refused).
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, realpathSync, renameSync, fstatSync, readSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ExperimentDoc } from './generated/experiment';
import type { RunCard, RunSummary as RunSummaryOrNull, StaleRunSummary } from './generated/run-card';
import type { RunConfig } from './generated/run-config';
import type { RunStatus } from './generated/run-status';
import { readCardFile, readExperimentFile, readStatusFile } from './metadata';
import type { RunState } from './runState';

export type { ExperimentDoc, RunCard };
/** Cached end-of-run numbers (compare.ts summarizeRun), in run.json once the run has ended. */
export type RunSummary = NonNullable<RunSummaryOrNull>;

/**
 * A summary cached before its names said smoothed (final_loss, best_loss, wall_s; possibly from an older
 * smoothing window): never shown as a summary.
 */
export const isStaleSummary = (s: RunCard['summary']): s is StaleRunSummary => typeof s === 'object' && s !== null && 'final_loss' in s;

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
  /**
   * run.json holds a summary cached under the old names (isStaleSummary): `summary` is then null, and the
   * engine recomputes it from events.jsonl (compare.ts summarizeEventsFile) and caches it anew.
   */
  summary_stale?: true;
  /**
   * Why the run's metadata cannot be trusted (its state is then `damaged`): status.json or run.json is
   * unreadable, not JSON or not valid against its schema. null for a sound run.
   */
  damaged: string | null;
}

export interface ExperimentInfo extends ExperimentDoc {
  /** The folder name. */
  id: string;
  dir: string;
  /** Why experiment.json was not used (not JSON, invalid): the experiment is listed with defaults. */
  damaged: string | null;
}

const DAMAGED_HINT = 'repair or delete the file (or delete the run); a damaged run is never started or resumed';

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

const outside = (root: string, p: string) => {
  const rel = relative(root, p);
  return !rel || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
};

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

  /**
   * The path of a run or experiment directory, refusing anything that would leave the root: ids that
   * are not plain names, and an experiment or run folder that is (or passes through) a symbolic link
   * resolving outside the root, or a link to nothing (it could be pointed anywhere later).
   */
  path(experiment: string, run?: string): string {
    assertId('experiment', experiment);
    if (run !== undefined) assertId('run', run);
    const p = run === undefined ? join(this.root, experiment) : join(this.root, experiment, run);
    if (outside(this.root, p)) throw new StoreError(`path ${p} is outside the runs root ${this.root}`);
    let cur = this.root;
    for (const part of run === undefined ? [experiment] : [experiment, run]) {
      cur = join(cur, part);
      let link: boolean;
      try {
        link = lstatSync(cur).isSymbolicLink();
      } catch {
        break; // absent (or unreadable): nothing below it exists to lead anywhere
      }
      if (!link) continue;
      let target: string;
      try {
        target = realpathSync(cur);
      } catch {
        throw new StoreError(`${cur} is a symbolic link to nothing: refused (a run folder must stay inside the runs root ${this.root})`);
      }
      let realRoot: string;
      try {
        realRoot = realpathSync(this.root);
      } catch {
        realRoot = this.root;
      }
      if (outside(realRoot, target)) {
        throw new StoreError(`${cur} is a symbolic link to ${target}, outside the runs root ${this.root}: refused`);
      }
    }
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
    return { ...doc, id, dir, damaged: null };
  }

  /**
   * An experiment: its experiment.json, or defaults (its folder name, `single`, no recorded order) when
   * the file is absent or damaged (`damaged` says why); undefined when the folder does not exist.
   */
  getExperiment(id: string): ExperimentInfo | undefined {
    const dir = this.path(id);
    const read = readExperimentFile(join(dir, 'experiment.json'));
    if (read.kind === 'ok') return { ...read.doc, id, dir, damaged: null };
    let mtime: number;
    try {
      mtime = statSync(dir).mtimeMs / 1000;
    } catch {
      return undefined;
    }
    return { version: 1, id, name: id, kind: 'single', created_at: mtime, runs: [], dir, damaged: read.kind === 'damaged' ? read.reason : null };
  }

  /** Changes experiment.json (a damaged one is replaced by its defaults plus the change). */
  updateExperiment(id: string, change: (doc: ExperimentDoc & { id: string }) => void): ExperimentInfo {
    const exp = this.getExperiment(id);
    if (!exp) throw new StoreError(`no experiment ${id} in ${this.root}`);
    const { dir, damaged: _damaged, ...doc } = exp;
    change(doc);
    writeJsonAtomic(join(dir, 'experiment.json'), doc);
    return { ...doc, dir, damaged: null };
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

  /** status.json when it is present and valid (a damaged one reads as undefined: see getRun). */
  readStatus(key: RunKey): RunStatus | undefined {
    const read = readStatusFile(join(this.runDir(key), 'status.json'));
    return read.kind === 'ok' ? read.doc : undefined;
  }

  writeStatus(key: RunKey, status: RunStatus): void {
    writeJsonAtomic(join(this.runDir(key), 'status.json'), status);
  }

  /** run.json when it is present and valid. */
  readCard(key: RunKey): RunCard | undefined {
    const read = readCardFile(join(this.runDir(key), 'run.json'));
    return read.kind === 'ok' ? read.doc : undefined;
  }

  /** Changes run.json (an absent or damaged one is rebuilt from config.json first). */
  updateCard(key: RunKey, change: (card: RunCard) => void): void {
    const dir = this.runDir(key);
    const card = this.readCard(key) ?? this.cardFromConfig(key);
    change(card);
    writeJsonAtomic(join(dir, 'run.json'), card);
  }

  readConfig(key: RunKey): RunConfig | undefined {
    const config = readJson<RunConfig>(join(this.runDir(key), 'config.json'));
    // Written by the worker (resolved) or copied in: readers may rely on its groups being objects.
    const isObj = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
    const c = config as unknown as Record<string, unknown> | undefined;
    return isObj(c) && ['task', 'adapter', 'method', 'train'].every((g) => isObj(c![g])) ? config : undefined;
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
    // config.json is data too: take only fields of the right type.
    const str = (v: unknown, fallback: string) => (typeof v === 'string' ? v : fallback);
    const optimizer = str(config?.method?.optimizer, '');
    const init = str(config?.method?.init, '');
    const steps = config?.train?.steps;
    return {
      version: 1,
      label: str(config?.name, run),
      method: optimizer && init ? `${optimizer}+${init}` : 'unknown',
      task: str(config?.task?.kind, 'unknown'),
      steps: Number.isSafeInteger(steps) && (steps as number) >= 0 ? (steps as number) : 0,
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

  /**
   * One run's index entry (status.json + run.json), or undefined when the directory is not a run. A
   * status.json or run.json that cannot be read, is not JSON or does not match its schema makes the run
   * `damaged` (with `damaged` saying why). No status.json at all is a run whose creation was cut short:
   * queued.
   */
  getRun(key: RunKey): RunInfo | undefined {
    const { experiment, run } = parseRunKey(key);
    const dir = this.path(experiment, run);
    const statusRead = readStatusFile(join(dir, 'status.json'));
    const cardRead = readCardFile(join(dir, 'run.json'));
    if (statusRead.kind === 'absent' && cardRead.kind === 'absent' && !existsSync(join(dir, 'config.json'))) return undefined;
    const status = statusRead.kind === 'ok' ? statusRead.doc : undefined;
    const card = cardRead.kind === 'ok' ? cardRead.doc : this.cardFromConfig(key);
    const reasons = [statusRead, cardRead].flatMap((r) => (r.kind === 'damaged' ? [r.reason] : []));
    const damaged = reasons.length ? reasons.join('; ') : null;
    const info: RunInfo = {
      key,
      experiment,
      run,
      dir,
      label: card.label,
      method: card.method,
      task: card.task,
      state: 'queued',
      step: 0,
      steps: card.steps,
      pid: null,
      host: null,
      created_at: card.created_at,
      started_at: null,
      ended_at: null,
      exit_code: null,
      last_error: null,
      summary: isStaleSummary(card.summary) ? null : (card.summary ?? null),
      damaged,
    };
    if (isStaleSummary(card.summary)) info.summary_stale = true;
    const out = status ? RunStore.withStatus(info, status) : info;
    if (damaged) {
      out.state = 'damaged';
      out.last_error = { kind: 'damaged', message: damaged, hint: DAMAGED_HINT };
    }
    return out;
  }

  /** `info` with the fields that come from a status document (the engine shows verdicts it may not write). */
  static withStatus(info: RunInfo, status: RunStatus): RunInfo {
    return {
      ...info,
      state: status.state,
      step: status.step ?? 0,
      pid: status.pid ?? null,
      host: status.host ?? null,
      started_at: status.started_at ?? null,
      ended_at: status.ended_at ?? null,
      exit_code: status.exit_code ?? null,
      last_error: status.last_error ?? null,
    };
  }

  /** What a run folder that cannot even be listed shows (an error the checks above did not foresee). */
  private damagedInfo(experiment: string, run: string, reason: string): RunInfo {
    return {
      key: runKey(experiment, run), experiment, run, dir: join(this.root, experiment, run), label: run, method: 'unknown', task: 'unknown',
      state: 'damaged', step: 0, steps: 0, pid: null, host: null, created_at: 0, started_at: null, ended_at: null, exit_code: null,
      last_error: { kind: 'damaged', message: reason, hint: DAMAGED_HINT }, summary: null, damaged: reason,
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
      .map((n) => {
        try {
          return this.getExperiment(n);
        } catch {
          return undefined; // e.g. a folder that became a link out of the root meanwhile
        }
      })
      .filter((e): e is ExperimentInfo => !!e)
      .sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  }

  /** Runs of one experiment: its recorded order first, then any other run folders by name. */
  listRuns(experiment: string): RunInfo[] {
    let exp: ExperimentInfo | undefined;
    try {
      exp = this.getExperiment(experiment);
    } catch {
      return [];
    }
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
    return names
      .map((n) => {
        try {
          return this.getRun(runKey(experiment, n));
        } catch (err) {
          return this.damagedInfo(experiment, n, `cannot be read: ${(err as Error).message}`);
        }
      })
      .filter((r): r is RunInfo => !!r);
  }

  /** Every run under the root. */
  listAll(): RunInfo[] {
    return this.listExperiments().flatMap((e) => this.listRuns(e.id));
  }
}
