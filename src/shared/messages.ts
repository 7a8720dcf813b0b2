// The one message contract between the extension host (src/panels/) and the webviews (webview/).
// Imported by both sides: no `vscode`, no Node, no DOM imports here.
//
// Protocol (docs/architecture.md "Webview rules"; the webview's side is webview/shared/handshake.ts):
//   1. The webview posts `ready` once its script runs, and again until the host answers (a lost message,
//      a host that is busy or gone), and after it lost track (see offsets).
//   2. The host answers with a `snapshot`: every run shown and every point it has, per (run, metric) —
//      or with `unavailable` when there is nothing to show: the run was deleted (`gone`) or its directory
//      cannot be read (`unreadable`, with the reason).
//   3. After that only deltas: `append` (new points) and `runs` (status, summaries, errors, the table).
//   4. Requests that need an answer carry a `requestId`; the host answers with `result`.
//   5. A live webview posts `ping` now and then; the host answers `pong` (or `unavailable` when the run
//      has gone meanwhile). No answer means the extension host went away: the webview says so and keeps
//      posting `ready` until a host answers.
// Every series chunk carries the index of its first point (`offset`). The webview appends a chunk only
// when the offset equals what it holds, so no point is lost or doubled; on a gap it posts `ready` again
// and gets a fresh snapshot.
// On the wire a message's chunks travel packed (`PackedSeries`: one Float64Array and an index), never as
// one typed array per column: VS Code's webview RPC sends every typed array as a separate buffer and
// counts them in one byte, so past ~254 buffers the rest arrive empty (a comparison of 11 runs lost
// curves). `packSeries` on the host right before posting, `unpackSeries` in webview/shared/api.ts.
import type { RunState } from '../core/runState';

/** Train-split metrics of the worker's `metric` events, plus eval loss and eval metrics ("eval:<name>"). */
export const BUILTIN_METRICS = ['loss', 'eval_loss', 'lr', 'grad_norm', 'tokens_per_s', 'memory_bytes'] as const;
export type BuiltinMetric = (typeof BUILTIN_METRICS)[number];
export type MetricKey = BuiltinMetric | `eval:${string}`;

export const METRIC_LABELS: Record<BuiltinMetric, string> = {
  loss: 'train loss',
  eval_loss: 'eval loss',
  lr: 'learning rate',
  grad_norm: 'gradient norm',
  tokens_per_s: 'tokens/s',
  memory_bytes: 'memory',
};

export const metricLabel = (m: MetricKey): string => (m.startsWith('eval:') ? `eval ${m.slice(5)}` : METRIC_LABELS[m as BuiltinMetric]);

export function isMetricKey(x: unknown): x is MetricKey {
  return typeof x === 'string' && ((BUILTIN_METRICS as readonly string[]).includes(x) || (x.startsWith('eval:') && x.length > 5));
}

/**
 * Points of one metric of one run, sorted by step. `time` is wall-clock seconds since the epoch; NaN in
 * `value` stands for a NaN/inf loss (JSON null in the events). On the wire chunks travel packed (PackedSeries).
 */
export interface SeriesChunk {
  run: string;
  metric: MetricKey;
  /** Index of the first point of this chunk in the run's series of this metric. */
  offset: number;
  step: Float64Array;
  time: Float64Array;
  value: Float64Array;
}

export interface RunErrorView {
  kind: string;
  message: string;
  hint?: string;
}

/** What the webviews show about a run besides its points. */
export interface RunView {
  /** "<experiment>/<run>" (the engine's run key). */
  key: string;
  experiment: string;
  label: string;
  /** "optimizer+init". */
  method: string;
  state: RunState;
  step: number;
  totalSteps: number;
  startedAt: number | null;
  endedAt: number | null;
  device?: string;
  /** "name: value" lines summarizing the config (tooltip, hover, header). */
  config: string[];
  /** run.json's summary (compare.ts summarizeRun): the smoothed train loss at the last logged step. */
  finalLossSmoothed: number | null;
  /** The lowest smoothed train loss. */
  bestLossSmoothed: number | null;
  /** Initialization plus training, summed over resumes (summary.train_wall_s). */
  trainWallSeconds: number | null;
  peakMemory: number | null;
  error?: RunErrorView;
  /** Last lines of worker.log, for failed runs. */
  logTail?: string;
}

/** The comparison table: columns of pre-formatted cells, one cell per run in `runs` order. */
export interface SummaryTable {
  columns: { header: string; cells: string[] }[];
  /** Run key of each row. */
  rows: string[];
  note?: string;
  /** A fair comparison (docs/comparisons.md): its state, one verdict sentence per method, and its protocol. */
  verdict?: VerdictView;
}

