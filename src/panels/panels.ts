// Run and comparison tabs: one WebviewPanel per run / per comparison target, restored after a reload by
// WebviewPanelSerializer. The host owns the data: on `ready` it sends a snapshot, then only deltas
// (engine `metrics-appended` → `append`, `run-updated` → `runs`). No retainContextWhenHidden: a hidden
// panel's webview is rebuilt on show and asks for a snapshot again. A panel with nothing to show says why
// (`unavailable`: the run was deleted, or its directory cannot be read), on `ready`, on `ping` and when
// the engine deletes the run; the webview's phases are in webview/shared/handshake.ts.
import { writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { compareRuns, type ComparedRun, tableColumns, targetNote, type Comparison } from '../core/compare';
import type { Engine, MetricsDelta } from '../core/engine';
import { readAllEvents } from '../core/events';
import { runKey, type RunInfo, type RunKey } from '../core/runStore';
import { RunSeries } from '../core/series';
import { estimateWords, readComparisonRecord, replicateRuns, type ComparisonRecord } from '../core/fairComparison';
import { fairColumns, fairNotes } from '../core/fairTable';
import { replicateRunId } from '../core/protocol';
import { isTerminal } from '../core/runState';
import {
  type HostMessage,
  type MetricKey,
  packSeries,
  type PanelKind,
  type PanelTarget,
  parseWebviewMessage,
  type RunView,
  type SeriesChunk,
  type SummaryTable,
  toCsv,
  type UnavailableReason,
  type WebviewMessage,
} from '../shared/messages';
import { localResourceRoots, webviewHtml } from './html';
import { runView, SentSeries, sensitivityView, toColumns } from './panelData';

export const RUN_VIEW_TYPE = 'riemannlora.run';
export const COMPARE_VIEW_TYPE = 'riemannlora.compare';

/** What a comparison shows: all runs of an experiment, or a chosen set of runs. */
export type CompareTarget = { experiment: string } | { runs: RunKey[] };

/** Persisted with the webview state so the serializer knows what to restore. */
interface PersistedTarget {
  target?: PanelTarget;
}

/** Why a panel has nothing to show (sent to the webview as `unavailable`). */
export interface PanelProblem {
  reason: UnavailableReason;
  message: string;
}

export interface PanelHost {
  engine: () => Engine | undefined;
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  runCommand: (command: 'openRun' | 'showLog' | 'stopRun' | 'resumeRun', key: RunKey) => void;
}

abstract class Panel {
  protected sent = new SentSeries();
  protected ready = false;
  private tableTimer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    readonly panel: vscode.WebviewPanel,
    protected readonly host: PanelHost,
    readonly kind: PanelKind,
    readonly id: string,
  ) {
    panel.webview.options = { enableScripts: true, localResourceRoots: localResourceRoots(host.extensionUri) };
    panel.iconPath = vscode.Uri.joinPath(host.extensionUri, 'media', 'riemannlora.svg');
    panel.webview.html = webviewHtml(panel.webview, host.extensionUri, kind, panel.title);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((raw: unknown) => {
        const m = parseWebviewMessage(raw);
        if (!m) {
          host.log.warn(`ignored a malformed message from the ${kind} webview: ${JSON.stringify(raw)?.slice(0, 200)}`);
          return;
        }
        void this.onMessage(m);
      }),
      // A hidden webview is torn down (no retainContextWhenHidden); it posts `ready` again when shown.
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
      panel.onDidDispose(() => this.dispose()),
    );
    // Engine events reach a panel through its PanelManager, which listens once for all of them (a listener
    // per panel and event passed Node's limit of 10 at about ten open tabs).
  }

  abstract runKeys(): RunKey[];
  protected abstract title(): string;
  protected abstract target(): PanelTarget;
  /** Why there is nothing to show (the run or experiment is gone, or cannot be read), else undefined. */
  protected abstract problem(engine: Engine): PanelProblem | undefined;
  protected table(): SummaryTable | undefined {
    return undefined;
  }

  /** The table, or none when a run's events cannot be read (the reason goes to the log). */
  private safeTable(): SummaryTable | undefined {
    try {
      return this.table();
    } catch (err) {
      this.host.log.warn(`${this.kind} ${this.id}: no summary table: ${(err as Error).message}`);
      return undefined;
    }
  }

  protected post(m: HostMessage): void {
    void this.panel.webview.postMessage(m);
  }

  private snapshotting = false;

  /**
   * Everything the webview needs, from disk (through the engine), and the offsets reset; or, when there
   * is nothing to show, `unavailable` with the reason. Never nothing: the webview waits for an answer.
   */
  sendSnapshot(): void {
    const engine = this.host.engine();
    if (!engine) {
      this.sendUnavailable({ reason: 'unreadable', message: 'no folder is open: runs live in the workspace. Open the folder that holds them.' });
      return;
    }
    const problem = this.problem(engine);
    if (problem) {
      this.sendUnavailable(problem);
      return;
    }
    this.snapshotting = true;
    try {
      const runs: RunView[] = [];
      const series: SeriesChunk[] = [];
      const unreadable: string[] = [];
      for (const key of this.runKeys()) {
        if (!engine.get(key)) continue;
        try {
          // engine.snapshot polls a watched run first: deltas it emits meanwhile are part of the snapshot.
          const snap = engine.snapshot(key);
          if (snap.unreadable) throw new Error(snap.unreadable); // a run's view says so (never a blank chart)
          runs.push(runView(snap.info, snap.config, { events: snap.events, logTail: snap.logTail }));
          series.push(...this.sent.snapshot(key, snap.train, snap.eval));
        } catch (err) {
          unreadable.push(`${key}: ${(err as Error).message}`);
        }
      }
      if (this.kind === 'run' && unreadable.length) {
        this.sendUnavailable({ reason: 'unreadable', message: unreadable[0]! });
        return;
      }
      for (const u of unreadable) this.host.log.warn(`cannot read run ${u}`);
      let table = this.safeTable();
      if (unreadable.length && table) table = { ...table, note: [table.note, `Not shown, cannot be read: ${unreadable.join('; ')}.`].filter(Boolean).join(' ') };
      this.post({ type: 'snapshot', kind: this.kind, target: this.target(), title: this.title(), runs, series: packSeries(series), table });
      this.ready = true;
    } finally {
      this.snapshotting = false;
    }
  }

  private sendUnavailable(p: PanelProblem): void {
    this.ready = false; // no deltas until a snapshot follows
    this.post({ type: 'unavailable', reason: p.reason, message: p.message, target: this.target(), title: this.title() });
  }

  /** A deleted run: its tab says so; a comparison that still has other runs starts over without it. */
  onRemoved(key: RunKey): void {
    if (this.runKeys().includes(key)) this.sendSnapshot();
  }

  onMetrics(d: MetricsDelta): void {
    if (!this.ready || this.snapshotting || !this.runKeys().includes(d.key)) return;
    if (d.reset) {
      this.sendSnapshot();
      return;
    }
    const series = this.sent.delta(d.key, d.train, d.eval);
    if (series.length) this.post({ type: 'append', series: packSeries(series) });
    if (d.events.some((e) => e.type === 'started' || e.type === 'error' || e.type === 'finished')) this.sendRuns();
  }

  onRun(info: RunInfo): void {
    if (!this.ready) return;
    if (this.kind === 'compare' && !this.runKeys().includes(info.key)) {
      // A run added to a compared experiment: start over so it gets its colour and legend entry; a fair
      // comparison's search trial is not drawn, but its end moves the comparison on (the table says how far).
      if (this instanceof ComparePanel) {
        const role = this.roleOf(info);
        if (role === 'new') this.sendSnapshot();
        else if (role === 'trial' && isTerminal(info.state)) this.sendRuns();
      }
      return;
    }
    if (!this.runKeys().includes(info.key)) return;
    this.sendRuns();
  }

  /** Status, summaries and the table, at most twice a second. */
  protected sendRuns(): void {
    if (this.tableTimer) return;
    this.tableTimer = setTimeout(() => {
      this.tableTimer = undefined;
      const engine = this.host.engine();
      if (!engine || !this.ready) return;
      const runs = this.runKeys()
        .map((k) => engine.get(k))
        .filter((i): i is RunInfo => !!i)
        .map((info) => {
          const failed = info.state === 'failed' || info.state === 'diverged';
          return runView(info, engine.store.readConfig(info.key), failed ? { logTail: engine.store.logTail(info.key, 40) } : {});
        });
      this.post({ type: 'runs', runs, table: this.safeTable() });
    }, 500);
  }

  private async onMessage(m: WebviewMessage): Promise<void> {
    switch (m.type) {
      case 'ready':
        // Acknowledged first, so that a webview waiting for a big snapshot does not ask for it again.
        this.post({ type: 'pong' });
        this.sendSnapshot();
        return;
      case 'ping': {
        const engine = this.host.engine();
        const problem = engine ? this.problem(engine) : undefined;
        if (problem) this.sendUnavailable(problem);
        else this.post({ type: 'pong' });
        return;
      }
      case 'close':
        this.panel.dispose();
        return;
      case 'command':
        if (this.runKeys().includes(m.run)) this.host.runCommand(m.command, m.run);
        return;
      case 'exportCsv':
        this.post({ type: 'result', requestId: m.requestId, ...(await this.exportCsv(m.runs.filter((r) => this.runKeys().includes(r)), m.metrics)) });
        return;
      case 'exportPng':
        this.post({ type: 'result', requestId: m.requestId, ...(await this.exportPng(m.dataUrl, m.name)) });
        return;
    }
  }

  private async exportCsv(runs: RunKey[], metrics: MetricKey[]): Promise<{ ok: boolean; message?: string }> {
    const engine = this.host.engine();
    if (!engine || !runs.length) return { ok: false, message: 'no runs selected' };
    const uri = await vscode.window.showSaveDialog({ filters: { CSV: ['csv'] }, saveLabel: 'Export CSV', defaultUri: this.defaultUri(`${this.title()}.csv`) });
    if (!uri) return { ok: false, message: 'export cancelled' };
    // Full resolution from the run directories, not from what the chart drew.
    const rows = [];
    for (const key of runs) {
      const snap = engine.snapshot(key);
      for (const [metric, c] of toColumns(snap.train, snap.eval)) {
        if (metrics.length && !metrics.includes(metric)) continue;
        rows.push({ run: key, label: snap.info.label, metric, ...c });
      }
    }
    writeFileSync(uri.fsPath, toCsv(rows));
    const points = rows.reduce((n, r) => n + r.step.length, 0);
    this.host.log.info(`exported ${points} points of ${runs.length} runs to ${uri.fsPath}`);
    return { ok: true, message: `exported ${points.toLocaleString()} points of ${runs.length} runs to ${uri.fsPath}` };
  }

  private async exportPng(dataUrl: string, name: string): Promise<{ ok: boolean; message?: string }> {
    const uri = await vscode.window.showSaveDialog({ filters: { PNG: ['png'] }, saveLabel: 'Export PNG', defaultUri: this.defaultUri(`${name.replace(/[^\w.-]+/g, '-')}.png`) });
    if (!uri) return { ok: false, message: 'export cancelled' };
    writeFileSync(uri.fsPath, Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64'));
    return { ok: true, message: `saved ${uri.fsPath}` };
  }

  private defaultUri(file: string): vscode.Uri | undefined {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    return folder ? vscode.Uri.joinPath(folder, file.replace(/[\\/:]+/g, '-')) : undefined;
  }

  dispose(): void {
    if (this.tableTimer) clearTimeout(this.tableTimer);
    for (const d of this.disposables) d.dispose();
    this.disposables.length = 0;
  }
}

