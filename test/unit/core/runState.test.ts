// The run state machine: allowed transitions, and reconciling status.json with the process table.
import { describe, expect, it } from 'vitest';
import type { RunStatus } from '../../../src/core/generated/run-status';
import { assertTransition, canResume, canTransition, isTerminal, pidAlive, reconcile, RUN_STATES, TransitionError } from '../../../src/core/runState';

const running: RunStatus = { version: 1, state: 'running', pid: 4242, host: 'h', started_at: 10, updated_at: 11, step: 5 };

describe('transitions', () => {
  it('follows queued → running → terminal, and resume from stopped/failed only', () => {
    expect(canTransition('queued', 'running')).toBe(true);
    expect(canTransition('queued', 'stopped')).toBe(true);
    for (const t of ['completed', 'stopped', 'failed', 'diverged'] as const) expect(canTransition('running', t)).toBe(true);
    expect(canTransition('running', 'queued')).toBe(false);
    expect(canTransition('completed', 'queued')).toBe(false);
    expect(canTransition('diverged', 'queued')).toBe(false);
    expect(canResume('stopped')).toBe(true);
    expect(canResume('failed')).toBe(true);
    expect(canResume('completed')).toBe(false);
    expect(() => assertTransition('completed', 'queued')).toThrow(TransitionError);
    expect(() => assertTransition('completed', 'queued')).toThrow(/only stopped or failed runs can be resumed/);
  });

  it('no terminal state leads anywhere but back to queued', () => {
    for (const from of RUN_STATES.filter(isTerminal)) {
      for (const to of RUN_STATES) if (to !== 'queued') expect(canTransition(from, to), `${from}→${to}`).toBe(false);
    }
  });
});

describe('reconcile', () => {
  it('keeps a running run whose pid is alive', () => {
    expect(reconcile({ status: running, pidAlive: true, sameHost: true })).toEqual({ state: 'running' });
  });

  it('a running run whose pid is gone becomes failed with the log tail', () => {
    const v = reconcile({ status: running, pidAlive: false, sameHost: true, logTail: () => 'Traceback...\nKilled' });
    expect(v.state).toBe('failed');
    expect(v.write?.state).toBe('failed');
    expect(v.write?.last_error?.message).toContain('Killed');
    expect(v.write?.last_error?.hint).toMatch(/resume/);
    expect(v.write?.ended_at).toBeGreaterThan(0);
  });

  it('says so when worker.log is empty, and names the exit code when the engine saw it', () => {
    expect(reconcile({ status: running, sameHost: true, exitCode: 1, logTail: () => '' }).write?.last_error?.message).toMatch(/exited with code 1.*worker.log is empty/);
  });

  it('a dead run that wrote `finished` takes that state (died between event and status)', () => {
    const v = reconcile({ status: running, finished: 'completed', pidAlive: false, sameHost: true });
    expect(v.state).toBe('completed');
    expect(v.write?.state).toBe('completed');
  });

  it('cannot judge a pid on another host: stays running', () => {
    expect(reconcile({ status: running, pidAlive: false, sameHost: false }).state).toBe('running');
  });

  it('leaves terminal and queued states alone', () => {
    for (const state of ['queued', 'completed', 'stopped', 'failed', 'diverged'] as const) {
      expect(reconcile({ status: { ...running, state }, pidAlive: false, sameHost: true })).toEqual({ state });
    }
  });

  it('pidAlive: this process is alive, nonsense pids are not', () => {
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(0)).toBe(false);
    expect(pidAlive(-5)).toBe(false);
    expect(pidAlive(2 ** 30)).toBe(false);
  });
});
