// The headless runner (`npm run demo`, `node dist/cli.js <command>`): the same engine as the extension,
// driven from a terminal. See `node dist/cli.js --help`.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type RunConfig } from './core/config';
import { DEFAULT_BASELINE, DEFAULT_METHODS, formatTable, type MethodPreset } from './core/compare';
import { COMPARISON_FILE, estimateWords, replicateRuns, runFairComparison } from './core/fairComparison';
import { FAIR_DEFAULTS, planCost, planFair, type FairSettings, type ProtocolKind } from './core/protocol';
import { formatFairTable } from './core/fairTable';
import { Engine } from './core/engine';
import { workerCwd, workerEnv, type LauncherKind } from './core/launcher';
import { execa } from 'execa';
import { ProgressBoard } from './core/progress';
import { renderReport } from './core/report';
import { isTerminal } from './core/runState';
import type { RunInfo } from './core/runStore';
import { demoComparison, DEMO_TASKS, type DemoTask } from './core/demo';
import { printable } from './core/text';

/** Multi-line text for the terminal: each line printable() (escapes shown, long lines cut). */
const printableLines = (text: string): string => text.split('\n').map((line) => printable(line, 1000)).join('\n');

const HELP = `RiemannLoRA Lab — headless runner

Usage: node dist/cli.js <command> [options]

Commands:
  demo                 RiemannLoRA (Riemannion + LOI) against LoRA-AdamW, PiSSA and ScaledAdamW on the
                       built-in default task by the fair protocol; progress, the table with intervals,
                       the verdict and an HTML report.
      --quick            same shape, a few steps per run (CI)
      --task KIND        builtin-default (default) | synthetic-lowrank
  run --config FILE    train one run
  compare --config FILE
                       the config's task and budget with each method (default: the demo's four)
      --methods LIST     comma-separated: ${DEFAULT_METHODS.map((m) => m.id).join(', ')}
      --baseline ID      the method the others are measured against (default: lora-adamw)
      --protocol KIND    fair (default): a learning-rate search per method with the same budget, then
                         matched seeds, intervals and a verdict (docs/comparisons.md);
                         quick: one run per method at the catalogue's default learning rate
      --trials T         fair: learning rates per method (default ${FAIR_DEFAULTS.trials}; successive halving)
      --seeds K          fair: matched seeds per method (default ${FAIR_DEFAULTS.seeds}, at least 2)
  list                 runs under the output root with state, step and final loss (smoothed)
  validate --config FILE
                       check a run config against the schema (and with the worker when Python is found)

Options:
  --out DIR            runs root (default: .rlora-runs in the current folder)
  --python PATH        worker interpreter (default: $RLORA_PYTHON, else .venv/bin/python of the project)
  --launcher KIND      python (default) | torchrun
  --nproc N            processes per node with torchrun (default 1)
  --concurrency N      workers at once (default 2)
  --no-report          compare/demo: skip the HTML report
  -h, --help           this help

Exit status: 0 when every run completed; 1 when a run failed or diverged; 2 for bad usage or config;
130 when interrupted (Ctrl-C stops the runs, which checkpoint first; a second Ctrl-C kills them).`;

class UsageError extends Error {}

/** The project folder: where dist/cli.js (or src/cli.ts) lives, one level up. */
function projectRoot(): string {
  const script = process.argv[1] ? resolve(process.argv[1]) : process.cwd();
  for (let dir = dirname(script); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'native-worker', 'riemannlora'))) return dir;
    if (dirname(dir) === dir) return process.cwd();
  }
}

