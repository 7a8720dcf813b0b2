// The "Experiments" tree: experiments (a workspace *.rlora.json file and/or an experiment folder in the
// runs root) and their runs with a state icon (spinning while running), the final loss (smoothed) as
// description and the config summary as tooltip. Rebuilt from disk (through the engine) on every refresh.
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { parseConfigText, type RunConfig } from '../core/config';
import type { Engine } from '../core/engine';
import { readComparisonRecord, replicateRuns } from '../core/fairComparison';
import type { ExperimentInfo, RunInfo } from '../core/runStore';
import { configSummary } from '../panels/panelData';

export const CONFIG_GLOB = '**/*.rlora.json';
const EXCLUDE = '**/{node_modules,.git,.venv,.rlora-runs}/**';

/** The experiment id of a config file: its base name without `.rlora.json`, as a store id. */
export function experimentIdOf(uri: vscode.Uri): string {
  const slug = basename(uri.fsPath)
    .replace(/\.rlora\.json$/i, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 120);
  return slug || 'experiment';
}

export interface ExperimentNode {
  kind: 'experiment';
  id: string;
  name: string;
  configUri?: vscode.Uri;
  config?: RunConfig;
  configError?: string;
  store?: ExperimentInfo;
}

export interface RunNode {
  kind: 'run';
  info: RunInfo;
}

/** A fair comparison's runs by role (docs/comparisons.md): its search trials (collapsed) and its replicates. */
export interface GroupNode {
  kind: 'group';
  experiment: string;
  role: 'search' | 'replicates';
  runs: RunInfo[];
}

export type Node = ExperimentNode | RunNode | GroupNode;

const STATE_ICON: Record<RunInfo['state'], [string, string | undefined]> = {
  queued: ['clock', undefined],
  running: ['sync~spin', 'charts.blue'],
  completed: ['pass', 'testing.iconPassed'],
  stopped: ['debug-stop', 'charts.yellow'],
  failed: ['error', 'errorForeground'],
  diverged: ['warning', 'list.warningForeground'],
  damaged: ['warning', 'list.warningForeground'],
};

/** Text from run folders is data: no markdown (links, images) in tooltips. */
const escapeMarkdown = (s: string) => s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');

function fmtLoss(v: number | null | undefined): string | undefined {
  return v === null || v === undefined ? undefined : Number(v.toPrecision(4)).toString();
}