export class RunPanel extends Panel {
  /** The run's label while it existed: a deleted run's tab still says which run it was. */
  private label: string;

  constructor(panel: vscode.WebviewPanel, host: PanelHost, readonly key: RunKey) {
    super(panel, host, 'run', key);
    this.label = panel.title;
  }
  runKeys(): RunKey[] {
    return [this.key];
  }
  protected title(): string {
    const label = this.host.engine()?.get(this.key)?.label;
    if (label) this.label = label;
    return this.label;
  }
  protected target(): PanelTarget {
    return { kind: 'run', run: this.key };
  }
  protected problem(engine: Engine): PanelProblem | undefined {
    const p = engine.store.problem(this.key);
    return p?.reason === 'gone' ? { ...p, message: `${this.title()} (${this.key}) was deleted: its run directory no longer exists.` } : p;
  }
}

export class ComparePanel extends Panel {
  private keys: RunKey[] = [];

  constructor(panel: vscode.WebviewPanel, host: PanelHost, readonly what: CompareTarget) {
    super(panel, host, 'compare', 'experiment' in what ? `experiment:${what.experiment}` : `runs:${what.runs.join(',')}`);
    this.refreshKeys();
  }

  /** A run this panel does not show yet: one to add (`new`), a fair comparison's search trial, or another experiment's. */
  roleOf(info: RunInfo): 'new' | 'trial' | 'other' {
    if (!('experiment' in this.what) || info.experiment !== this.what.experiment) return 'other';
    const record = this.record();
    return record && !replicateRuns(record).has(info.run) ? 'trial' : 'new';
  }