function pythonPath(given: string | undefined, root: string): string {
  if (given) return given;
  if (process.env.RLORA_PYTHON) return process.env.RLORA_PYTHON;
  const venv = join(root, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

function intOption(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer (got ${v})`);
  return n;
}

interface Common {
  engine: Engine;
  board: ProgressBoard;
  reportEnabled: boolean;
}

function makeEngine(values: Record<string, string | boolean | undefined>): Common {
  const root = projectRoot();
  const launcher = (values.launcher as string | undefined) ?? 'python';
  if (launcher !== 'python' && launcher !== 'torchrun') throw new UsageError(`--launcher must be python or torchrun (got ${launcher})`);
  const out = resolve((values.out as string | undefined) ?? '.rlora-runs');
  mkdirSync(out, { recursive: true });
  const engine = new Engine({
    root: out,
    python: pythonPath(values.python as string | undefined, root),
    nativeWorkerDir: process.env.RLORA_NATIVE_WORKER ?? join(root, 'native-worker'),
    launcher: launcher as LauncherKind,
    nproc: intOption(values.nproc as string | undefined, 'nproc', 1),
    maxConcurrent: intOption(values.concurrency as string | undefined, 'concurrency', 2),
    env: { HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE ?? '1', TOKENIZERS_PARALLELISM: 'false' },
  });
  const board = new ProgressBoard(process.stdout);
  engine.on('run-added', (info) => board.update(info));
  engine.on('run-updated', (info) => board.update(info));
  // The bars show the latest logged train loss (raw) to the end; the smoothed final loss is in the line and table after.
  engine.on('run-finished', (info) => board.update(info));
  engine.on('metrics-appended', (d) => {
    const last = d.train[d.train.length - 1];
    if (last) board.progress(d.key, last.step, last.loss);
  });
  return { engine, board, reportEnabled: !values['no-report'] };
}

/** Ctrl-C: stop every active run (they checkpoint); a second Ctrl-C kills them. */
function handleInterrupts(engine: Engine, keys: () => string[]): { interrupted: () => boolean; dispose: () => void } {
  let count = 0;
  const onSignal = () => {
    count += 1;
    for (const key of keys()) {
      const info = engine.get(key);
      if (!info || isTerminal(info.state)) continue;
      try {
        if (count === 1) engine.stop(key);
        else engine.kill(key);
      } catch {
        // already gone
      }
    }
    process.stderr.write(count === 1 ? '\nstopping the runs (they checkpoint first); Ctrl-C again to kill them\n' : '\nkilling the runs\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    interrupted: () => count > 0,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function exitCodeOf(runs: RunInfo[], interrupted: boolean): number {
  if (runs.some((r) => r.state === 'failed' || r.state === 'diverged' || r.state === 'damaged')) return 1;
  if (interrupted || runs.some((r) => r.state === 'stopped')) return 130;
  return 0;
}

function printFailures(runs: RunInfo[]): void {
  for (const r of runs) {
    if (r.state !== 'failed' && r.state !== 'diverged' && r.state !== 'damaged') continue;
    const e = r.damaged ? { kind: 'damaged', message: r.damaged, hint: undefined } : r.last_error;
    const why = e ? `${printable(e.kind, 40)}: ${printable(e.message, 2000)}${e.hint ? `\n  hint: ${printable(e.hint, 1000)}` : ''}` : 'no error recorded';
    process.stderr.write(`\n${printable(r.label)} ${r.state}: ${why}\n  run directory: ${printable(r.dir, 1000)}\n`);
  }
}

async function runComparison(
  c: Common,
  base: RunConfig,
  opts: { methods?: MethodPreset[]; baseline?: string; name: string; title: string; facts: Record<string, string> },
): Promise<number> {
  const t0 = Date.now();
  const { experiment, runs } = c.engine.createComparison(base, { methods: opts.methods, baseline: opts.baseline, name: opts.name });
  const signals = handleInterrupts(c.engine, () => runs.map((r) => r.key));
  const finished = await Promise.all(runs.map((r) => c.engine.wait(r.key)));
  c.board.done();
  signals.dispose();
  const comparison = c.engine.comparison(experiment.id);
  process.stdout.write(`\n${formatTable(comparison)}\n`);
  printFailures(finished);
  process.stdout.write(`\nruns: ${experiment.dir}\n`);
  if (c.reportEnabled) {
    const path = join(experiment.dir, 'report.html');
    const snaps = runs.map((r) => c.engine.snapshot(r.key));
    writeFileSync(
      path,
      renderReport({
        title: opts.title,
        subtitle: `experiment ${experiment.id}`,
        comparison,
        runs: snaps.map((s) => ({ key: s.info.key, label: s.info.label, train: s.train, eval: s.eval })),
        facts: { ...opts.facts, 'total wall time': `${((Date.now() - t0) / 1000).toFixed(1)} s` },
      }),
    );
    process.stdout.write(`report: ${path}\n`);
  }
  process.stdout.write(`total wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return exitCodeOf(finished, signals.interrupted());
}

function protocolOption(values: Record<string, string | boolean | undefined>, defaults: FairSettings = FAIR_DEFAULTS): { kind: ProtocolKind; settings: FairSettings } {
  const kind = (values.protocol as string | undefined) ?? 'fair';
  if (kind !== 'fair' && kind !== 'quick') throw new UsageError(`--protocol must be fair or quick (got ${kind})`);
  if (kind === 'quick' && (values.trials !== undefined || values.seeds !== undefined)) throw new UsageError('--trials and --seeds belong to --protocol fair');
  const settings = {
    trials: intOption(values.trials as string | undefined, 'trials', defaults.trials),
    seeds: intOption(values.seeds as string | undefined, 'seeds', defaults.seeds),
  };
  if (settings.seeds < 2) throw new UsageError('--seeds must be at least 2 (an interval needs two values; --protocol quick runs one seed)');
  return { kind, settings };
}

/** The fair protocol from a terminal: the plan and its cost, progress, the table with intervals, the verdict. */
async function runFair(
  c: Common,
  base: RunConfig,
  opts: { methods: readonly MethodPreset[]; baseline: string; settings: FairSettings; name: string; title: string; facts: Record<string, string> },
): Promise<number> {
  const t0 = Date.now();
  const plan = planFair(base, opts.methods, opts.baseline, opts.settings);
  const cost = planCost(plan);
  process.stdout.write(
    `fair protocol: ${plan.methods.length} methods × (${plan.rungs.map((r) => `${r.trials} × ${r.steps}`).join(' + ') || 'no'} search steps + ${plan.replicateSeeds.length} seeds × ${plan.steps} steps) = ` +
      `${cost.runs} runs, ${Number(cost.fullRuns.toFixed(1))} full-run equivalents\n\n`,
  );
  const abort = new AbortController();
  const keys: string[] = [];
  c.engine.on('run-added', (info) => keys.push(info.key));
  const signals = handleInterrupts(c.engine, () => {
    abort.abort();
    return keys;
  });
  let stage = '';
  let said = 0; // 1: the estimate from the first steps was shown, 2: the one from the first ended run
  const { experiment, record, runs } = await runFairComparison(c.engine, base, {
    ...opts,
    concurrency: c.engine.maxConcurrent,
    signal: abort.signal,
    onRecord: (r) => {
      const words = estimateWords(r);
      const eta = words ? ` (${words})` : '';
      const chosen = r.methods.filter((m) => m.chosen_lr !== null).map((m) => `${m.label} ${m.chosen_lr}`);
      const line = chosen.length ? `learning rates chosen: ${chosen.join(', ')}` : '';
      if (line && line !== stage) {
        stage = line;
        c.board.note(`${line}${eta}`);
      } else if (eta && said < (r.estimate.ended_runs > 0 ? 2 : 1)) {
        // Said twice at most: once projected from the first steps, once the first run has ended.
        said = r.estimate.ended_runs > 0 ? 2 : 1;
        c.board.note(`${said === 2 ? 'first run ended' : 'first steps measured'}${eta}`);
      }
    },
  });
  c.board.done();
  signals.dispose();
  process.stdout.write(`\n${formatFairTable(record)}\n`);
  if (record.verdict.length) process.stdout.write(`\n${record.verdict.map((v) => `• ${v}`).join('\n')}\n`);
  const replicates = replicateRuns(record);
  printFailures(runs.filter((r) => replicates.has(r.run)));
  const trialFailures = runs.filter((r) => !replicates.has(r.run) && r.state !== 'completed');
  if (trialFailures.length) {
    process.stdout.write(`\n${trialFailures.length} search trial(s) did not complete (a failed or diverged rate ranks last): ${trialFailures.map((r) => `${r.run} (${r.state})`).join(', ')}\n`);
  }
  process.stdout.write(`\nruns: ${experiment.dir}\n${COMPARISON_FILE}: ${join(experiment.dir, COMPARISON_FILE)}\n`);
  if (c.reportEnabled) {
    const path = join(experiment.dir, 'report.html');
    const snaps = runs.filter((r) => replicates.has(r.run)).map((r) => c.engine.snapshot(r.key));
    writeFileSync(
      path,
      renderReport({
        title: opts.title,
        subtitle: `experiment ${experiment.id}`,
        fair: record,
        runs: snaps.map((s) => ({ key: s.info.key, label: s.info.label, train: s.train, eval: s.eval, group: s.info.method })),
        facts: { ...opts.facts, protocol: 'fair', 'total wall time': `${((Date.now() - t0) / 1000).toFixed(1)} s` },
      }),
    );
    process.stdout.write(`report: ${path}\n`);
  }
  process.stdout.write(`total wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s (${runs.length} runs)\n`);
  if (signals.interrupted() || record.state === 'stopped') return 130;
  return record.state === 'complete' ? 0 : 1;
}

function describeConfig(config: RunConfig): Record<string, string> {
  return {
    task: config.task.kind,
    steps: String(config.train.steps),
    'batch size': String(config.train.batch_size ?? 8),
    rank: String(config.adapter.rank),
    seed: String(config.train.seed ?? 0),
  };
}

/**
 * The worker's own verdict on a config file (`python -m riemannlora.worker validate`): what the schema
 * cannot say (paths exist, a model folder holds a model, the device and the memory this machine has,
 * the trainer's init x optimizer rules). `skipped` when the worker cannot be started at all.
 */
async function workerCheck(configPath: string, python: string | undefined): Promise<{ ok: boolean; output: string; problems: string; skipped?: string }> {
  const root = projectRoot();
  const interpreter = pythonPath(python, root);
  const nativeWorkerDir = process.env.RLORA_NATIVE_WORKER ?? join(root, 'native-worker');
  const r = await execa(interpreter, ['-m', 'riemannlora.worker', 'validate', '--config', resolve(configPath)], {
    cwd: workerCwd({ nativeWorkerDir }),
    env: workerEnv({ nativeWorkerDir }),
    reject: false,
    all: true,
  });
  if (r.exitCode === undefined) return { ok: true, output: '', problems: '', skipped: `cannot run ${printable(interpreter)}: ${r.shortMessage}` };
  return { ok: r.exitCode === 0, output: (r.all ?? '').trimEnd(), problems: String(r.stderr ?? '').trimEnd() };
}

/** `run` and `compare` refuse, before anything is created, a config that the worker would refuse. */
async function refuseWhatTheWorkerRefuses(configPath: string, python: string | undefined): Promise<void> {
  const check = await workerCheck(configPath, python);
  if (!check.ok) throw new WorkerRefusal(`${check.problems || check.output}\n(nothing was created; \`validate --config\` lists the same problems)`);
}

class WorkerRefusal extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      python: { type: 'string' },
      launcher: { type: 'string' },
      nproc: { type: 'string' },
      concurrency: { type: 'string' },
      task: { type: 'string' },
      config: { type: 'string' },
      methods: { type: 'string' },
      baseline: { type: 'string' },
      protocol: { type: 'string' },
      trials: { type: 'string' },
      seeds: { type: 'string' },
      'no-report': { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(`${HELP}\n`);
    return command || values.help ? 0 : 2;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  const needConfig = () => {
    if (!values.config) throw new UsageError(`${command} needs --config FILE`);
    return loadConfig(values.config);
  };

  switch (command) {
    case 'demo': {
      const task = (values.task ?? 'builtin-default') as DemoTask;
      if (!DEMO_TASKS.includes(task)) throw new UsageError(`--task must be one of ${DEMO_TASKS.join(', ')} (got ${task})`);
      const concurrency = intOption(values.concurrency, 'concurrency', 2);
      const demo = demoComparison(task, { quick: !!values.quick, threads: concurrency >= 2 ? 1 : 0 });
      const protocol = protocolOption(values, demo.settings);
      const c = makeEngine(values);
      process.stdout.write(
        `RiemannLoRA demo: ${demo.methods.map((m) => m.label).join(' vs ')} on ${task}${values.quick ? ' (quick)' : ''}, ` +
          `${demo.base.train.steps} steps, ${concurrency} at a time\n`,
      );
      const opts = { name: demo.name, title: `RiemannLoRA vs LoRA baselines — ${task}`, facts: describeConfig(demo.base) };
      if (protocol.kind === 'quick') return runComparison(c, demo.base, { ...opts, methods: [...demo.methods], baseline: demo.baseline });
      return runFair(c, demo.base, { ...opts, methods: demo.methods, baseline: demo.baseline, settings: protocol.settings });
    }
    case 'compare': {
      const base = needConfig();
      await refuseWhatTheWorkerRefuses(values.config!, values.python);
      let methods: MethodPreset[] | undefined;
      if (values.methods) {
        methods = values.methods.split(',').map((id) => {
          const m = DEFAULT_METHODS.find((p) => p.id === id.trim());
          if (!m) throw new UsageError(`unknown method ${id}; known: ${DEFAULT_METHODS.map((p) => p.id).join(', ')}`);
          return m;
        });
      }
      if (values.baseline && !(methods ?? DEFAULT_METHODS).some((m) => m.id === values.baseline)) {
        throw new UsageError(`--baseline ${values.baseline} is not one of the compared methods`);
      }
      const protocol = protocolOption(values);
      const c = makeEngine(values);
      const opts = { name: `${base.name ?? base.task.kind} comparison`, title: `Comparison — ${base.name ?? base.task.kind}`, facts: describeConfig(base) };
      if (protocol.kind === 'quick') return runComparison(c, base, { ...opts, methods, baseline: values.baseline });
      const chosen = methods ?? [...DEFAULT_METHODS];
      const baseline = values.baseline ?? (chosen.some((m) => m.id === DEFAULT_BASELINE) ? DEFAULT_BASELINE : chosen[0]!.id);
      return runFair(c, base, { ...opts, methods: chosen, baseline, settings: protocol.settings });
    }
    case 'run': {
      const config = needConfig();
      await refuseWhatTheWorkerRefuses(values.config!, values.python);
      const c = makeEngine(values);
      const info = c.engine.createRun(config);
      const signals = handleInterrupts(c.engine, () => [info.key]);
      const done = await c.engine.wait(info.key);
      c.board.done();
      signals.dispose();
      const s = done.summary;
      process.stdout.write(
        `\n${printable(done.label)}: ${done.state} at step ${s?.steps ?? done.step}` +
          (s?.final_loss_smoothed !== null && s?.final_loss_smoothed !== undefined ? `, final loss (smoothed) ${Number(s.final_loss_smoothed.toPrecision(4))}` : '') +
          (s?.best_eval ? `, best eval ${s.best_eval.name} ${Number(s.best_eval.value.toPrecision(4))}` : '') +
          `\nrun directory: ${printable(done.dir, 1000)}\n`,
      );
      printFailures([done]);
      return exitCodeOf([done], signals.interrupted());
    }
    case 'list': {
      const root = resolve(values.out ?? '.rlora-runs');
      const { RunStore } = await import('./core/runStore');
      const { summarizeEventsFile } = await import('./core/compare');
      const store = new RunStore(root);
      const runs = store.listAll();
      if (!runs.length) {
        process.stdout.write(`no runs under ${root}\n`);
        return 0;
      }
      // A summary cached under the old names is recomputed from the events here (list writes nothing).
      const loss = (r: (typeof runs)[number]) => (r.summary ?? (r.summary_stale ? summarizeEventsFile(store.eventsPath(r.key)) : undefined))?.final_loss_smoothed;
      const rows = runs.map((r) => {
        const l = loss(r);
        return [r.key, printable(r.method, 60), r.damaged ? `damaged: ${printable(r.damaged, 120)}` : r.state, `${r.step}/${r.steps}`, l !== null && l !== undefined ? String(Number(l.toPrecision(4))) : '—'];
      });
      const header = ['run', 'method', 'state', 'step', 'final loss (smoothed)'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (cells: string[]) => cells.map((s, i) => s.padEnd(widths[i]!)).join('  ').trimEnd();
      process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
      return 0;
    }
    case 'validate': {
      needConfig();
      process.stdout.write(`${printable(values.config!, 500)}: valid against schema/run-config.schema.json\n`);
      // The worker adds what a schema cannot check (paths exist, the device and memory, packages).
      const check = await workerCheck(values.config!, values.python);
      if (check.skipped) {
        process.stdout.write(`(worker check skipped: ${check.skipped}; pass --python)\n`);
        return 0;
      }
      if (check.output) process.stdout.write(`${check.output}\n`);
      return check.ok ? 0 : 2;
    }
    default:
      throw new UsageError(`unknown command ${command}; see --help`);
  }
}

/**
 * Exits once stdout and stderr have taken everything written to them: on a pipe, writes are asynchronous
 * and a bare process.exit() cuts the output (`list | wc -l` lost lines past 64 KiB).
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
  if (err instanceof ConfigError || err instanceof WorkerRefusal) {
    process.stderr.write(`${printableLines(err.message)}\n`);
    exitAfterFlush(2);
    return;
  }
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`${printableLines((err as Error).message)}\n(see --help)\n`);
    exitAfterFlush(2);
    return;
  }
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  exitAfterFlush(1);
});
