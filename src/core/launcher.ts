// Launching the worker (DESIGN.md "Worker command line", "Process model").
//
// The worker runs detached in its own process group (setsid), so closing or reloading the window that
// started it does not kill a long run; stop and kill signal the whole group (torchrun and its ranks too).
// Arguments are always an array (execa, no shell): paths with spaces or quotes are passed as they are.
// stdout is ignored (events.jsonl is the source of truth, the worker mirrors it on stdout for people);
// stderr is appended to <run-dir>/worker.log.
import { execa, type Options, type ResultPromise } from 'execa';
import { closeSync, openSync, writeSync } from 'node:fs';
import { delimiter, join } from 'node:path';

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

export function workerEnv(opts: LaunchOptions): Record<string, string> {
  const inherited = process.env.PYTHONPATH;
  return {
    PYTHONPATH: inherited ? `${opts.nativeWorkerDir}${delimiter}${inherited}` : opts.nativeWorkerDir,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...opts.env,
  };
}

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
      cwd: req.runDir,
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
 * Sends a signal to a worker's process group (falls back to the pid alone when the group is gone).
 * Returns false when no such process exists.
 */
export function signalWorker(pgid: number | null | undefined, pid: number | null | undefined, signal: NodeJS.Signals): boolean {
  for (const target of [pgid ? -pgid : 0, pid ?? 0]) {
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
