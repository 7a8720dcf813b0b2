// A fair comparison's learning-rate sensitivity (webview/compare/main.ts, below the main chart): per
// method each searched rate (log x) against the final validation value of its trial at the longest rung
// it reached (y), in the method's colour; the chosen rate a larger star. A trial without a value (it
// failed or diverged) is a hollow marker on the bottom edge of the plot, and the caption names it.
import { Chart, type ChartDataset, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, Tooltip } from 'chart.js';
import type { SensitivityView } from '../../src/shared/messages';
import { formatNumber, withAlpha } from './chartModel';
import { readTheme, themedTooltip } from './chartView';

Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Tooltip);

type Pt = { x: number; y: number; rung: number; failed: boolean };

/** What the chart plots, free of chart.js: the y range, and per method its points with failed ones on the bottom edge. */
export interface SensitivityPlot {
  yMin: number;
  yMax: number;
  methods: { method: string; label: string; chosen: number | null; ok: Pt[]; failed: Pt[] }[];
  /** "LoRA-AdamW at lr 2e-2" for every trial without a value. */
  failedText: string[];
}

/** A round step (1, 2 or 5 × 10^k) near `span / 5`: about five y ticks. */
function niceStep(span: number): number {
  const raw = span / 5;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/**
 * The y range: the finite values padded by 8% (a flat set ±5%), widened to multiples of a round step so
 * that the axis ends on round ticks; [0, 1] when there is none. The failed trials sit on its bottom.
 */
export function sensitivityPlot(s: SensitivityView): SensitivityPlot {
  const values = s.methods.flatMap((m) => m.points.map((p) => p.value).filter((v): v is number => v !== null && Number.isFinite(v)));
  let yMin = 0;
  let yMax = 1;
  if (values.length) {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 0.5;
    const step = niceStep(hi - lo + 2 * pad);
    // Rounded to the step's precision, so that the ends are the round numbers the ticks show.
    const round = (v: number) => Number(v.toPrecision(12));
    yMin = round(Math.floor((lo - pad) / step) * step);
    yMax = round(Math.ceil((hi + pad) / step) * step);
  }
  const failedText: string[] = [];
  const methods = s.methods.map((m) => {
    const ok: Pt[] = [];
    const failed: Pt[] = [];
    for (const p of m.points) {
      if (p.value !== null && Number.isFinite(p.value)) ok.push({ x: p.lr, y: p.value, rung: p.rung, failed: false });
      else {
        failed.push({ x: p.lr, y: yMin, rung: p.rung, failed: true });
        failedText.push(`${m.label} at lr ${formatLr(p.lr)}`);
      }
    }
    return { method: m.method, label: m.label, chosen: m.chosen, ok, failed };
  });
  return { yMin, yMax, methods, failedText };
}

/** A learning rate as the catalogue writes it: "2e-4", "1.25e-3" (3 significant digits). */
export const formatLr = (v: number): string => (Number.isFinite(v) ? Number(v.toPrecision(3)).toExponential() : '—');

/** A log axis' tick label: the rate at 1 × 10^k, plus 2 and 5 × 10^k when the axis spans under two decades; else none. */
export function logTick(v: number, decades: number): string {
  if (!(v > 0)) return '';
  const m = Number((v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9))).toPrecision(6));
  return m === 1 || (decades < 2 && (m === 2 || m === 5)) ? formatLr(v) : '';
}

export class SensitivityChart {
  readonly chart: Chart<'line', Pt[]>;

  constructor(readonly canvas: HTMLCanvasElement) {
    this.chart = new Chart(canvas, { type: 'line', data: { datasets: [] }, options: { animation: false } });
  }

  /** Draws the search; `color` gives a method's colour (as in the main chart). */
  render(s: SensitivityView, color: (method: string) => string): SensitivityPlot {
    const t = readTheme();
    const plot = sensitivityPlot(s);
    const lrs = s.methods.flatMap((m) => m.points.map((p) => p.lr)).filter((v) => v > 0);
    const grid = { color: t.grid, lineWidth: t.highContrast ? 1 : 0.5 };
    const xMin = lrs.length ? Math.min(...lrs) / 1.6 : undefined;
    const xMax = lrs.length ? Math.max(...lrs) * 1.6 : undefined;
    const decades = xMin && xMax ? Math.log10(xMax / xMin) : 0;
    const datasets: ChartDataset<'line', Pt[]>[] = [];
    const labels: { label: string; failed: boolean }[] = [];
    for (const m of plot.methods) {
      const c = color(m.method);
      const chosen = (p: Pt) => m.chosen !== null && p.x === m.chosen;
      labels.push({ label: m.label, failed: false });
      datasets.push({
        label: m.label,
        data: m.ok,
        showLine: false,
        borderColor: c,
        backgroundColor: withAlpha(c, 0.85),
        pointStyle: m.ok.map((p) => (chosen(p) ? 'star' : 'circle')),
        pointRadius: m.ok.map((p) => (chosen(p) ? 9 : 4)),
        pointHoverRadius: m.ok.map((p) => (chosen(p) ? 10 : 5)),
        pointBorderWidth: m.ok.map((p) => (chosen(p) ? 2.5 : 1)),
        clip: false,
      });
      labels.push({ label: m.label, failed: true });
      datasets.push({
        label: `${m.label} (failed)`,
        data: m.failed,
        showLine: false,
        borderColor: c,
        backgroundColor: 'transparent',
        pointStyle: 'circle',
        pointRadius: 5,
        pointHoverRadius: 6,
        pointBorderWidth: 2,
        clip: false,
      });
    }
    this.chart.options = {
      animation: false,
      parsing: false,
      responsive: true,
      maintainAspectRatio: false,
      color: t.foreground,
      font: { family: t.font },
      layout: { padding: { top: 8, right: 12, bottom: 4, left: 4 } },
      interaction: { mode: 'nearest', intersect: true },
      scales: {
        x: {
          type: 'logarithmic',
          min: xMin,
          max: xMax,
          grid,
          border: { color: t.grid },
          // Labels at 1 × 10^k only (and 2 and 5 × 10^k within two decades): a log axis' other ticks would overlap.
          ticks: { color: t.foreground, maxRotation: 0, autoSkip: false, callback: (v) => logTick(Number(v), decades) },
          title: { display: true, text: 'learning rate', color: t.muted },
        },
        y: {
          type: 'linear',
          min: plot.yMin,
          max: plot.yMax,
          grid,
          border: { color: t.grid },
          ticks: { color: t.foreground, callback: (v) => formatNumber(Number(v)) },
          title: { display: true, text: `validation ${s.metric}`, color: t.muted },
        },
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          ...themedTooltip(t),
          callbacks: {
            title: (items) => (items[0] ? `lr ${formatLr(items[0].parsed.x ?? NaN)}` : ''),
            label: (item) => {
              const p = item.raw as Pt;
              const m = plot.methods[Math.floor(item.datasetIndex / 2)];
              const chosen = m && m.chosen !== null && p.x === m.chosen ? ' — chosen' : '';
              const value = p.failed ? 'failed (no finite value)' : formatNumber(p.y);
              return `${labels[item.datasetIndex]?.label ?? ''}: ${value} (search rung ${p.rung + 1})${chosen}`;
            },
          },
        },
      },
    };
    this.chart.data.datasets = datasets;
    this.chart.update('none');
    return plot;
  }
}
