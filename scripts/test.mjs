#!/usr/bin/env node
// The project's test command (`npm test` runs scripts/setup.sh first, then this).
// Runs every stage, never stops at the first failure, and ends with one line of totals:
//   N passed, N failed
// Checks that are not test suites (type-check, lint, format, build, schema drift) count as one test each.
// Flags: --only=stage1,stage2 runs a subset; --skip=stage runs all but those. Stages: see STAGES below.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'test-results');
const PY = process.env.RLORA_PYTHON ?? join(ROOT, '.venv', 'bin', 'python');
const BIN = join(ROOT, 'node_modules', '.bin');
mkdirSync(OUT, { recursive: true });

const env = {
  ...process.env,
  RLORA_PYTHON: PY,
  PYTHONPATH: join(ROOT, 'native-worker'),
  PYTHONDONTWRITEBYTECODE: '1',
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  HF_DATASETS_OFFLINE: '1',
  TOKENIZERS_PARALLELISM: 'false',
  FORCE_COLOR: '0',
};

/** Runs a command (argument array, no shell), streaming its output, and resolves with exit code + output. */
function run(cmd, args, opts = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (stream) => (chunk) => {
      output += chunk;
      stream.write(chunk);
    };
    child.stdout.on('data', onData(process.stdout));
    child.stderr.on('data', onData(process.stderr));
    child.on('error', (err) => {
      output += String(err);
      resolvePromise({ code: 127, output });
    });
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** A single pass/fail check. */
const check = (cmd, args, opts) => async () => {
  const { code } = await run(cmd, args, opts);
  return { passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1 };
};

/** vitest with a JSON report: counts its tests; a crash with no report counts as one failure. */
const vitest = (config, name) => async () => {
  const report = join(OUT, `vitest-${name}.json`);
  rmSync(report, { force: true });
  const { code } = await run(join(BIN, 'vitest'), ['run', '--config', config, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]);
  if (!existsSync(report)) return { passed: 0, failed: 1 };
  const r = JSON.parse(readFileSync(report, 'utf8'));
  const failed = r.numFailedTests + (code !== 0 && r.numFailedTests === 0 ? 1 : 0);
  return { passed: r.numPassedTests, failed };
};

/** pytest: counts from its junit XML; a collection crash counts as one failure. */
const pytest = async () => {
  const report = join(OUT, 'pytest.xml');
  rmSync(report, { force: true });
  const { code } = await run(PY, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', `--junitxml=${report}`, 'tests', '../bench'], {
    cwd: join(ROOT, 'native-worker'),
    env: { OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' },
  });
  if (!existsSync(report)) return { passed: 0, failed: 1 };
  const xml = readFileSync(report, 'utf8');
  const attr = (name) => Number(new RegExp(`<testsuite[^>]*\\s${name}="(\\d+)"`).exec(xml)?.[1] ?? 0);
  const total = attr('tests');
  const failed = attr('failures') + attr('errors');
  const skipped = attr('skipped');
  // exit 5 = no tests collected: that is a failure of the suite, not a pass.
  const extra = code !== 0 && failed === 0 ? 1 : 0;
  return { passed: total - failed - skipped, failed: failed + extra, skipped };
};

const STAGES = [
  ['catalogue', check('node', ['scripts/gen-catalogue.mjs', '--check'])],
  ['schema-types', check('node', ['scripts/gen-types.mjs', '--check'])],
  ['typecheck', check(join(BIN, 'tsc'), ['--noEmit', '-p', 'tsconfig.json'])],
  ['eslint', check(join(BIN, 'eslint'), ['.', '--max-warnings=0'])],
  ['ruff-lint', check(PY, ['-m', 'ruff', 'check', 'native-worker', 'bench', 'examples'])],
  ['ruff-format', check(PY, ['-m', 'ruff', 'format', '--check', 'native-worker', 'bench', 'examples'])],
  ['build', check('node', ['esbuild.mjs'])],
  ['unit', vitest('vitest.config.mts', 'unit')],
  ['python', pytest],
  // `npm run demo` itself, in its quick mode: the same four methods on the built-in default, fewer steps.
  ['demo-quick', async () => {
    rmSync(join(OUT, 'demo-quick'), { recursive: true, force: true });
    return check('node', ['dist/cli.js', 'demo', '--quick', '--python', PY, '--out', join(OUT, 'demo-quick')])();
  }],
  // The VSIX a user installs (`npm run package`): the demo e2e suite installs this file into code-server.
  ['package', check('npm', ['run', '--silent', 'package'])],
  ['e2e', vitest('vitest.e2e.config.mts', 'e2e')],
];

const argOf = (flag) => process.argv.find((a) => a.startsWith(`--${flag}=`))?.split('=')[1]?.split(',');
const only = argOf('only');
const skip = argOf('skip') ?? [];
const totals = { passed: 0, failed: 0, skipped: 0 };
const lines = [];
for (const [name, stage] of STAGES) {
  if ((only && !only.includes(name)) || skip.includes(name)) continue;
  if (name === 'schema-types' && !existsSync(join(ROOT, 'scripts', 'gen-types.mjs'))) continue;
  if (name === 'e2e' && !existsSync(join(ROOT, 'test', 'e2e'))) continue;
  process.stdout.write(`\n=== ${name} ===\n`);
  const t0 = Date.now();
  const r = await stage();
  totals.passed += r.passed;
  totals.failed += r.failed;
  totals.skipped += r.skipped ?? 0;
  lines.push(`${r.failed ? 'FAIL' : 'ok  '} ${name.padEnd(12)} ${r.passed} passed, ${r.failed} failed  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
process.stdout.write(`\n${lines.join('\n')}\n\n`);
const skippedNote = totals.skipped ? `, ${totals.skipped} skipped` : '';
process.stdout.write(`${totals.passed} passed, ${totals.failed} failed${skippedNote}\n`);
process.exit(totals.failed === 0 && totals.passed > 0 ? 0 : 1);