export interface VerdictView {
  /** comparison.json's state: running, complete, stopped, failed. */
  state: string;
  lines: string[];
  /** How far it is, while it runs ("search: 2 of 4 methods chose a rate; 12 of 36 runs ended"). */
  progress?: string;
  /** The learning-rate search per method, for the tab's sensitivity chart (src/panels/panelData.ts sensitivityView). */
  sensitivity?: SensitivityView;
}

/**
 * A fair comparison's learning-rate sensitivity: per method each searched rate with the final validation
 * value of its trial at the longest rung that rate reached (successive halving runs the survivors longer).
 */
export interface SensitivityView {
  /** The selection metric's name ("loss" = eval loss, "exact_match", …). */
  metric: string;
  methods: SensitivityMethod[];
}

export interface SensitivityMethod {
  /** "optimizer+init", as RunView.method: the tab colours a method's rates like its seeds. */
  method: string;
  label: string;
  /** The chosen rate (null while the search runs). */
  chosen: number | null;
  /** One point per searched rate, by rate; `value` null: the trial failed, diverged or had no finite evaluation. */
  points: SensitivityPoint[];
}

export interface SensitivityPoint {
  lr: number;
  value: number | null;
  /** The search rung of this trial (0 = the shortest). */
  rung: number;
}

export type PanelKind = 'run' | 'compare';

/** What a panel shows; the webview keeps it in its state so the panel is restored after a reload. */
export interface PanelTarget {
  kind: PanelKind;
  run?: string;
  experiment?: string;
  runs?: string[];
}

/** Why a panel has nothing to show: its run (or experiment) was deleted, or its directory cannot be read. */
export type UnavailableReason = 'gone' | 'unreadable';

/** What the host posts: `series` packed (see `packSeries`). */
export type HostMessage =
  | { type: 'snapshot'; kind: PanelKind; target: PanelTarget; title: string; runs: RunView[]; series: PackedSeries; table?: SummaryTable }
  | { type: 'unavailable'; reason: UnavailableReason; target: PanelTarget; title: string; message: string }
  | { type: 'append'; series: PackedSeries }
  | { type: 'runs'; runs: RunView[]; table?: SummaryTable }
  | { type: 'pong' }
  | { type: 'result'; requestId: number; ok: boolean; message?: string };

/** A host message as the webview handles it: the same message with its `series` unpacked into chunks. */
export type ReceivedMessage<M extends HostMessage = HostMessage> = M extends { series: PackedSeries } ? Omit<M, 'series'> & { series: SeriesChunk[] } : M;

export type WebviewCommand = 'openRun' | 'showLog' | 'stopRun' | 'resumeRun';

export type WebviewMessage =
  | { type: 'ready' }
  /** Is the host still there (and the run)? Answered by `pong` or `unavailable`. */
  | { type: 'ping' }
  /** Close this tab (the "run no longer exists" page offers it). */
  | { type: 'close' }
  /** CSV of every point (full resolution) of `metrics` of `runs`. */
  | { type: 'exportCsv'; requestId: number; runs: string[]; metrics: MetricKey[] }
  /** A PNG of the chart as a data: URL. */
  | { type: 'exportPng'; requestId: number; dataUrl: string; name: string }
  | { type: 'command'; command: WebviewCommand; run: string };

const COMMANDS: readonly WebviewCommand[] = ['openRun', 'showLog', 'stopRun', 'resumeRun'];
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStrArr = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
const isReqId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isCount = isReqId;

/**
 * The host trusts nothing the webview sends: returns the message when it is well formed, else undefined.
 * PNG data must be a base64 PNG data URL.
 */
export function parseWebviewMessage(x: unknown): WebviewMessage | undefined {
  if (!isObj(x)) return undefined;
  switch (x.type) {
    case 'ready':
    case 'ping':
    case 'close':
      return { type: x.type };
    case 'exportCsv':
      if (!isReqId(x.requestId) || !isStrArr(x.runs) || !Array.isArray(x.metrics) || !x.metrics.every(isMetricKey)) return undefined;
      return { type: 'exportCsv', requestId: x.requestId, runs: x.runs, metrics: x.metrics };
    case 'exportPng':
      if (!isReqId(x.requestId) || typeof x.dataUrl !== 'string' || !x.dataUrl.startsWith('data:image/png;base64,')) return undefined;
      return { type: 'exportPng', requestId: x.requestId, dataUrl: x.dataUrl, name: typeof x.name === 'string' ? x.name : 'chart' };
    case 'command':
      if (!COMMANDS.includes(x.command as WebviewCommand) || typeof x.run !== 'string') return undefined;
      return { type: 'command', command: x.command as WebviewCommand, run: x.run };
    default:
      return undefined;
  }
}

/** Builds a chunk from plain arrays (host side). */
export function chunk(run: string, metric: MetricKey, offset: number, step: ArrayLike<number>, time: ArrayLike<number>, value: ArrayLike<number>): SeriesChunk {
  if (step.length !== time.length || step.length !== value.length) throw new Error(`series chunk of ${run} ${metric}: columns differ in length`);
  return { run, metric, offset, step: Float64Array.from(step), time: Float64Array.from(time), value: Float64Array.from(value) };
}

