// A self-contained HTML report of a comparison: chart.js inlined (no network, no other file), overlaid
// train-loss curves (smoothed, the raw series faded behind), eval curves, and the summary table.
// Opens from disk in any browser, can be mailed or archived with the runs.
//
// Content Security Policy: nothing from the network, and only the exact inline <script> and <style>
// blocks written here may run or apply, named by their SHA-256 hashes (no 'unsafe-inline'): markup that
// found its way into the page (a run label, say) could not run code even if escaping failed.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { SMOOTHING_NOTE, smooth, smoothingWindow, tableColumns, type Comparison } from './compare';
import type { ComparisonRecord } from './fairComparison';
import { fairColumns, fairNotes } from './fairTable';
import type { EvalPoint, TrainPoint } from './series';

export interface ReportRun {
  key: string;
  label: string;
  train: readonly TrainPoint[];
  eval: readonly EvalPoint[];
  /** Runs of one group (a method's seeds) share a colour. */
  group?: string;
}

export interface ReportInput {
  title: string;
  subtitle?: string;
  /** A quick comparison's numbers (one row per run); a fair comparison brings `fair` instead. */
  comparison?: Comparison;
  /** A fair comparison's record: the verdict, the protocol, the table with intervals, the sensitivity chart and the per-seed table. */
  fair?: ComparisonRecord;
  runs: readonly ReportRun[];
  /** Extra facts shown under the title (task, steps, rank...). */
  facts?: Record<string, string>;
  /** chart.umd(.min).js to inline; found next to the `chart.js` package when absent. */
  chartJsPath?: string;
  generatedAt?: Date;
}

/** Locates chart.js's UMD build from the given folders (and the current folder, and the script's). */
export function findChartJs(extraBases: string[] = []): string {
  const bases = [...extraBases, process.cwd(), process.argv[1] ? dirname(process.argv[1]) : ''].filter(Boolean);
  for (const base of bases) {
    try {
      const main = createRequire(join(base, 'noop.js')).resolve('chart.js');
      for (const name of ['chart.umd.min.js', 'chart.umd.js']) {
        const p = join(dirname(main), name);
        if (existsSync(p)) return p;
      }
    } catch {
      // not resolvable from this base
    }
  }
  throw new Error(`cannot find chart.js (node_modules/chart.js/dist/chart.umd.min.js) from ${bases.join(', ')}; run npm ci`);
}

