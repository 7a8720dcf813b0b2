// The hostile-config corpus (schema/fixtures/hostile/cases.json) through the headless CLI: `validate` and
// `run` refuse every case with exit 2, name the field (or the same line and column as the worker), print
// no stack and no raw control character, stay small, and leave no file behind (`run` creates no runs
// root). native-worker/tests/test_hostile_configs.py runs the same corpus through the worker.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCli, NATIVE_WORKER, WORKER_ENV, workerPython } from './helpers';
import { HOSTILE_CASES, materialize, type HostileCase } from './hostileCorpus';

const CASES = HOSTILE_CASES;
const dir = mkdtempSync(join(tmpdir(), 'rlora-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function listing(folder: string): string[] {
  return (readdirSync(folder, { recursive: true }) as string[]).sort();
}

function cli(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // The worker check needs the project's interpreter; the CLI finds native-worker/ itself.
    const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...WORKER_ENV, RLORA_PYTHON: workerPython(), RLORA_NATIVE_WORKER: NATIVE_WORKER } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

const expected = (c: HostileCase) => (c.expect === 'NOT_JSON' ? 'is not valid JSON' : c.expect);
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/; // eslint-disable-line no-control-regex

describe('the CLI refuses every hostile config', () => {
  it('has at least 60 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  it('validate and run: exit 2, the field or position named, no stack, nothing created', async () => {
    const script = await buildCli();
    const failures: string[] = [];
    // Two at a time (two cores): each case is a separate folder, so they cannot disturb each other.
    const queue = [...CASES];
    const work = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const folder = join(dir, c.id);
        const config = materialize(c, folder);
        const before = listing(folder);
        for (const command of [['validate', '--config', config], ['run', '--config', config, '--out', join(folder, 'runs')]]) {
          const r = await cli([script, ...command], folder);
          const problems = [
            r.code !== 2 && `exit ${r.code}`,
            !r.out.includes(expected(c)) && `no ${JSON.stringify(expected(c))}`,
            /\n\s+at .+:\d+:\d+/.test(r.out) && 'a stack trace',
            /Traceback/.test(r.out) && 'a Python traceback',
            r.out.length >= 20_000 && `${r.out.length} characters of output`,
            RAW_CONTROL.test(r.out) && 'a raw control character',
            listing(folder).join('|') !== before.join('|') && `files left: ${listing(folder).filter((f) => !before.includes(f)).join(', ')}`,
          ].filter(Boolean);
          if (problems.length) failures.push(`${c.id} (${command[0]}): ${problems.join('; ')}\n${r.out.slice(0, 400)}`);
        }
      }
    };
    await Promise.all([work(), work()]);
    expect(failures).toEqual([]);
  }, 900_000);
});
