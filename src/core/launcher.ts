// Launching the worker (docs/architecture.md "Worker command line", "Process model").
//
// Python never imports from a run directory or the user's current folder: the worker starts with
// PYTHONSAFEPATH=1 (Python ≥ 3.11 then puts no folder of the command line on sys.path) and with the
// bundled native-worker/ folder as its current folder (so Python 3.10, which ignores the variable, only
// finds our own code there). A run folder is data: an `argparse.py` shipped in one is never executed.
//
// The worker runs detached in its own process group (setsid), so closing or reloading the window that
// started it does not kill a long run; stop and kill signal the whole group (torchrun and its ranks too).
// Arguments are always an array (execa, no shell): paths with spaces or quotes are passed as they are.
// stdout is ignored (events.jsonl is the source of truth, the worker mirrors it on stdout for people);
// stderr is appended to <run-dir>/worker.log.
import { execa, type Options, type ResultPromise } from 'execa';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { pidAlive } from './runState';

export type LauncherKind = 'python' | 'torchrun';

export interface LaunchOptions {
  /** The Python interpreter of the worker's environment. */
  python: string;
  /** Folder that holds the `riemannlora` package (put first on PYTHONPATH). */
  nativeWorkerDir: string;
  /** `python -m riemannlora.worker` (default) or `torchrun --nproc-per-node N` (DDP). */
  launcher?: LauncherKind;
  /** Processes per node under torchrun. */
  nproc?: number;
  /** Extra environment for the worker. */
  env?: Record<string, string>;
}

export interface LaunchRequest {
  runDir: string;
  configPath: string;
  resume: boolean;
}

/** The command line: [file, ...args]. torchrun is run as `python -m torch.distributed.run` of the chosen interpreter. */
export function workerCommand(opts: LaunchOptions, req: LaunchRequest): { file: string; args: string[] } {
  const workerArgs = ['run', '--config', req.configPath, '--run-dir', req.runDir, ...(req.resume ? ['--resume'] : [])];
  if ((opts.launcher ?? 'python') === 'torchrun') {
    const n = opts.nproc ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`torchrun needs --nproc-per-node >= 1 (got ${n})`);
    return {
      file: opts.python,
      args: ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', String(n), '-m', 'riemannlora.worker', ...workerArgs],
    };
  }
  return { file: opts.python, args: ['-m', 'riemannlora.worker', ...workerArgs] };
}

export function workerEnv(opts: Pick<LaunchOptions, 'nativeWorkerDir' | 'env'>): Record<string, string> {
  const inherited = process.env.PYTHONPATH;
  return {
    PYTHONPATH: inherited ? `${opts.nativeWorkerDir}${delimiter}${inherited}` : opts.nativeWorkerDir,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...opts.env,
    PYTHONSAFEPATH: '1', // last: not even a caller's env may turn it off
  };
}

/** The current folder of every worker process (run, validate, doctor): our own code, never a run directory. */
export const workerCwd = (opts: Pick<LaunchOptions, 'nativeWorkerDir'>): string => opts.nativeWorkerDir;

export interface LaunchedWorker {
  /** Pid of the launched process, also its process group id. */
  pid: number;
  /** Resolves when the process exits: its exit code, or null with the signal / launch error. */
  exited: Promise<{ exitCode: number | null; signal: string | null; error?: string }>;
  /** Lets the calling process exit while the worker goes on. */
  unref(): void;
}

export class LaunchError extends Error {}

/** Starts the worker detached; throws LaunchError when the process cannot be started at all. */
export async function launchWorker(opts: LaunchOptions, req: LaunchRequest): Promise<LaunchedWorker> {
  const { file, args } = workerCommand(opts, req);
  const logPath = join(req.runDir, 'worker.log');
  const logFd = openSync(logPath, 'a');
  let child: ResultPromise;
  try {
    writeSync(logFd, `[engine] ${new Date().toISOString()} launching: ${[file, ...args].map((a) => JSON.stringify(a)).join(' ')}\n`);
    child = execa(file, args, {
      cwd: workerCwd(opts),
      env: workerEnv(opts),
      extendEnv: true,
      detached: true,
      cleanup: false,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: 'ignore',
      // A raw file descriptor, inherited by the child: the worker keeps writing its log when this process
      // is gone (execa's `{file}` form would pipe through this process). execa's types list only fds
      // 1-9, its runtime passes any fd to spawn() as is.
      stderr: logFd as unknown as Options['stderr'],
    });
  } finally {
    closeSync(logFd); // the child holds its own copy
  }
  const exited = child.then(
    (r) => ({
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      error: r.failed && r.exitCode === undefined && !r.signal ? r.shortMessage : undefined,
    }),
    (err: unknown) => ({ exitCode: null, signal: null, error: String((err as Error).message ?? err) }),
  );
  if (child.pid === undefined) {
    const r = await exited;
    throw new LaunchError(`cannot start the worker with ${file}: ${r.error ?? 'unknown error'}`);
  }
  const pid = child.pid;
  return { pid, exited, unref: () => child.unref() };
}