  private refreshKeys(): void {
    const engine = this.host.engine();
    if ('experiment' in this.what) {
      const all = engine ? engine.runs(this.what.experiment) : [];
      // A fair comparison shows its replicates (the search trials are in the tree and the record).
      const record = this.record();
      const replicates = record ? replicateRuns(record) : undefined;
      this.keys = (replicates ? all.filter((r) => replicates.has(r.run)) : all).map((r) => r.key);
    } else this.keys = this.what.runs.filter((k) => !engine || engine.get(k));
  }

  /** The experiment's comparison.json when it is a fair comparison (undefined otherwise, or unreadable). */
  private record(): ComparisonRecord | undefined {
    const engine = this.host.engine();
    if (!engine || !('experiment' in this.what)) return undefined;
    const exp = engine.store.getExperiment(this.what.experiment);
    if (exp?.protocol !== 'fair') return undefined;
    const read = readComparisonRecord(exp.dir);
    if (read.kind === 'damaged') this.host.log.warn(`${this.what.experiment}: ${read.reason}`);
    return read.kind === 'ok' ? read.record : undefined;
  }

  /** The table of a fair comparison: one row per method (coloured as its first seed), the verdict on top, the learning-rate search for the sensitivity chart. */
  private fairTable(record: ComparisonRecord): SummaryTable {
    const exp = (this.what as { experiment: string }).experiment;
    const started = this.keys.length;
    const chose = record.methods.filter((m) => m.chosen_lr !== null).length;
    const progress =
      record.state === 'running'
        ? `${chose} of ${record.methods.length} methods have chosen a learning rate; ${record.methods.reduce((n, m) => n + m.trials.length, 0)} search trials ended; ${started} replicate runs started of ${record.methods.length * record.protocol.seeds}` +
          (estimateWords(record) ? `; ${estimateWords(record)}` : '')
        : undefined;
    return {
      columns: fairColumns(record),
      rows: record.methods.map((m) => runKey(exp, replicateRunId(m.id, record.protocol.replicate_seeds[0]!))),
      note: fairNotes(record).join(' '),
      verdict: { state: record.state, lines: record.verdict, ...(progress ? { progress } : {}), sensitivity: sensitivityView(record) },
    };
  }

