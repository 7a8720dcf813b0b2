// The table of a fair comparison (comparison.json), shared by the terminal and the HTML report: one row
// per method, each number its seed mean ± the half-width of its 95% interval (verdict.ts words).
import type { ComparisonRecord } from './fairComparison';
import type { Interval } from './stats';
import { formatDiff, formatInterval, metricName, metricWords, type Metric } from './verdict';

const LOSS: Metric = { name: 'loss', higher: false };
const sig = (v: number, d = 3) => String(Number(v.toPrecision(d)));
const ci = (metric: Metric, iv: Interval | null | undefined, diff = false): string => {
  if (!iv) return '—';
  return diff ? `${formatDiff(metric, iv.mean)} [${formatDiff(metric, iv.low)}, ${formatDiff(metric, iv.high)}]` : formatInterval(metric, iv);
};

/** Mean ± half-width over the seeds that reached the target; one seed: its value; none: —. */
function stepsCell(steps: (number | null)[], iv: Interval | null | undefined): string {
  const reached = steps.filter((v): v is number => v !== null);
  if (iv) return `${sig(iv.mean)} ± ${sig(iv.high - iv.mean, 2)}`;
  return reached.length === 1 ? String(reached[0]) : '—';
}

export function fairColumns(r: ComparisonRecord): { header: string; cells: string[] }[] {
  const metric = r.metric ?? LOSS;
  const rows = r.methods;
  const name = metricWords(metric);
  return [
    { header: 'method', cells: rows.map((m) => `${m.label}${m.id === r.baseline ? ' (baseline)' : ''}`) },
    { header: 'lr (chosen)', cells: rows.map((m) => (m.chosen_lr === null ? '—' : String(m.chosen_lr))) },
    { header: 'seeds', cells: rows.map((m) => `${m.replicates.filter((x) => x.state === 'completed').length}/${r.protocol.seeds}`) },
    { header: `final test ${name}`, cells: rows.map((m) => ci(metric, m.summary?.final_metric)) },
    { header: 'Δ vs baseline [95% CI]', cells: rows.map((m) => (m.id === r.baseline ? '—' : ci(metric, m.summary?.vs_baseline?.final_metric_diff, true))) },
    { header: 'final loss (smoothed)', cells: rows.map((m) => ci(LOSS, m.summary?.final_loss_smoothed)) },
    { header: 'target reached', cells: rows.map((m) => (m.summary ? `${m.summary.steps_to_target.reached}/${m.summary.steps_to_target.of}` : '—')) },
    { header: 'steps to target', cells: rows.map((m) => stepsCell(m.replicates.filter((x) => x.state === 'completed').map((x) => x.steps_to_target), m.summary?.steps_to_target.interval)) },
    {
      header: 'speed-up [95% CI]',
      cells: rows.map((m) => {
        const s = m.summary?.vs_baseline?.speedup;
        return m.id === r.baseline || !s ? '—' : `${sig(s.mean, 2)}x [${sig(s.low, 2)}, ${sig(s.high, 2)}]`;
      }),
    },
  ];
}

/** The lines under the table: what the target and the intervals are. */
export function fairNotes(r: ComparisonRecord): string[] {
  const metric = r.metric;
  const base = r.methods.find((m) => m.id === r.baseline)?.label ?? r.baseline;
  return [
    `± is the half-width of a ${r.protocol.interval}.`,
    metric && r.target !== null
      ? `Target: ${base}'s mean final test ${metricName(metric)} (${sig(r.target, 4)}); a seed reaches it at its first evaluation at least as good. Speed-up: ${base}'s steps to the target over the method's.`
      : 'No target: the baseline has no completed seed.',
    `Budget: ${r.budget.runs} runs, ${sig(r.budget.full_runs)} full-run equivalents (the search: ${sig(r.protocol.search_cost_full_runs)} per method).`,
  ];
}

export function formatFairTable(r: ComparisonRecord): string {
  const cols = fairColumns(r);
  const widths = cols.map((col) => Math.max(col.header.length, ...col.cells.map((s) => s.length)));
  const line = (cells: string[]) => cells.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
  const out = [line(cols.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (let i = 0; i < r.methods.length; i++) out.push(line(cols.map((c) => c.cells[i]!)));
  return [...out, '', ...fairNotes(r)].join('\n');
}