/**
 * The argument vector and current folder of a live process, or null when they cannot be read (no such
 * process, or no permission): /proc on Linux, `ps` elsewhere (one string: split on spaces, no cwd).
 */
export function processCommandLine(pid: number): { argv: string[]; cwd?: string } | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, i, all) => a || i < all.length - 1);
    let cwd: string | undefined;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      /* another user's process: its cwd is not ours to read */
    }
    return argv.length ? { argv, cwd } : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || process.platform === 'linux') return null;
  }
  const r = spawnSync('ps', ['-ww', '-o', 'args=', '-p', String(pid)], { encoding: 'utf8' });
  const line = r.status === 0 ? r.stdout.trim() : '';
  return line ? { argv: line.split(/\s+/) } : null;
}

/**
 * Whether `pid` is a riemannlora worker of `runDir` (the worker itself, or torchrun launching it): its
 * command line runs `riemannlora.worker` with `--run-dir` naming this directory. A pid from a run folder
 * is only a claim (a copied or shipped folder, or a number reused by another process since): nothing is
 * signalled, or counted as the run's live worker, on the claim alone. Never true for pid 0 or 1.
 */
export function isWorkerOf(pid: number | null | undefined, runDir: string): boolean {
  if (!pid || !Number.isSafeInteger(pid) || pid <= 1) return false;
  const cmd = processCommandLine(pid);
  return !!cmd && runsWorkerOf(cmd, runDir);
}

function runsWorkerOf(cmd: { argv: string[]; cwd?: string }, runDir: string): boolean {
  const i = cmd.argv.indexOf('--run-dir');
  if (!cmd.argv.includes('riemannlora.worker') || i < 0 || !cmd.argv[i + 1]) return false;
  return resolve(cmd.cwd ?? '/', cmd.argv[i + 1]!) === resolve(runDir);
}

/**
 * Whether the worker `pid` that a run's status.json names is alive: a live process that is this run's
 * worker. A pid reused by an unrelated process counts as dead. Where the command line cannot be read
 * (another user's process), a live pid is taken at its word.
 */
export function workerAlive(pid: number, runDir: string): boolean {
  if (!pidAlive(pid) || pid <= 1) return false;
  const cmd = processCommandLine(pid);
  return cmd ? runsWorkerOf(cmd, runDir) : true;
}

/** The process group of a live process (/proc/<pid>/stat, else `ps`), or null when it cannot be read. */
export function processGroupOf(pid: number): number | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ')'.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    return Number.isSafeInteger(pgrp) && pgrp > 0 ? pgrp : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || process.platform === 'linux') return null;
  }
  const r = spawnSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' });
  const pgid = r.status === 0 ? Number(r.stdout.trim()) : NaN;
  return Number.isSafeInteger(pgid) && pgid > 0 ? pgid : null;
}

/**
 * The live processes that are riemannlora workers of `runDir` (or torchrun launching one), by their
 * command lines: /proc where there is one, else `ps`. Processes of other users whose command line
 * cannot be read are not seen.
 */
export function liveWorkersOf(runDir: string): number[] {
  let pids: number[];
  if (process.platform === 'linux') {
    try {
      pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
    } catch {
      return [];
    }
    return pids.filter((pid) => pid > 1 && pid !== process.pid && isWorkerOf(pid, runDir));
  }
  const r = spawnSync('ps', ['-A', '-ww', '-o', 'pid=,args='], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return [];
  const out: number[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid > 1 && pid !== process.pid && runsWorkerOf({ argv: m[2]!.split(/\s+/) }, runDir)) out.push(pid);
  }
  return out;
}

/**
 * Sends a signal to a worker's process group (falls back to the pid alone when the group is gone).
 * Returns false when no such process exists. Never signals a pid or group ≤ 1 (kill(-1) would reach every
 * process of the user); the engine passes only processes it launched or verified with `isWorkerOf`.
 */
export function signalWorker(pgid: number | null | undefined, pid: number | null | undefined, signal: NodeJS.Signals): boolean {
  for (const target of [pgid && pgid > 1 ? -pgid : 0, pid && pid > 1 ? pid : 0]) {
    if (!target) continue;
    try {
      process.kill(target, signal);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  return false;
}
