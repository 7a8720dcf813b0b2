// Locating the real worker for integration tests. They must FAIL (never skip) when it is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const NATIVE_WORKER = join(ROOT, 'native-worker');

/** $RLORA_PYTHON, else the project's .venv/bin/python; throws a clear error when it cannot run the worker. */
export function workerPython(): string {
  const python = process.env.RLORA_PYTHON ?? join(ROOT, '.venv', 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(
      `integration tests need the worker's Python: ${python} does not exist. Run \`bash scripts/setup.sh\` ` +
        '(creates .venv) or set RLORA_PYTHON to an interpreter with torch installed.',
    );
  }
  try {
    // find_spec, not import: torch takes seconds to import and every worker launch pays that anyway
    const probe = "import importlib.util as u, riemannlora.worker.cli\nif u.find_spec('torch') is None: raise SystemExit('torch is not installed')";
    execFileSync(python, ['-c', probe], {
      env: { ...process.env, PYTHONPATH: NATIVE_WORKER },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 60_000,
    });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${python} cannot import the worker (torch, riemannlora.worker with PYTHONPATH=${NATIVE_WORKER}):\n${stderr}`, { cause: err });
  }
  return python;
}

/** Environment for workers under test: one thread each (the CI machine has 2 cores shared by everything). */
export const WORKER_ENV = { OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1', HF_HUB_OFFLINE: '1' };

let built: Promise<string> | undefined;
/** Bundles src/cli.ts the way esbuild.mjs does, into the (git-ignored) test-results folder of the project. */
export function buildCli(): Promise<string> {
  built ??= (async () => {
    const outdir = join(ROOT, 'test-results', 'demo-cli');
    mkdirSync(outdir, { recursive: true });
    await esbuild.build({ entryPoints: { cli: join(ROOT, 'src', 'cli.ts') }, outdir, bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'error' });
    return join(outdir, 'cli.js');
  })();
  return built;
}