/** At most ~2 points per bucket (min and max of the bucket): keeps spikes, caps the file size. */
export function decimate<T extends { step: number }>(points: readonly T[], value: (p: T) => number | null, maxPoints = 2000): T[] {
  if (points.length <= maxPoints) return [...points];
  const buckets = Math.floor(maxPoints / 2);
  const size = points.length / buckets;
  const out: T[] = [];
  for (let b = 0; b < buckets; b++) {
    const slice = points.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    let lo: T | undefined;
    let hi: T | undefined;
    for (const p of slice) {
      const v = value(p);
      if (v === null) continue;
      if (!lo || v < value(lo)!) lo = p;
      if (!hi || v > value(hi)!) hi = p;
    }
    if (lo && hi) out.push(...(lo.step <= hi.step ? (lo === hi ? [lo] : [lo, hi]) : [hi, lo]));
  }
  return out;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** JSON safe inside <script>: no "</script", no "<!--". */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** A CSP source for an inline block: 'sha256-<base64>' of its exact text. */
export const cspHash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const STYLE = `
  body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; background: #fff; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  .sub { color: #666; margin: 0 0 16px; }
  dl { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 0 0 16px; }
  dl div { display: flex; gap: 6px; } dt { color: #666; } dd { margin: 0; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
  th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: right; white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  tr.baseline td { background: #f4f6fa; }
  .charts { display: grid; grid-template-columns: 1fr; gap: 24px; margin: 16px 0; }
  .chart { position: relative; height: 380px; }
  .controls { display: flex; gap: 16px; align-items: center; margin: 8px 0; color: #444; }
  .note { color: #666; font-size: 12px; }
  .verdict { border-left: 4px solid #1f77b4; padding: 4px 12px; margin: 8px 0 16px; }
  .verdict li { margin: 4px 0; }
  @media (prefers-color-scheme: dark) { body { background: #1e1e1e; color: #ddd; } th, td { border-color: #444; } tr.baseline td { background: #2a2d33; } .sub, dt, .note { color: #aaa; } }
`;

/** The page's own script (the data comes from the JSON block, never from markup). */
const MAIN_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var common = { animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
    interaction: { mode: 'nearest', intersect: false }, plugins: { legend: { labels: { filter: function (i) { return !/ \\(raw\\)$/.test(i.text); } } } } };
  function pts(a) { return a.filter(function (p) { return p[1] !== null; }).map(function (p) { return { x: p[0], y: p[1] }; }); }
  function fade(c) { return c + '40'; }
  var trainSets = [];
  data.runs.forEach(function (r) {
    trainSets.push({ label: r.label + ' (raw)', data: pts(r.raw), borderColor: fade(r.color), borderWidth: 1, pointRadius: 0, tension: 0 });
    trainSets.push({ label: r.label + ' (smoothed)', data: pts(r.smooth), borderColor: r.color, borderWidth: 2, pointRadius: 0, tension: 0 });
  });
  if (data.target !== null) {
    var maxX = Math.max.apply(null, data.runs.map(function (r) { return r.raw.length ? r.raw[r.raw.length - 1][0] : 0; }));
    trainSets.push({ label: 'target (baseline final loss, smoothed)', data: [{ x: 0, y: data.target }, { x: maxX, y: data.target }], borderColor: '#888', borderDash: [6, 4], borderWidth: 1, pointRadius: 0 });
  }
  var charts = [];
  if (data.sensitivity) {
    var sens = data.sensitivity.map(function (m) {
      return { label: m.label, data: m.points.map(function (p) { return { x: p[0], y: p[1] }; }), borderColor: m.color, backgroundColor: m.color,
        showLine: false, pointRadius: m.points.map(function (p) { return p[0] === m.chosen ? 7 : 3; }), pointStyle: m.points.map(function (p) { return p[0] === m.chosen ? 'star' : 'circle'; }) };
    });
    charts.push(new Chart(document.getElementById('sensitivity'), { type: 'scatter', data: { datasets: sens }, options: Object.assign({}, common,
      { scales: { x: { type: 'logarithmic', title: { display: true, text: 'learning rate' } }, y: { type: 'linear', title: { display: true, text: data.sensitivityMetric } } } }) }));
  }
  function axes(title) { return { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { type: 'linear', title: { display: true, text: title } } }; }
  charts.push(new Chart(document.getElementById('train'), { type: 'line', data: { datasets: trainSets }, options: Object.assign({}, common, { scales: axes('train loss') }) }));
  data.evalNames.forEach(function (name, i) {
    var sets = data.runs.map(function (r) { return { label: r.label, data: pts(r.eval[name] || []), borderColor: r.color, borderWidth: 2, pointRadius: 2, tension: 0 }; });
    charts.push(new Chart(document.getElementById('eval-' + i), { type: 'line', data: { datasets: sets }, options: Object.assign({}, common, { scales: axes(name) }) }));
  });
  document.getElementById('logy').addEventListener('change', function (e) {
    charts.forEach(function (c) { c.options.scales.y.type = e.target.checked ? 'logarithmic' : 'linear'; c.update('none'); });
  });
  document.getElementById('raw').addEventListener('change', function (e) {
    var c = charts[0];
    c.data.datasets.forEach(function (d, i) { if (/ \\(raw\\)$/.test(d.label)) c.setDatasetVisibility(i, e.target.checked); });
    c.update('none');
  });
})();
`;

export function renderReport(input: ReportInput): string {
  // The hash is of the text the browser sees: its parser turns CR LF and lone CR into LF.
  const chartScript = readFileSync(input.chartJsPath ?? findChartJs(), 'utf8')
    .replace(/<\/script/gi, '<\\/script')
    .replace(/\r\n?/g, '\n');
  const evalNames = [...new Set(input.runs.flatMap((r) => r.eval.flatMap((e) => Object.keys(e.metrics))))].sort((a, b) =>
    a === 'loss' ? -1 : b === 'loss' ? 1 : a.localeCompare(b),
  );
  const groups = [...new Set(input.runs.map((r, i) => r.group ?? String(i)))];
  const colorOf = (r: ReportRun, i: number) => PALETTE[groups.indexOf(r.group ?? String(i)) % PALETTE.length];
  const fair = input.fair;
  const data = {
    target: input.comparison?.target_loss ?? null,
    evalNames,
    ...(fair ? sensitivityData(fair) : {}),
    runs: input.runs.map((r, i) => ({
      label: r.label,
      color: colorOf(r, i),
      raw: decimate(r.train, (p) => p.loss).map((p) => [p.step, p.loss]),
      smooth: decimate(
        smooth(r.train, smoothingWindow(r.train.length)).map((p) => ({ step: p.step, loss: p.loss })),
        (p) => p.loss,
      ).map((p) => [p.step, p.loss]),
      eval: Object.fromEntries(evalNames.map((n) => [n, r.eval.filter((e) => typeof e.metrics[n] === 'number').map((e) => [e.step, e.metrics[n]])])),
    })),
  };
  const facts = Object.entries(input.facts ?? {})
    .map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`)
    .join('');
  const summary = fair ? fairSection(fair) : input.comparison ? legacySummary(input.comparison) : '';
  const when = (input.generatedAt ?? new Date()).toISOString();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src ${cspHash(chartScript)} ${cspHash(MAIN_SCRIPT)}; style-src ${cspHash(STYLE)}; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(input.title)}</h1>
