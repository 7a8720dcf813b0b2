// The worker's command line and environment (argument arrays, never a shell string).
import { delimiter } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isWorkerOf, processCommandLine, signalWorker, workerAlive, workerCommand, workerEnv } from '../../../src/core/launcher';

const opts = { python: '/opt/my env/bin/python', nativeWorkerDir: '/ext/native-worker' };
const req = { runDir: '/ws/runs/e/r "1"', configPath: '/ws/runs/e/r "1"/config.json', resume: false };

describe('workerCommand', () => {
  it('runs `python -m riemannlora.worker run` with paths as single arguments (spaces and quotes intact)', () => {
    expect(workerCommand(opts, req)).toEqual({
      file: '/opt/my env/bin/python',
      args: ['-m', 'riemannlora.worker', 'run', '--config', '/ws/runs/e/r "1"/config.json', '--run-dir', '/ws/runs/e/r "1"'],
    });
    expect(workerCommand(opts, { ...req, resume: true }).args.at(-1)).toBe('--resume');
  });

  it('torchrun: the chosen interpreter runs torch.distributed.run with --nproc-per-node N', () => {
    const c = workerCommand({ ...opts, launcher: 'torchrun', nproc: 4 }, req);
    expect(c.file).toBe(opts.python);
    expect(c.args.slice(0, 8)).toEqual(['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '4', '-m', 'riemannlora.worker', 'run']);
    expect(() => workerCommand({ ...opts, launcher: 'torchrun', nproc: 0 }, req)).toThrow(RangeError);
  });
});

describe('workerEnv', () => {
  const saved = process.env.PYTHONPATH;
  afterEach(() => {
    if (saved === undefined) delete process.env.PYTHONPATH;
    else process.env.PYTHONPATH = saved;
  });

  it('puts the bundled native-worker first on PYTHONPATH and keeps what was there', () => {
    delete process.env.PYTHONPATH;
    expect(workerEnv(opts).PYTHONPATH).toBe('/ext/native-worker');
    process.env.PYTHONPATH = '/other';
    expect(workerEnv({ ...opts, env: { OMP_NUM_THREADS: '1' } })).toMatchObject({ PYTHONPATH: `/ext/native-worker${delimiter}/other`, OMP_NUM_THREADS: '1', PYTHONUNBUFFERED: '1' });
  });
});

describe('signalWorker', () => {
  it('returns false for processes that do not exist', () => {
    expect(signalWorker(2 ** 30, 2 ** 30, 'SIGINT')).toBe(false);
    expect(signalWorker(null, null, 'SIGINT')).toBe(false);
  });

  it('never signals pid or group 0, 1 or below (kill(-1) reaches every process of the user)', () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    try {
      for (const [pgid, pid] of [[1, 1], [0, 0], [-1, -1], [1, 0], [0, 1]] as const) expect(signalWorker(pgid, pid, 'SIGKILL')).toBe(false);
      expect(kill).not.toHaveBeenCalled();
    } finally {
      kill.mockRestore();
    }
  });
});

describe('isWorkerOf', () => {
  it('is true only for a riemannlora worker whose --run-dir is this run directory', async () => {
    const { spawn } = await import('node:child_process');
    const dir = '/tmp/rlora-isworker/e/r';
    // A process whose command line looks like the worker's. The `--` matters: without it node parses
    // `-m` as one of its own options, exits at once ("bad option: -m") and the test only passed when it
    // was faster than node's start-up.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', '--', '-m', 'riemannlora.worker', 'run', '--run-dir', dir], { stdio: 'ignore' });
    try {
      await new Promise((r) => child.once('spawn', r));
      expect(processCommandLine(child.pid!)?.argv).toContain('riemannlora.worker');
      expect(isWorkerOf(child.pid, dir)).toBe(true);
      expect(isWorkerOf(child.pid, `${dir}/..`)).toBe(false);
      expect(isWorkerOf(child.pid, '/tmp/rlora-isworker/e/other')).toBe(false);
      expect(isWorkerOf(process.pid, dir)).toBe(false); // a live process that is not a worker
      expect(isWorkerOf(1, dir)).toBe(false);
      expect(isWorkerOf(2 ** 30, dir)).toBe(false);
      expect(workerAlive(child.pid!, dir)).toBe(true);
      expect(workerAlive(process.pid, dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
