// RiemannLoRA Lab, the editor face: wires the engine (src/core/, the run directories are the source of
// truth) to the Experiments tree, the commands, the run / comparison tabs, notifications and settings.
//
// Reload-safe by design: workers run detached; on activation the engine re-attaches to runs that are
// still running (`attach()`), runs that this machine queued are started again (their window went away
// before they started; src/core/queuedHere.ts), and restored panels ask for a fresh snapshot. Queued runs
// that this machine did not queue (a folder that came with a repository) are never started by themselves.
// In Restricted Mode the engine is read-only (it writes no run file) until the workspace is trusted. A run
// folder that cannot be read (damaged metadata) never stops activation: it is listed as damaged.
import { isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import { Engine } from './core/engine';
import { QueuedHere } from './core/queuedHere';
import type { RunInfo, RunKey } from './core/runStore';
import { configureInit, configureOptimizer, configureRank, newExperiment } from './configure/flows';
import { checkEnvironment, selectInterpreter } from './environment/commands';
import { describeInterpreter, resolveInterpreter } from './environment/interpreter';
import { CONFIG_GLOB, ExperimentsTree, type Node } from './experiments/tree';
import { registerConfigDiagnostics } from './diagnostics/configDiagnostics';
import { PanelManager } from './panels/panels';
import { attachNotifications, registerRunCommands, type RunServices } from './runs/commands';
import { RunLogs } from './runs/logs';
import { isTrusted } from './trust';

let engine: Engine | undefined;

function runsRoot(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const setting = vscode.workspace.getConfiguration('riemannlora').get<string>('runsRoot', '.rlora-runs') || '.rlora-runs';
  if (isAbsolute(setting)) return setting;
  return folder ? join(folder, setting) : undefined;
}

function launchSettings() {
  const c = vscode.workspace.getConfiguration('riemannlora');
  return {
    launcher: c.get<'python' | 'torchrun'>('launcher', 'python'),
    nproc: c.get<number>('torchrunNprocPerNode', 1),
    maxConcurrent: Math.max(1, c.get<number>('maxConcurrentRuns', 1)),
  };
}

export async function activate(context: vscode.ExtensionContext): Promise<{ engine: () => Engine | undefined; runTabs: () => RunKey[] }> {
  const log = vscode.window.createOutputChannel('RiemannLoRA', { log: true });
  context.subscriptions.push(log);
  const nativeWorkerDir = vscode.Uri.joinPath(context.extensionUri, 'native-worker').fsPath;
  const root = runsRoot();
  if (root) {
    engine = new Engine({ root, python: 'python3', nativeWorkerDir, ...launchSettings(), readOnly: !isTrusted() });
    log.info(`runs root ${root}; worker package from ${nativeWorkerDir}`);
  }
  const getEngine = () => engine;

  registerConfigDiagnostics(context);
  const tree = new ExperimentsTree(getEngine);
  const view = vscode.window.createTreeView('riemannlora.experiments', { treeDataProvider: tree, showCollapseAll: true });
  context.subscriptions.push(tree, view);
  const logs = new RunLogs(getEngine);
  context.subscriptions.push(logs);

  const services: RunServices = {
    engine: getEngine,
    log,
    logs,
    refresh: () => tree.refresh(),
    panels: undefined as unknown as PanelManager,
    prepareLaunch: async () => {
      if (!engine || !isTrusted()) return false;
      const interpreter = await resolveInterpreter();
      engine.configure({ python: interpreter.path, ...launchSettings() });
      log.info(`launching with ${describeInterpreter(interpreter)}`);
      return true;
    },
  };
  const panels = new PanelManager(
    {
      engine: getEngine,
      extensionUri: context.extensionUri,
      log,
      runCommand: (command, key) => {
        const id = { openRun: 'openRunChart', showLog: 'showRunLog', stopRun: 'stopRun', resumeRun: 'resumeRun' }[command];
        void vscode.commands.executeCommand(`riemannlora.${id}`, key);
      },
    },
    () => {
      const mode = vscode.workspace.getConfiguration('riemannlora').get<string>('runTab.openOnStart', 'reuse');
      return mode === 'new' || mode === 'never' ? mode : 'reuse';
    },
  );
  services.panels = panels;
  panels.register(context);
  context.subscriptions.push(panels);
  registerRunCommands(context, services);

  const cmd = (id: string, fn: (...args: never[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(`riemannlora.${id}`, fn));
  const configArg = (a?: Node | vscode.Uri) => (a instanceof vscode.Uri ? a : a?.kind === 'experiment' ? a.configUri : undefined);
  cmd('newExperiment', async () => {
    if (await newExperiment()) tree.refresh();
  });
  cmd('configureRank', (a?: Node | vscode.Uri) => configureRank(configArg(a)));
  cmd('configureInit', (a?: Node | vscode.Uri) => configureInit(configArg(a)));
  cmd('configureOptimizer', (a?: Node | vscode.Uri) => configureOptimizer(configArg(a)));
  cmd('openConfig', (a?: Node) => {
    const uri = configArg(a);
    if (uri) void vscode.window.showTextDocument(uri);
  });
  cmd('selectInterpreter', () => selectInterpreter(log));
  cmd('checkEnvironment', () => checkEnvironment(nativeWorkerDir, log));
  cmd('refresh', () => tree.refresh());

  if (engine) {
    const e = engine;
    attachNotifications(services, e);
    logs.attach(e);
    const refresh = () => tree.refresh();
    e.on('run-added', refresh);
    e.on('run-updated', refresh);
    e.on('run-finished', refresh);
    e.on('metrics-appended', (d) => {
      const last = d.train[d.train.length - 1];
      if (!last) return;
      tree.liveStep.set(d.key, last.step);
      refresh();
    });
    // Runs that a previous window (or the CLI) left running: follow them.
    const attach = () => {
      try {
        return e.attach();
      } catch (err) {
        log.error(`cannot re-attach to running runs under ${e.root}: ${(err as Error).stack ?? err}`);
        return [];
      }
    };
    const picked = attach();
    if (picked.length) log.info(`re-attached to ${picked.length} running run(s): ${picked.map((r) => r.key).join(', ')}`);
    // Runs that this machine queued and whose window went away before they started: start them here
    // (trusted workspaces only). Other queued runs wait for the user.
    const memory = new QueuedHere(context.globalState, e.root);
    e.on('run-added', (info) => memory.remember(info));
    e.on('run-updated', (info) => {
      if (info.state === 'queued') memory.remember(info); // a resumed run (the engine watches only its own queued runs)
    });
    e.on('run-finished', (info) => memory.forget(info.key));
    e.on('run-removed', (key) => memory.forget(key));
    let queued: RunInfo[] = [];
    try {
      queued = e.list().filter((r) => r.state === 'queued'); // never a damaged run
    } catch (err) {
      log.error(`cannot list the runs under ${e.root}: ${(err as Error).stack ?? err}`);
    }
    const { ours, foreign } = memory.split(queued);
    const startAll = (runs: RunInfo[], why: string) => {
      void services.prepareLaunch().then((ok) => {
        if (!ok) return;
        for (const r of runs) {
          try {
            memory.remember(r);
            e.start(r.key);
          } catch (err) {
            log.warn(`could not start queued run ${r.key}: ${(err as Error).message}`);
          }
        }
        log.info(`started ${runs.length} queued run(s) ${why}`);
      });
    };
    if (ours.length && isTrusted()) startAll(ours, 'left by an earlier window');
    if (foreign.length) {
      log.warn(`not started: ${foreign.length} queued run(s) that this machine did not queue: ${foreign.map((r) => r.key).join(', ')}`);
      void vscode.window
        .showWarningMessage(
          `RiemannLoRA: ${foreign.length} queued run(s) in this workspace were not queued on this machine (for example, they came with the repository). They were not started.`,
          ...(isTrusted() ? ['Start Them'] : []),
        )
        .then((choice) => {
          if (choice === 'Start Them') startAll(foreign, 'at the user\'s request');
        });
    }
    // Runs started elsewhere (another window, `npm run demo`) appear through their status files.
    const pattern = new vscode.RelativePattern(vscode.Uri.file(e.root), '*/*/status.json');
    const watcher = vscode.workspace.createFileSystemWatcher(pattern);
    const external = () => {
      attach();
      tree.refresh();
    };
    watcher.onDidCreate(external);
    watcher.onDidChange(external);
    watcher.onDidDelete(external);
    context.subscriptions.push(watcher, { dispose: () => e.dispose() });
  }
  const configWatcher = vscode.workspace.createFileSystemWatcher(CONFIG_GLOB);
  configWatcher.onDidCreate(() => tree.refresh());
  configWatcher.onDidChange(() => tree.refresh());
  configWatcher.onDidDelete(() => tree.refresh());
  context.subscriptions.push(configWatcher);

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((ev) => {
      if (!ev.affectsConfiguration('riemannlora')) return;
      if (engine && (ev.affectsConfiguration('riemannlora.maxConcurrentRuns') || ev.affectsConfiguration('riemannlora.launcher') || ev.affectsConfiguration('riemannlora.torchrunNprocPerNode'))) {
        engine.configure(launchSettings());
      }
      if (ev.affectsConfiguration('riemannlora.runsRoot')) {
        void vscode.window.showInformationMessage('RiemannLoRA: the runs root changed; reload the window to use it.', 'Reload Window').then((c) => {
          if (c) void vscode.commands.executeCommand('workbench.action.reloadWindow');
        });
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      // Trusted now: the engine may write (and records the verdicts it only showed so far).
      try {
        engine?.configure({ readOnly: false });
      } catch (err) {
        log.error(`cannot leave read-only mode: ${(err as Error).stack ?? err}`);
      }
      tree.refresh();
    }),
  );

  // Status bar: how many runs are going.
  const status = vscode.window.createStatusBarItem('riemannlora.status', vscode.StatusBarAlignment.Left, 10);
  status.name = 'RiemannLoRA runs';
  status.command = 'workbench.view.extension.riemannlora';
  const updateStatus = () => {
    let runs: RunInfo[] = [];
    try {
      runs = engine?.list() ?? [];
    } catch (err) {
      log.warn(`cannot list runs for the status bar: ${(err as Error).message}`);
    }
    const running = runs.filter((r) => r.state === 'running').length;
    const queued = runs.filter((r) => r.state === 'queued').length;
    if (!running && !queued) {
      status.hide();
      return;
    }
    status.text = `$(sync~spin) RiemannLoRA: ${running} running${queued ? `, ${queued} queued` : ''}`;
    status.tooltip = 'Show the RiemannLoRA experiments';
    status.show();
  };
  engine?.on('run-updated', updateStatus);
  engine?.on('run-added', updateStatus);
  engine?.on('run-finished', updateStatus);
  updateStatus();
  context.subscriptions.push(status);

  await tree.scanConfigs();
  tree.refresh();
  // For the extension-host tests: the engine, and which runs the open run tabs show.
  return { engine: getEngine, runTabs: () => panels.runTabs() };
}

export function deactivate(): void {
  // Workers are detached and keep running; the engine only stops polling.
  engine?.dispose();
  engine = undefined;
}