  override sendSnapshot(): void {
    this.refreshKeys();
    super.sendSnapshot();
  }

  runKeys(): RunKey[] {
    return this.keys;
  }

  protected target(): PanelTarget {
    return 'experiment' in this.what ? { kind: 'compare', experiment: this.what.experiment } : { kind: 'compare', runs: this.what.runs };
  }

  protected problem(engine: Engine): PanelProblem | undefined {
    if ('experiment' in this.what) {
      return engine.store.getExperiment(this.what.experiment) ? undefined : { reason: 'gone', message: `the experiment ${this.what.experiment} was deleted.` };
    }
    return this.what.runs.some((k) => engine.get(k)) ? undefined : { reason: 'gone', message: `all ${this.what.runs.length} compared runs were deleted.` };
  }

  protected title(): string {
    const engine = this.host.engine();
    if ('experiment' in this.what) return engine?.store.getExperiment(this.what.experiment)?.name ?? this.what.experiment;
    return `Comparison of ${this.what.runs.length} runs`;
  }

  protected override table(): SummaryTable | undefined {
    const engine = this.host.engine();
    const record = this.record();
    if (record) {
      this.refreshKeys(); // replicates appear as the search ends
      return this.fairTable(record);
    }
    if (!engine || !this.keys.length) return undefined;
    let c: Comparison;
    if ('experiment' in this.what) {
      c = engine.comparison(this.what.experiment);
    } else {
      const runs: ComparedRun[] = this.keys.map((key) => {
        const info = engine.get(key)!;
        const series = new RunSeries();
        series.add(readAllEvents(engine.store.eventsPath(key)).events);
        return { key, label: info.label, method: info.method, state: info.state, series };
      });
      c = compareRuns(runs, null);
    }
    const note = c.target_loss !== null ? targetNote(c.target_loss) : undefined;
    return { columns: tableColumns(c), rows: c.rows.map((r) => r.key), note };
  }
}

