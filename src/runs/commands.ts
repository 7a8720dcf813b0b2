// The palette and context-menu commands that act on runs: start, stop, resume, delete, compare with the
// LoRA baselines, the demo comparison, open chart / comparison, export the adapter, show the log; plus the
// one notification per finished or failed run.
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as vscode from 'vscode';
import { ConfigError } from '../core/config';
import { DEFAULT_BASELINE, DEFAULT_METHODS } from '../core/compare';
import { DEMO_TASKS, type DemoComparison, type DemoTask, demoComparison } from '../core/demo';
import { runFairComparison } from '../core/fairComparison';
import { FAIR_DEFAULTS, planCost, planFair, type FairSettings } from '../core/protocol';
import type { Engine } from '../core/engine';
import { destinationState, ExportError, exportAdapter as copyAdapter, freeDestination } from '../core/exportAdapter';
import type { RunInfo, RunKey } from '../core/runStore';
import { isTerminal } from '../core/runState';
import { chooseConfigFile, readConfigFile } from '../configure/flows';
import { type ExperimentNode, experimentIdOf, type Node, type RunNode } from '../experiments/tree';
import type { PanelManager } from '../panels/panels';
import { requireTrust } from '../trust';
import type { RunLogs } from './logs';

export interface RunServices {
  engine: () => Engine | undefined;
  /** Resolves the interpreter and updates the engine's launch settings; false when launching is impossible. */
  prepareLaunch: () => Promise<boolean>;
  panels: PanelManager;
  logs: RunLogs;
  log: vscode.LogOutputChannel;
  refresh: () => void;
}

type Arg = Node | RunKey | vscode.Uri | undefined;

const isRunNode = (a: unknown): a is RunNode => typeof a === 'object' && a !== null && (a as Node).kind === 'run';
const isExperimentNode = (a: unknown): a is ExperimentNode => typeof a === 'object' && a !== null && (a as Node).kind === 'experiment';

function needEngine(s: RunServices): Engine | undefined {
  const e = s.engine();
  if (!e) void vscode.window.showErrorMessage('RiemannLoRA: open a folder first: runs are kept in the workspace.');
  return e;
}