/** Where one chunk's points lie in `PackedSeries.data`: its step, time and value columns, `n` each, in that order. */
export interface PackedChunk {
  run: string;
  metric: MetricKey;
  /** Index of the chunk's first point in the run's series of this metric (SeriesChunk.offset). */
  offset: number;
  /** Points in the chunk. */
  n: number;
}

/**
 * A message's series chunks on the wire: ONE Float64Array whatever the number of runs and metrics. `data`
 * is the concatenation, in `index` order, of each chunk's step, time and value columns; a chunk's columns
 * start at 3 × the points of the chunks before it, so `data.length` is 3 × the sum of `n`.
 */
export interface PackedSeries {
  index: PackedChunk[];
  data: Float64Array;
}

/** Packs chunks into one buffer (host side, right before posting). */
export function packSeries(chunks: readonly SeriesChunk[]): PackedSeries {
  let total = 0;
  for (const c of chunks) {
    if (c.step.length !== c.time.length || c.step.length !== c.value.length) throw new Error(`series chunk of ${c.run} ${c.metric}: columns differ in length`);
    total += c.step.length;
  }
  const data = new Float64Array(3 * total);
  const index: PackedChunk[] = [];
  let at = 0;
  for (const c of chunks) {
    const n = c.step.length;
    data.set(c.step, at);
    data.set(c.time, at + n);
    data.set(c.value, at + 2 * n);
    at += 3 * n;
    index.push({ run: c.run, metric: c.metric, offset: c.offset, n });
  }
  return { index, data };
}

/**
 * A column that went through a serializer that turned typed arrays into plain arrays or index-keyed
 * objects (older webview hosts do; JSON also turns NaN into null): the webview always works on
 * Float64Array. null stands for NaN in both forms; anything else that is no column is an empty one.
 */
export function reviveColumn(a: unknown): Float64Array {
  const num = (v: unknown) => (v === null ? NaN : Number(v));
  if (a instanceof Float64Array) return a;
  if (Array.isArray(a)) return Float64Array.from(a, num);
  if (isObj(a)) return Float64Array.from(Object.keys(a).sort((p, q) => Number(p) - Number(q)), (k) => num(a[k]));
  return new Float64Array(0);
}

/**
 * The chunks of a packed message (webview side). Columns are views into the one buffer, not copies (the
 * store copies them into its own buffers). A pack that does not add up (an index entry that is not a
 * chunk, or data shorter or longer than the index says: a buffer lost or cut on the way) throws, so a lost
 * curve is never silent.
 */
export function unpackSeries(packed: PackedSeries): SeriesChunk[] {
  const p = packed as unknown;
  if (!isObj(p) || !Array.isArray(p.index)) throw new Error('packed series: no index');
  const data = reviveColumn(p.data);
  const out: SeriesChunk[] = [];
  let at = 0;
  for (const e of p.index as unknown[]) {
    if (!isObj(e) || typeof e.run !== 'string' || !isMetricKey(e.metric) || !isCount(e.offset) || !isCount(e.n)) throw new Error(`packed series: bad index entry ${JSON.stringify(e)}`);
    const n = e.n;
    if (at + 3 * n > data.length) throw new Error(`packed series: ${data.length} values for more than ${at + 3 * n} (${e.run} ${e.metric})`);
    out.push({ run: e.run, metric: e.metric, offset: e.offset, step: data.subarray(at, at + n), time: data.subarray(at + n, at + 2 * n), value: data.subarray(at + 2 * n, at + 3 * n) });
    at += 3 * n;
  }
  if (at !== data.length) throw new Error(`packed series: ${data.length} values, the index accounts for ${at}`);
  return out;
}

/**
 * A text cell of a CSV file. A spreadsheet takes a cell that starts with = + - @ (or a tab or carriage
 * return before one) for a formula: such text is neutralised with a leading single quote (the OWASP
 * rule), then quoted when it holds a comma, quote or line break. Numbers are never passed here, so
 * -0.5 stays a number.
 */
export function csvText(s: string): string {
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** CSV of full-resolution points: one row per (run, metric, point). Text cells go through csvText. */
export function toCsv(rows: { run: string; label: string; metric: MetricKey; step: ArrayLike<number>; time: ArrayLike<number>; value: ArrayLike<number> }[]): string {
  const out = ['run,label,metric,step,wall_time,value'];
  for (const r of rows) {
    const text = `${csvText(r.run)},${csvText(r.label)},${csvText(r.metric)}`;
    for (let i = 0; i < r.step.length; i++) {
      const v = r.value[i]!;
      out.push(`${text},${r.step[i]},${r.time[i]},${Number.isFinite(v) ? v : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}