<p class="sub">${escapeHtml(input.subtitle ?? '')} · generated ${escapeHtml(when)}</p>
<dl>${facts}</dl>
${summary}
<div class="controls"><label><input type="checkbox" id="logy"> log-scale loss</label><label><input type="checkbox" id="raw" checked> raw loss (faded)</label></div>
<div class="charts">
  ${fair ? '<div><h2>Learning-rate sensitivity (search trials; the chosen rate starred)</h2><div class="chart"><canvas id="sensitivity"></canvas></div></div>' : ''}
  <div><h2>Train loss (smoothed; raw faded)</h2><div class="chart"><canvas id="train"></canvas></div></div>
  ${evalNames.map((n, i) => `<div><h2>Eval ${escapeHtml(n)}</h2><div class="chart"><canvas id="eval-${i}"></canvas></div></div>`).join('\n  ')}
</div>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${chartScript}</script>
<script>${MAIN_SCRIPT}</script>
</body>
</html>
`;
}

/** The quick comparison's table: one row per run. */
function legacySummary(comparison: Comparison): string {
  const cols = tableColumns(comparison);
  const head = cols.map((c) => `<th>${escapeHtml(c.header)}</th>`).join('');
  const body = comparison.rows
    .map((row, i) => `<tr${row.baseline ? ' class="baseline"' : ''}>${cols.map((c) => `<td>${escapeHtml(c.cells[i]!)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<h2>Summary</h2>
<table id="summary"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table>
<p class="note">final loss (smoothed): the ${escapeHtml(SMOOTHING_NOTE)}, at the last step; best loss (smoothed): the lowest such mean;
steps to target: first step at which the smoothed loss is at or below the baseline's final loss (smoothed)${comparison.target_loss === null ? '' : ` (${escapeHtml(String(Number(comparison.target_loss.toPrecision(4))))})`};
speedup: the baseline's steps to target divided by the run's; train wall s: initialization plus training, summed over resumes (Python start-up and model loading left out).</p>
`;
}

const cell = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '—' : String(Number(v.toPrecision(digits))));

/** Verdict, protocol, the table with intervals and the per-seed table of a fair comparison. */
function fairSection(r: ComparisonRecord): string {
  const cols = fairColumns(r);
  const head = cols.map((c) => `<th>${escapeHtml(c.header)}</th>`).join('');
  const body = r.methods
    .map((m, i) => `<tr${m.id === r.baseline ? ' class="baseline"' : ''}>${cols.map((c) => `<td>${escapeHtml(c.cells[i]!)}</td>`).join('')}</tr>`)
    .join('\n');
  const metric = r.metric?.name ?? 'metric';
  const seeds = r.methods
    .flatMap((m) =>
      m.replicates.map(
        (x) =>
          `<tr><td>${escapeHtml(m.label)}</td><td>${x.seed}</td><td>${escapeHtml(x.run)}</td><td>${escapeHtml(x.state)}</td><td>${cell(x.lr, 3)}</td><td>${cell(x.final_metric)}</td><td>${cell(x.final_eval_loss)}</td><td>${cell(x.final_loss_smoothed)}</td><td>${x.steps_to_target ?? 'not reached'}</td><td>${cell(x.time_to_target_s, 3)}</td></tr>`,
      ),
    )
    .join('\n');
  const verdict = r.verdict.length ? `<ul class="verdict" id="verdict">${r.verdict.map((v) => `<li>${escapeHtml(v)}</li>`).join('')}</ul>` : `<p class="verdict" id="verdict">No verdict: ${escapeHtml(r.state)}.</p>`;
  return `<h2>Verdict</h2>
${verdict}
<h2>Summary (${escapeHtml(String(r.protocol.seeds))} seeds per method)</h2>
<table id="summary"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table>
<p class="note">${fairNotes(r).map(escapeHtml).join('<br>')}<br>Selection: ${escapeHtml(r.protocol.selection)}. Reported: ${escapeHtml(r.protocol.report)}.</p>
<h2>Per seed</h2>
<table id="seeds"><thead><tr><th>method</th><th>seed</th><th>run</th><th>state</th><th>lr</th><th>final test ${escapeHtml(metric)}</th><th>final eval loss</th><th>final loss (smoothed)</th><th>steps to target</th><th>seconds to target</th></tr></thead><tbody>
${seeds}
</tbody></table>
`;
}

function sensitivityData(r: ComparisonRecord): { sensitivity: { label: string; color: string; chosen: number | null; points: [number, number | null, number][] }[]; sensitivityMetric: string } {
  const lastRung = new Map<string, number>();
  return {
    sensitivityMetric: `validation ${r.metric?.name ?? 'metric'} (final of each trial; the longest rung per rate)`,
    sensitivity: r.methods.map((m, i) => {
      // A rate that went on to a longer rung is shown with its longest trial.
      for (const t of m.trials) lastRung.set(`${m.id}|${t.lr}`, Math.max(lastRung.get(`${m.id}|${t.lr}`) ?? -1, t.rung));
      return {
        label: m.label,
        color: PALETTE[i % PALETTE.length]!,
        chosen: m.chosen_lr,
        points: m.trials.filter((t) => lastRung.get(`${m.id}|${t.lr}`) === t.rung).map((t) => [t.lr, t.metric, t.rung] as [number, number | null, number]),
      };
    }),
  };
}