/** What Start Run and Resume do with a run tab (`riemannlora.runTab.openOnStart`). */
export type OpenOnStart = 'reuse' | 'new' | 'never';

/** Opens, reveals and restores panels; one per run and one per comparison target. */
export class PanelManager implements vscode.Disposable {
  private panels = new Map<string, Panel>();
  /** The run tab that the last Start Run or Resume opened: the next one shows its run there. */
  private startTab: RunPanel | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly host: PanelHost,
    private readonly openOnStart: () => OpenOnStart = () => 'reuse',
  ) {
    // One listener per engine event for every panel (the engine is created once, at activation).
    const engine = host.engine();
    if (engine) {
      const forAll = (fn: (p: Panel) => void) => {
        for (const p of [...this.panels.values()]) fn(p);
      };
      const onMetrics = (d: MetricsDelta) => forAll((p) => p.onMetrics(d));
      const onRun = (info: RunInfo) => forAll((p) => p.onRun(info));
      const onRemoved = (key: RunKey) => forAll((p) => p.onRemoved(key));
      const events = [
        ['metrics-appended', onMetrics],
        ['run-updated', onRun],
        ['run-finished', onRun],
        ['run-added', onRun],
        ['run-removed', onRemoved],
      ] as const;
      for (const [event, fn] of events) {
        engine.on(event, fn as never);
        this.unsubscribe.push(() => engine.off(event, fn as never));
      }
    }
  }

  /** The runs shown in run tabs, in the order the tabs were opened (tests, and the tab count). */
  runTabs(): RunKey[] {
    return [...this.panels.values()].filter((p): p is RunPanel => p instanceof RunPanel).map((p) => p.key);
  }

  register(context: vscode.ExtensionContext): void {
    const restore = (kind: PanelKind) => ({
      deserializeWebviewPanel: async (panel: vscode.WebviewPanel, state: unknown) => {
        const t = (state as PersistedTarget | undefined)?.target;
        if (kind === 'run' && t?.run) this.adopt(new RunPanel(panel, this.host, t.run));
        else if (kind === 'compare' && t?.experiment) this.adopt(new ComparePanel(panel, this.host, { experiment: t.experiment }));
        else if (kind === 'compare' && t?.runs?.length) this.adopt(new ComparePanel(panel, this.host, { runs: t.runs }));
        else panel.dispose(); // nothing to show: an older state without a target
      },
    });
    context.subscriptions.push(
      vscode.window.registerWebviewPanelSerializer(RUN_VIEW_TYPE, restore('run')),
      vscode.window.registerWebviewPanelSerializer(COMPARE_VIEW_TYPE, restore('compare')),
    );
  }

  private adopt<P extends Panel>(p: P): P {
    const id = `${p.kind}:${p.id}`;
    this.panels.set(id, p);
    // Not owned by the panel (its dispose, run from this same event, would unhook this listener before it
    // ran); on a tab that was handed to another run the identity checks make the old listener a no-op.
    p.panel.onDidDispose(() => {
      if (this.panels.get(id) === p) this.panels.delete(id);
      if ((this.startTab as Panel | undefined) === p) this.startTab = undefined;
    });
    return p;
  }

  /** The run's own tab (Open Run Chart, a click in the tree): revealed if open, else opened. A tab opened or
   * revealed this way is kept for its run: the next Start Run does not take it over. */
  openRun(key: RunKey): void {
    const existing = this.panels.get(`run:${key}`);
    if (existing) {
      if (existing === this.startTab) this.startTab = undefined;
      existing.panel.reveal();
      return;
    }
    this.createRunPanel(key);
  }

  /**
   * A run the user just started or resumed, as `riemannlora.runTab.openOnStart` says: `reuse` (default)
   * shows it in the tab the previous start opened, if that tab is still open, so that starting many runs
   * leaves one tab; `new` opens a tab per run; `never` opens none (the tree and the status bar show it).
   * A run that already has its own tab gets that tab revealed.
   */
  showStarted(key: RunKey): void {
    const mode = this.openOnStart();
    if (mode === 'never') return;
    const existing = this.panels.get(`run:${key}`);
    if (existing) {
      existing.panel.reveal();
      return;
    }
    const reuse = mode === 'reuse' ? this.startTab : undefined;
    if (reuse) {
      // The same editor tab, now for this run: its old panel lets go of the webview, a new one takes it.
      const panel = reuse.panel;
      reuse.dispose();
      this.panels.delete(`run:${reuse.key}`);
      panel.title = this.host.engine()?.get(key)?.label ?? key;
      this.startTab = this.adopt(new RunPanel(panel, this.host, key));
      panel.reveal();
      return;
    }
    const p = this.createRunPanel(key);
    if (mode === 'reuse') this.startTab = p;
  }

  private createRunPanel(key: RunKey): RunPanel {
    const label = this.host.engine()?.get(key)?.label ?? key;
    const panel = vscode.window.createWebviewPanel(RUN_VIEW_TYPE, label, vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: localResourceRoots(this.host.extensionUri),
    });
    return this.adopt(new RunPanel(panel, this.host, key));
  }

  openComparison(target: CompareTarget): void {
    const id = 'experiment' in target ? `experiment:${target.experiment}` : `runs:${target.runs.join(',')}`;
    const existing = this.panels.get(`compare:${id}`);
    if (existing) {
      existing.panel.reveal();
      return;
    }
    const engine = this.host.engine();
    const title = 'experiment' in target ? (engine?.store.getExperiment(target.experiment)?.name ?? target.experiment) : `Comparison (${target.runs.length} runs)`;
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, title, vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: localResourceRoots(this.host.extensionUri),
    });
    this.adopt(new ComparePanel(panel, this.host, target));
  }

  /** Panels re-read everything (the engine was replaced, e.g. the runs root changed). */
  refreshAll(): void {
    for (const p of this.panels.values()) p.sendSnapshot();
  }

  dispose(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe.length = 0;
    for (const p of this.panels.values()) p.panel.dispose();
    this.panels.clear();
  }
}