/** The run a command applies to: the tree node, a key, or a pick among runs matching `filter`. */
async function chooseRun(s: RunServices, arg: Arg, title: string, filter: (r: RunInfo) => boolean = () => true): Promise<RunInfo | undefined> {
  const engine = needEngine(s);
  if (!engine) return undefined;
  if (isRunNode(arg)) return engine.get(arg.info.key) ?? arg.info;
  if (typeof arg === 'string') return engine.get(arg);
  const runs = engine.list().filter(filter).sort((a, b) => b.created_at - a.created_at);
  if (!runs.length) {
    void vscode.window.showInformationMessage(`RiemannLoRA: no run to ${title.toLowerCase()}.`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    runs.map((r) => ({ label: r.label, description: `${r.method} · ${r.state}`, detail: r.key, run: r })),
    { title: `RiemannLoRA: ${title}`, matchOnDetail: true },
  );
  return pick?.run;
}

function notifyFinished(s: RunServices, info: RunInfo): void {
  if (!vscode.workspace.getConfiguration('riemannlora').get('notifyOnFinish', true)) return;
  const loss = info.summary?.final_loss_smoothed;
  const lossText = loss === null || loss === undefined ? '' : ` — final loss (smoothed) ${Number(loss.toPrecision(4))}`;
  const actions = ['Open Chart', 'Show Log'] as const;
  const failed = info.state === 'failed' || info.state === 'diverged';
  const why = failed && info.last_error ? `: ${info.last_error.message.split('\n')[0]}${info.last_error.hint ? ` (${info.last_error.hint})` : ''}` : '';
  const text = `RiemannLoRA: ${info.label} ${info.state}${lossText}${why}`;
  const show = failed ? vscode.window.showErrorMessage : vscode.window.showInformationMessage;
  void show(text, ...actions).then((choice) => {
    if (choice === 'Open Chart') s.panels.openRun(info.key);
    else if (choice === 'Show Log') s.logs.show(info.key);
  });
}

export function attachNotifications(s: RunServices, engine: Engine): void {
  // One toast per run: the engine emits `run-finished` once per run it watched to the end.
  const seen = new Set<RunKey>();
  engine.on('run-finished', (info) => {
    if (seen.has(info.key) || !isTerminal(info.state)) return;
    seen.add(info.key);
    // A fair comparison's runs are told once, with its verdict (compare() above).
    if (engine.store.getExperiment(info.experiment)?.protocol === 'fair') return;
    notifyFinished(s, info);
  });
  // A resumed run may finish again: forget it once it is back in the queue.
  engine.on('run-updated', (info) => {
    if (!isTerminal(info.state)) seen.delete(info.key);
  });
  engine.on('warning', (w) => s.log.warn(`${w.key ? `${w.key}: ` : ''}${w.message}`));
}

async function startRun(s: RunServices, arg: Arg): Promise<RunInfo | undefined> {
  if (!requireTrust('Starting a run')) return undefined;
  const engine = needEngine(s);
  if (!engine) return undefined;
  // A queued run from the tree: start it; otherwise a config file.
  if (isRunNode(arg) && arg.info.state === 'queued') {
    if (!(await s.prepareLaunch())) return undefined;
    engine.start(arg.info.key);
    return engine.get(arg.info.key);
  }
  const uri = await chooseConfigFile(isExperimentNode(arg) ? arg.configUri : arg instanceof vscode.Uri ? arg : undefined);
  if (!uri) return undefined;
  let config;
  try {
    config = await readConfigFile(uri);
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : String(err);
    void vscode.window.showErrorMessage(`RiemannLoRA: ${vscode.workspace.asRelativePath(uri)} is not a valid run configuration: ${msg}`, 'Open Configuration').then((c) => {
      if (c) void vscode.window.showTextDocument(uri);
    });
    return undefined;
  }
  if (!(await s.prepareLaunch())) return undefined;
  const experiment = experimentIdOf(uri);
  if (!engine.store.getExperiment(experiment)) engine.store.createExperiment({ id: experiment, name: config.name ?? experiment, kind: 'single' });
  const info = engine.createRun(config, { experiment, label: config.name ? `${config.name} ${new Date().toLocaleTimeString()}` : undefined });
  s.refresh();
  s.log.info(`started ${info.key} from ${uri.fsPath}`);
  s.panels.showStarted(info.key);
  return info;
}

async function compareBaselines(s: RunServices, arg: Arg): Promise<void> {
  if (!requireTrust('Comparing with the LoRA baselines')) return;
  const engine = needEngine(s);
  if (!engine) return;
  const uri = await chooseConfigFile(isExperimentNode(arg) ? arg.configUri : arg instanceof vscode.Uri ? arg : undefined);
  if (!uri) return;
  let config;
  try {
    config = await readConfigFile(uri);
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: ${(err as Error).message}`);
    return;
  }
  const name = `${config.name ?? experimentIdOf(uri)} vs LoRA baselines`;
  await compare(s, engine, { base: config, methods: DEFAULT_METHODS, baseline: DEFAULT_BASELINE, settings: fairSettings(), name });
}

/** The fair protocol's settings (riemannlora.comparison.trials / .seeds). */
function fairSettings(): FairSettings {
  const c = vscode.workspace.getConfiguration('riemannlora');
  return { trials: c.get<number>('comparison.trials', FAIR_DEFAULTS.trials), seeds: c.get<number>('comparison.seeds', FAIR_DEFAULTS.seeds) };
}

/**
 * Asks Fair or Quick, with what each costs, then starts the comparison and opens its tab. A fair
 * comparison's runs do not notify one by one: one notification with the verdict when it ends.
 */
async function compare(s: RunServices, engine: Engine, c: DemoComparison): Promise<void> {
  let plan;
  try {
    plan = planFair(c.base, c.methods, c.baseline, c.settings);
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: cannot plan the comparison: ${(err as Error).message}`);
    return;
  }
  const cost = planCost(plan);
  const fair = {
    label: 'Fair',
    description: `${cost.runs} runs, ${Number(cost.fullRuns.toFixed(1))} full-run equivalents`,
    detail: `${plan.settings.trials} learning rates searched per method with the same budget, then ${plan.replicateSeeds.length} matched seeds: intervals and a verdict (docs/comparisons.md)`,
  };
  const quick = { label: 'Quick', description: `${c.methods.length} runs`, detail: "One seed per method at the catalogue's default learning rate: no interval, no verdict" };
  const pick = await vscode.window.showQuickPick([fair, quick], { title: `RiemannLoRA: ${c.name}`, placeHolder: 'Which comparison protocol?' });
  if (!pick) return;
  if (!(await s.prepareLaunch())) return;
  if (pick === quick) {
    const { experiment } = engine.createComparison(c.base, { methods: c.methods, baseline: c.baseline, name: `${c.name} (quick)` });
    s.refresh();
    s.panels.openComparison({ experiment: experiment.id });
    return;
  }
  let opened = false;
  const done = runFairComparison(engine, c.base, {
    methods: c.methods,
    baseline: c.baseline,
    settings: c.settings,
    name: c.name,
    concurrency: engine.maxConcurrent,
    onRecord: (_record, experiment) => {
      s.refresh();
      if (opened) return;
      opened = true;
      s.panels.openComparison({ experiment: experiment.id });
    },
  });
  void vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `RiemannLoRA: ${c.name}` }, () => done.catch(() => undefined));
  try {
    const { experiment, record } = await done;
    s.log.info(`fair comparison ${experiment.id} ${record.state}: ${record.verdict.join(' | ') || 'no verdict'}`);
    const text = record.verdict[0] ?? `the comparison ended ${record.state} without a verdict (see its tab)`;
    const more = record.verdict.length > 1 ? ` (+${record.verdict.length - 1} more in the tab)` : '';
    const show = record.state === 'complete' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    void show(`RiemannLoRA: ${c.name}: ${text}${more}`, 'Open Comparison').then((choice) => {
      if (choice) s.panels.openComparison({ experiment: experiment.id });
    });
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: ${c.name} did not run: ${(err as Error).message}`);
  }
}

async function runDemo(s: RunServices): Promise<void> {
  if (!requireTrust('Running the demo comparison')) return;
  const engine = needEngine(s);
  if (!engine) return;
  const setting = vscode.workspace.getConfiguration('riemannlora').get<string>('demo.task', 'builtin-default');
  const task: DemoTask = (DEMO_TASKS as readonly string[]).includes(setting) ? (setting as DemoTask) : 'builtin-default';
  // The same comparison as `npm run demo` (src/core/demo.ts), with the fair protocol's settings.
  const demo = demoComparison(task);
  await compare(s, engine, { ...demo, settings: fairSettings(), name: `Demo comparison (${task}) ${new Date().toLocaleTimeString()}` });
}

async function stopRun(s: RunServices, arg: Arg): Promise<void> {
  const run = await chooseRun(s, arg, 'Stop Run', (r) => r.state === 'running' || r.state === 'queued');
  if (!run) return;
  if (run.state !== 'running' && run.state !== 'queued') {
    void vscode.window.showInformationMessage(`RiemannLoRA: ${run.label} is ${run.state}, not running.`);
    return;
  }
  // Stopping only signals a worker that runs on this machine, verified by its command line, and writes
  // no file (the worker records its own end): allowed in Restricted Mode too.
  s.engine()!.stop(run.key);
  s.log.info(`stop requested for ${run.key}`);
}

async function resumeRun(s: RunServices, arg: Arg): Promise<void> {
  if (!requireTrust('Resuming a run')) return;
  const run = await chooseRun(s, arg, 'Resume Run', (r) => r.state === 'stopped' || r.state === 'failed');
  if (!run) return;
  if (!(await s.prepareLaunch())) return;
  try {
    s.engine()!.resume(run.key);
  } catch (err) {
    void vscode.window.showErrorMessage(`RiemannLoRA: ${(err as Error).message}`);
    return;
  }
  s.panels.showStarted(run.key);
}

async function deleteRun(s: RunServices, arg: Arg): Promise<void> {
  if (!requireTrust('Deleting a run', 'write')) return;
  const run = await chooseRun(s, arg, 'Delete Run', (r) => r.state !== 'running');
  if (!run) return;
  const engine = s.engine()!;
  const fresh = engine.get(run.key);
  if (fresh && (fresh.state === 'running' || fresh.state === 'queued')) {
    void vscode.window.showWarningMessage(`RiemannLoRA: ${run.label} is ${fresh.state}: stop it before deleting it.`);
    return;
  }
  const ok = await vscode.window.showWarningMessage(
    `Delete run "${run.label}" (${run.key})? Its directory with events, checkpoints and the exported adapter is removed.`,
    { modal: true },
    'Delete',
  );
  if (ok !== 'Delete') return;
  const dir = engine.store.runDir(run.key); // validated to stay inside the runs root
  engine.deleteRun(run.key);
  s.log.info(`deleted ${run.key} (${dir})`);
  s.refresh();
}

async function exportAdapter(s: RunServices, arg: Arg): Promise<void> {
  if (!requireTrust('Exporting an adapter', 'write')) return;
  const run = await chooseRun(s, arg, 'Export Adapter (PEFT)', (r) => existsSync(join(r.dir, 'adapter')));
  if (!run) return;
  const src = join(run.dir, 'adapter');
  if (!existsSync(src)) {
    void vscode.window.showWarningMessage(
      `RiemannLoRA: ${run.label} has no exported adapter. Set "output": {"export_adapter": true} in the config (the default of new experiments) and run it again.`,
    );
    return;
  }
  const target = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Export adapter here', title: 'Folder for the PEFT adapter' });
  if (!target?.[0]) return;
  // Never into a folder that holds something: offer the next free name instead.
  let dest = join(target[0].fsPath, `${run.run}-adapter`);
  const state = destinationState(dest);
  if (state === 'not-empty' || state === 'not-a-folder') {
    const free = freeDestination(target[0].fsPath, `${run.run}-adapter`);
    const choice = await vscode.window.showWarningMessage(
      `${dest} already exists${state === 'not-empty' ? ' and is not empty' : ''}. It is not overwritten.`,
      { modal: true },
      `Export to "${basename(free)}"`,
    );
    if (!choice) return;
    dest = free;
  }
  try {
    copyAdapter(run.dir, dest);
  } catch (err) {
    if (!(err instanceof ExportError)) throw err;
    void vscode.window.showErrorMessage(`RiemannLoRA: the adapter of ${run.label} was not exported: ${err.message}`);
    return;
  }
  s.log.info(`exported the adapter of ${run.key} to ${dest}`);
  const open = await vscode.window.showInformationMessage(
    `RiemannLoRA: adapter of ${run.label} exported to ${dest} (PEFT format: PeftModel.from_pretrained(base, "${dest}")).`,
    'Reveal',
  );
  if (open) void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(dest));
}

async function openComparison(s: RunServices, arg: Arg): Promise<void> {
  const engine = needEngine(s);
  if (!engine) return;
  if (isExperimentNode(arg)) {
    if (!arg.store) {
      void vscode.window.showInformationMessage(`RiemannLoRA: ${arg.name} has no runs yet.`);
      return;
    }
    s.panels.openComparison({ experiment: arg.id });
    return;
  }
  if (isRunNode(arg)) {
    s.panels.openComparison({ experiment: arg.info.experiment });
    return;
  }
  if (typeof arg === 'string') {
    s.panels.openComparison(engine.store.getExperiment(arg) ? { experiment: arg } : { runs: arg.split(',') });
    return;
  }
  const runs = engine.list().sort((a, b) => a.created_at - b.created_at);
  if (!runs.length) {
    void vscode.window.showInformationMessage('RiemannLoRA: no runs yet. Start one, or run "RiemannLoRA: Run Demo Comparison".');
    return;
  }
  const latest = runs[runs.length - 1]!.experiment;
  const items = runs.map((r) => ({ label: r.label, description: `${r.method} · ${r.state}`, detail: r.key, picked: r.experiment === latest, key: r.key }));
  const picks = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'RiemannLoRA: runs to compare', matchOnDetail: true });
  if (!picks?.length) return;
  const experiments = new Set(picks.map((p) => p.key.split('/')[0]));
  const all = experiments.size === 1 ? engine.runs([...experiments][0]!) : [];
  if (all.length === picks.length) s.panels.openComparison({ experiment: [...experiments][0]! });
  else s.panels.openComparison({ runs: picks.map((p) => p.key) });
}

export function registerRunCommands(context: vscode.ExtensionContext, s: RunServices): void {
  const reg = (id: string, fn: (arg: Arg) => unknown) =>
    context.subscriptions.push(
      vscode.commands.registerCommand(`riemannlora.${id}`, async (arg: Arg) => {
        try {
          return await fn(arg);
        } catch (err) {
          s.log.error(`${id}: ${(err as Error).stack ?? err}`);
          void vscode.window.showErrorMessage(`RiemannLoRA: ${(err as Error).message}`);
          return undefined;
        }
      }),
    );
  reg('startRun', (a) => startRun(s, a));
  reg('stopRun', (a) => stopRun(s, a));
  reg('resumeRun', (a) => resumeRun(s, a));
  reg('deleteRun', (a) => deleteRun(s, a));
  reg('compareBaselines', (a) => compareBaselines(s, a));
  reg('runDemo', () => runDemo(s));
  reg('openRunChart', async (a) => {
    const run = await chooseRun(s, a, 'Open Run Chart');
    if (run) s.panels.openRun(run.key);
  });
  reg('openComparison', (a) => openComparison(s, a));
  reg('exportAdapter', (a) => exportAdapter(s, a));
  reg('showRunLog', async (a) => {
    const run = await chooseRun(s, a, 'Show Run Log');
    if (run) s.logs.show(run.key);
  });
}
