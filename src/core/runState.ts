// The run state machine (docs/architecture.md "Process model").
//
//   queued ──start──▶ running ──finished event / exit──▶ completed | stopped | failed | diverged
//     │                  └──pid gone without `finished`──▶ failed (with the tail of worker.log)
//     └──cancel──▶ stopped
//   stopped | failed ──resume──▶ queued  (the worker continues from its last checkpoint)
//
// status.json is written by the worker while it runs; the engine writes it only for the transitions the
// worker cannot report itself (queued, cancelled before start, died without a word).
//
// `damaged` is the engine's own, derived state, never written to status.json: the run's status.json or
// run.json cannot be read, is not JSON or does not match its schema (RunInfo.damaged says why). A damaged
// run is terminal for the queue: it is never started or resumed (it could hold a slot for ever or start
// from garbage); it can be deleted, and it becomes what its files say once they are repaired.
import type { RunStatus } from './generated/run-status';

/** A state status.json can hold. */
export type StatusState = RunStatus['state'];
export type RunState = StatusState | 'damaged';
export const RUN_STATES: readonly RunState[] = ['queued', 'running', 'completed', 'stopped', 'failed', 'diverged', 'damaged'];
export const TERMINAL_STATES: readonly RunState[] = ['completed', 'stopped', 'failed', 'diverged', 'damaged'];

export const isTerminal = (s: RunState): boolean => TERMINAL_STATES.includes(s);

const ALLOWED: Record<RunState, readonly RunState[]> = {
  queued: ['running', 'stopped', 'failed'],
  running: ['completed', 'stopped', 'failed', 'diverged'],
  completed: [],
  stopped: ['queued'],
  failed: ['queued'],
  diverged: [],
  damaged: [],
};

export const canTransition = (from: RunState, to: RunState): boolean => ALLOWED[from].includes(to);

export class TransitionError extends Error {
  constructor(
    readonly from: RunState,
    readonly to: RunState,
  ) {
    super(
      from === 'damaged'
        ? `a damaged run cannot become ${to}: its status.json or run.json is unreadable or invalid (repair or delete the run)`
        : `a ${from} run cannot become ${to}${to === 'queued' ? ' (only stopped or failed runs can be resumed)' : ''}`,
    );
  }
}

export function assertTransition(from: RunState, to: RunState): void {
  if (!canTransition(from, to)) throw new TransitionError(from, to);
}

/** Whether a run in `state` can be resumed (`--resume` continues from the last checkpoint). */
export const canResume = (state: RunState): boolean => canTransition(state, 'queued');

/** What the engine knows about a run when it reconciles the stored status with the process table. */
export interface Observation {
  status: RunStatus;
  /** The `finished` event's status, when the event stream has one after the last `started`. */
  finished?: StatusState;
  /** Whether the status' pid is alive (undefined: no pid recorded). */
  pidAlive?: boolean;
  /** Whether status.host is this host (a pid on another host cannot be checked). */
  sameHost: boolean;
  /** Exit code when the engine itself launched the process and saw it exit. */
  exitCode?: number | null;
  /** The tail of worker.log, for the failure message. */
  logTail?: () => string;
}

export interface Verdict {
  state: StatusState;
  /** A status document to write, when the engine must record the transition itself. */
  write?: RunStatus;
}

const now = () => Date.now() / 1000;

/**
 * The state a run is in, given its status.json and what the engine observes. A run that says `running`
 * but whose process is gone becomes the state of its `finished` event if it wrote one (the worker died
 * between the event and the status update), else `failed` with the tail of worker.log.
 */
export function reconcile(o: Observation): Verdict {
  const s = o.status;
  if (s.state !== 'running') return { state: s.state };
  const gone = o.exitCode !== undefined || (o.sameHost && o.pidAlive === false);
  if (!gone) return { state: 'running' };
  if (o.finished && isTerminal(o.finished)) {
    return {
      state: o.finished,
      write: { ...s, state: o.finished, ended_at: s.ended_at ?? now(), updated_at: now(), exit_code: o.exitCode ?? s.exit_code ?? null },
    };
  }
  const tail = o.logTail?.() ?? '';
  const how =
    o.exitCode === undefined || o.exitCode === null
      ? 'the worker process is gone (killed or crashed) without reporting the end of the run'
      : `the worker exited with code ${o.exitCode} without reporting the end of the run`;
  return {
    state: 'failed',
    write: {
      ...s,
      state: 'failed',
      ended_at: now(),
      updated_at: now(),
      exit_code: o.exitCode ?? null,
      last_error: {
        kind: 'crashed',
        message: tail ? `${how}; last lines of worker.log:\n${tail}` : `${how}; worker.log is empty`,
        hint: 'resume the run to continue from its last checkpoint',
      },
    },
  };
}

/** Whether a pid is alive on this host (signal 0; EPERM means it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
