#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --only step,memory,convergence,pipeline,chart] [-- --threads N]`
// Runs the benchmarks of issue 7 (bench/README.md) and writes bench/results/*.json and bench/results/latest.md.
// --quick: sized for under 10 minutes on 2 CPU cores. The GPU script (bench/gpu.py) is separate: it needs a GPU.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const ALL = ['step', 'memory', 'convergence', 'pipeline', 'chart'];
const only = opt('--only', ALL.join(',')).split(',');
const unknown = only.filter((x) => !ALL.includes(x));
if (unknown.length) {
  process.stderr.write(`bench: unknown --only entries ${unknown.join(', ')} (known: ${ALL.join(', ')})\n`);
  process.exit(2);
}
const threads = opt('--threads', process.env.OMP_NUM_THREADS || '1');
const python = process.env.RLORA_PYTHON || join(root, '.venv', 'bin', 'python');
if (!existsSync(python)) {
  process.stderr.write(`bench: no Python at ${python}; run \`npm run setup\` (or set RLORA_PYTHON)\n`);
  process.exit(1);
}
const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
const env = { ...process.env, OMP_NUM_THREADS: threads, MKL_NUM_THREADS: threads, PYTHONPATH: join(root, 'native-worker') };
const q = quick ? ['--quick'] : [];

function run(label, cmd, cmdArgs, { capture } = {}) {
  const t0 = Date.now();
  process.stderr.write(`\n[bench] ${label}: ${cmd} ${cmdArgs.join(' ')}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, env, stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8', maxBuffer: 1 << 28 });
  const s = ((Date.now() - t0) / 1000).toFixed(0);
  if (r.status !== 0) {
    process.stderr.write(`[bench] ${label} FAILED (exit ${r.status ?? r.signal}) after ${s} s\n`);
    return null;
  }
  process.stderr.write(`[bench] ${label} done in ${s} s\n`);
  if (capture) writeFileSync(join(results, capture), r.stdout);
  return r;
}

const t0 = Date.now();
const failed = [];
const py = (file, extra = []) => [join('bench', file), ...q, ...extra];
if (only.includes('step') && !run('step overhead + LOI cost', python, py('step_overhead.py', ['--profile']))) failed.push('step');
if (only.includes('memory') && !run('memory', python, py('memory.py'))) failed.push('memory');
if (only.includes('convergence') && !run('convergence', python, py('convergence.py'))) failed.push('convergence');
if (only.includes('pipeline') || only.includes('chart')) {
  if (!run('build TypeScript benches', process.execPath, ['bench/ts/build.mjs'])) failed.push('pipeline', 'chart');
  else {
    if (only.includes('pipeline') && !run('extension pipeline', process.execPath, ['node_modules/.cache/rlora-bench/pipeline.cjs', ...q], { capture: 'pipeline.json' })) failed.push('pipeline');
    if (only.includes('chart') && !run('chart frames (headless Chromium)', process.execPath, ['bench/ts/chart.mjs'], { capture: 'chart.json' })) failed.push('chart');
  }
}
const wallS = (Date.now() - t0) / 1000;
const { writeReport } = await import('../bench/report.mjs');
const command = `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
let opts = { command, wallS };
if (only.length !== ALL.length && existsSync(join(results, 'latest.md'))) {
  // a partial re-run: the other tables still come from the earlier command(s)
  const previous = /^Command: (.*)\.$/m.exec(readFileSync(join(results, 'latest.md'), 'utf8'))?.[1];
  if (previous) opts = { commandMd: `${previous}; re-run: \`${command}\` (${Math.round(wallS)} s)` };
}
const text = writeReport(opts);
process.stdout.write(`\n${text}\n`);
process.stderr.write(`[bench] wrote bench/results/latest.md and bench/README.md (${Math.round(wallS)} s, ${cpus().length} CPUs)\n`);
if (failed.length) {
  process.stderr.write(`[bench] failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