export class ExperimentsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private configs: ExperimentNode[] = [];
  private pending: NodeJS.Timeout | undefined;
  /** Live step of running runs, from the engine's deltas (status.json is rewritten at state changes only). */
  readonly liveStep = new Map<string, number>();

  constructor(private readonly engine: () => Engine | undefined) {}

  /** Re-reads config files and the store, at most every 150 ms. */
  refresh(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.scanConfigs().then(() => this.changed.fire(undefined));
    }, 150);
  }

  async scanConfigs(): Promise<void> {
    if (!vscode.workspace.workspaceFolders?.length) {
      this.configs = [];
      return;
    }
    const uris = await vscode.workspace.findFiles(CONFIG_GLOB, EXCLUDE, 500);
    const nodes: ExperimentNode[] = [];
    for (const uri of uris) {
      const node: ExperimentNode = { kind: 'experiment', id: experimentIdOf(uri), name: basename(uri.fsPath).replace(/\.rlora\.json$/i, ''), configUri: uri };
      try {
        const text = Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8');
        node.config = parseConfigText(text, uri.fsPath);
        if (node.config.name) node.name = node.config.name;
      } catch (err) {
        node.configError = (err as Error).message;
      }
      nodes.push(node);
    }
    this.configs = nodes.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Experiments: config files (with their store folder, if any), then store-only experiments, newest first. */
  experiments(): ExperimentNode[] {
    const engine = this.engine();
    const store = engine ? engine.experiments() : [];
    const byId = new Map(store.map((e) => [e.id, e]));
    const fromFiles = this.configs.map((c) => ({ ...c, store: byId.get(c.id) }));
    const fileIds = new Set(fromFiles.map((c) => c.id));
    const storeOnly = store
      .filter((e) => !fileIds.has(e.id))
      .sort((a, b) => b.created_at - a.created_at)
      .map((e): ExperimentNode => ({ kind: 'experiment', id: e.id, name: e.name, store: e }));
    return [...fromFiles, ...storeOnly];
  }

  getChildren(node?: Node): Node[] {
    const engine = this.engine();
    if (!node) return this.experiments();
    if (node.kind === 'group') return node.runs.map((info) => ({ kind: 'run', info }));
    if (node.kind === 'experiment' && engine && node.store) {
      const runs = engine.runs(node.id);
      const groups = this.groups(node.store, runs);
      return groups ?? runs.map((info) => ({ kind: 'run', info }));
    }
    return [];
  }

  /** A fair comparison's runs as two groups, search and replicates (undefined for any other experiment). */
  private groups(exp: ExperimentInfo, runs: RunInfo[]): GroupNode[] | undefined {
    if (exp.protocol !== 'fair') return undefined;
    const read = readComparisonRecord(exp.dir);
    if (read.kind !== 'ok') return undefined;
    const replicates = replicateRuns(read.record);
    const out: GroupNode[] = [{ kind: 'group', experiment: exp.id, role: 'search', runs: runs.filter((r) => !replicates.has(r.run)) }];
    const reps = runs.filter((r) => replicates.has(r.run));
    if (reps.length) out.push({ kind: 'group', experiment: exp.id, role: 'replicates', runs: reps });
    return out;
  }

  getParent(node: Node): Node | undefined {
    if (node.kind === 'group') return this.experiments().find((e) => e.id === node.experiment);
    if (node.kind === 'run') {
      const exp = this.experiments().find((e) => e.id === node.info.experiment);
      const groups = exp?.store ? this.groups(exp.store, this.engine()?.runs(exp.id) ?? []) : undefined;
      return groups?.find((g) => g.runs.some((r) => r.key === node.info.key)) ?? exp;
    }
    return undefined;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'group') return this.groupItem(node);
    return node.kind === 'experiment' ? this.experimentItem(node) : this.runItem(node.info);
  }

  private groupItem(g: GroupNode): vscode.TreeItem {
    const search = g.role === 'search';
    const item = new vscode.TreeItem(search ? 'Learning-rate search' : 'Replicates', search ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.Expanded);
    item.id = `group:${g.experiment}:${g.role}`;
    item.contextValue = `group-${g.role}`;
    const running = g.runs.filter((r) => r.state === 'running').length;
    const done = g.runs.filter((r) => r.state !== 'running' && r.state !== 'queued').length;
    item.description = `${g.runs.length} run${g.runs.length === 1 ? '' : 's'} · ${done} ended${running ? `, ${running} running` : ''}`;
    item.iconPath = new vscode.ThemeIcon(search ? 'search' : 'layers');
    item.tooltip = search
      ? 'Each method\'s learning-rate trials (successive halving on the validation half): docs/comparisons.md'
      : 'The chosen rate of each method at the full budget, one run per matched seed (reported on the test half)';
    return item;
  }

  private experimentItem(e: ExperimentNode): vscode.TreeItem {
    const engine = this.engine();
    const runs = e.store && engine ? engine.runs(e.id) : [];
    const item = new vscode.TreeItem(e.name, runs.length ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
    item.id = `experiment:${e.id}`;
    item.contextValue = e.configUri ? 'experiment' : 'experiment-store';
    const running = runs.filter((r) => r.state === 'running').length;
    const parts: string[] = [];
    if (e.config) parts.push(`${e.config.method.optimizer}+${e.config.method.init} · r${e.config.adapter.rank}`);
    if (runs.length) parts.push(`${runs.length} run${runs.length === 1 ? '' : 's'}${running ? `, ${running} running` : ''}`);
    if (e.configError) parts.push('invalid config');
    if (e.store?.damaged) parts.push('experiment.json damaged');
    item.description = parts.join(' · ');
    item.iconPath = new vscode.ThemeIcon(e.configError || e.store?.damaged ? 'warning' : e.store?.kind === 'compare' ? 'graph' : 'beaker');
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${e.name}**\n\n`);
    if (e.configUri) md.appendMarkdown(`Config: \`${vscode.workspace.asRelativePath(e.configUri)}\`\n\n`);
    if (e.configError) md.appendCodeblock(e.configError, 'text');
    if (e.store?.damaged) md.appendCodeblock(`${e.store.damaged}\n(listed with defaults: its folder name, no baseline)`, 'text');
    for (const line of configSummary(e.config)) md.appendMarkdown(`- ${line}\n`);
    if (e.store) md.appendMarkdown(`\nRuns folder: \`${e.store.dir}\``);
    item.tooltip = md;
    if (e.configUri) item.resourceUri = e.configUri;
    return item;
  }

  private runItem(r: RunInfo): vscode.TreeItem {
    const item = new vscode.TreeItem(r.label, vscode.TreeItemCollapsibleState.None);
    item.id = `run:${r.key}`;
    item.contextValue = `run-${r.state}`;
    const [icon, color] = STATE_ICON[r.state];
    item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
    const loss = fmtLoss(r.summary?.final_loss_smoothed);
    if (r.state === 'damaged') item.description = `damaged: ${r.damaged ?? 'unreadable metadata'}`;
    else if (r.state === 'running') item.description = `step ${Math.max(r.step, this.liveStep.get(r.key) ?? 0)}/${r.steps}`;
    else if (r.state === 'queued') item.description = 'queued';
    else if (loss !== undefined) item.description = `loss ${loss} (smoothed)${r.state === 'completed' ? '' : ` · ${r.state}`}`;
    else item.description = r.state;
    const engine = this.engine();
    const config = engine?.store.readConfig(r.key);
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${r.label}** — ${r.method} — *${r.state}*\n\n`);
    for (const line of configSummary(config)) md.appendMarkdown(`- ${line}\n`);
    if (r.summary) {
      md.appendMarkdown(`\nfinal loss (smoothed) ${fmtLoss(r.summary.final_loss_smoothed) ?? '—'}, best (smoothed) ${fmtLoss(r.summary.best_loss_smoothed) ?? '—'}`);
      if (r.summary.train_wall_s !== null) md.appendMarkdown(`, ${r.summary.train_wall_s.toFixed(1)} s init + training`);
    }
    if (r.damaged) md.appendMarkdown(`\n\n**damaged**: ${escapeMarkdown(r.damaged)}\n\nThe run is never started or resumed; repair its status.json / run.json, or delete it.`);
    else if (r.last_error) md.appendMarkdown(`\n\n**${r.last_error.kind}**: ${r.last_error.message.split('\n')[0]}${r.last_error.hint ? `\n\n${r.last_error.hint}` : ''}`);
    md.appendMarkdown(`\n\n\`${r.key}\``);
    item.tooltip = md;
    item.command = { command: 'riemannlora.openRunChart', title: 'Open Run Chart', arguments: [{ kind: 'run', info: r } satisfies RunNode] };
    return item;
  }

  dispose(): void {
    if (this.pending) clearTimeout(this.pending);
    this.changed.dispose();
  }
}
