// One chart.js line chart over the series store: decimated per frame, smoothed with the raw line faded
// behind, log or linear y, x by step / relative time / wall time, optional outlier-robust y range, drag to
// zoom the x-range (double-click resets), theme colours from the --vscode-* CSS variables.
import {
  Chart,
  type ChartDataset,
  type ChartOptions,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
} from 'chart.js';
import type { MetricKey } from '../../src/shared/messages';
import { decimateMinMax, formatClock, formatDuration, formatNumber, robustRange, type SeriesStore, withAlpha, type XMode } from './chartModel';

Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Tooltip);

export interface Line {
  run: string;
  metric: MetricKey;
  label: string;
  color: string;
  /** Draw points as markers (sparse series such as eval loss). */
  markers?: boolean;
  dashed?: boolean;
  /** Lines shown on hover below the value (the run's config). */
  info?: string[];
}

export interface ChartSettings {
  xMode: XMode;
  logY: boolean;
  /** EMA weight in [0, 0.999]; 0 = raw only. */
  smoothing: number;
  ignoreOutliers: boolean;
  /** Visible x-range (zoom), in the current x mode's units; null = everything. */
  zoom: { min: number; max: number } | null;
}

export interface Theme {
  foreground: string;
  muted: string;
  grid: string;
  background: string;
  font: string;
  highContrast: boolean;
}

/** Reads the theme from the CSS variables VS Code sets on the webview's root. */
export function readTheme(): Theme {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  const highContrast = document.body.classList.contains('vscode-high-contrast') || document.body.classList.contains('vscode-high-contrast-light');
  return {
    foreground: v('--vscode-foreground', '#cccccc'),
    muted: v('--vscode-descriptionForeground', '#999999'),
    grid: highContrast ? v('--vscode-contrastBorder', '#6fc3df') : v('--vscode-editorWidget-border', v('--vscode-panel-border', '#80808040')),
    background: v('--vscode-editor-background', '#1e1e1e'),
    font: v('--vscode-font-family', 'sans-serif'),
    highContrast,
  };
}

type Pt = { x: number; y: number };

export class LineChart {
  readonly chart: Chart<'line', Pt[]>;
  lines: Line[] = [];
  private theme: Theme;
  private dragStart: number | null = null;
  /** Points handed to chart.js at the last render (for tests and the status line). */
  renderedPoints = 0;
  /** Title of the y axis (the comparison changes it with the metric). */
  yTitle: string;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly store: SeriesStore,
    private settings: ChartSettings,
    private readonly opts: { yTitle: string; bytes?: boolean; onZoom?: (zoom: ChartSettings['zoom']) => void },
  ) {
    this.theme = readTheme();
    this.yTitle = opts.yTitle;
    this.chart = new Chart(canvas, { type: 'line', data: { datasets: [] }, options: this.options(undefined, undefined, undefined, undefined) });
    canvas.addEventListener('mousedown', (e) => {
      this.dragStart = this.xAt(e.offsetX);
    });
    canvas.addEventListener('mouseup', (e) => {
      const a = this.dragStart;
      this.dragStart = null;
      const b = this.xAt(e.offsetX);
      if (a === null || b === null) return;
      const area = this.chart.chartArea;
      if (!area || Math.abs((this.chart.scales.x?.getPixelForValue(a) ?? 0) - e.offsetX) < 8) return;
      this.opts.onZoom?.({ min: Math.min(a, b), max: Math.max(a, b) });
    });
    canvas.addEventListener('dblclick', () => this.opts.onZoom?.(null));
  }

  private xAt(px: number): number | null {
    const x = this.chart.scales.x;
    if (!x) return null;
    const v = x.getValueForPixel(px);
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  formatX(v: number): string {
    if (this.settings.xMode === 'step') return `step ${Math.round(v)}`;
    if (this.settings.xMode === 'relative') return formatDuration(v);
    return formatClock(v);
  }

  update(settings: ChartSettings): void {
    this.settings = settings;
  }

  applyTheme(): void {
    this.theme = readTheme();
  }

  /**
   * Fresh, plain options for every render: chart.js resolves options through proxies, and reusing or
   * spreading those objects leads to recursion errors; a new plain object each time is cheap.
   */
  private options(xMin: number | undefined, xMax: number | undefined, yMin: number | undefined, yMax: number | undefined): ChartOptions<'line'> {
    const t = this.theme;
    const s = this.settings;
    const grid = { color: t.grid, lineWidth: t.highContrast ? 1 : 0.5 };
    return {
      animation: false,
      parsing: false,
      normalized: true,
      responsive: true,
      maintainAspectRatio: false,
      spanGaps: true,
      color: t.foreground,
      font: { family: t.font },
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      elements: { line: { tension: 0 }, point: { radius: 0, hitRadius: 4 } },
      scales: {
        x: {
          type: 'linear',
          min: xMin,
          max: xMax,
          grid,
          border: { color: t.grid },
          ticks: { color: t.foreground, maxRotation: 0, callback: (v) => this.tickX(Number(v)) },
        },
        y: {
          type: s.logY ? 'logarithmic' : 'linear',
          min: yMin,
          max: yMax,
          grid,
          border: { color: t.grid },
          ticks: { color: t.foreground, callback: (v) => formatNumber(Number(v), this.opts.bytes) },
          title: { display: true, text: this.yTitle, color: t.muted },
        },
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          backgroundColor: t.background,
          titleColor: t.foreground,
          bodyColor: t.foreground,
          footerColor: t.muted,
          borderColor: t.grid,
          borderWidth: 1,
          callbacks: {
            title: (items) => (items[0] ? this.formatX(items[0].parsed.x ?? NaN) : ''),
            label: (item) => {
              const line = this.lines[Math.floor(item.datasetIndex / 2)];
              const raw = item.datasetIndex % 2 === 0;
              return `${line?.label ?? ''}${raw && this.settings.smoothing > 0 ? ' (raw)' : ''}: ${formatNumber(item.parsed.y ?? NaN, this.opts.bytes)}`;
            },
            footer: (items) => {
              const line = items[0] ? this.lines[Math.floor(items[0].datasetIndex / 2)] : undefined;
              return line?.info ?? [];
            },
          },
        },
      },
    };
  }

  /** Rebuilds the decimated datasets from the raw buffers and redraws without animation. */
  render(): void {
    const s = this.settings;
    const width = Math.max(100, this.chart.chartArea ? this.chart.chartArea.right - this.chart.chartArea.left : this.canvas.clientWidth || 600);
    // ≤ 4 points per bucket: width/2 buckets give ≤ 2 points per horizontal pixel.
    const buckets = Math.max(16, Math.floor(width / 2));
    let xMin = Infinity;
    let xMax = -Infinity;
    const visible = this.lines.map((line) => {
      const b = this.store.get(line.run, line.metric);
      const t0 = this.store.startTime(line.run);
      return { line, b, xs: b ? (i: number) => b.x(s.xMode, i, t0) : () => 0 };
    });
    for (const v of visible) {
      if (!v.b?.length) continue;
      xMin = Math.min(xMin, v.xs(0));
      xMax = Math.max(xMax, v.xs(v.b.length - 1));
    }
    if (s.zoom) {
      xMin = s.zoom.min;
      xMax = s.zoom.max;
    }
    const datasets: ChartDataset<'line', Pt[]>[] = [];
    const yRangeInputs: number[][] = [];
    let points = 0;
    const hc = this.theme.highContrast;
    for (const { line, b, xs } of visible) {
      let raw: Pt[] = [];
      let smooth: Pt[] = [];
      if (b?.length && Number.isFinite(xMin)) {
        const r = decimateMinMax(xs, b.value, b.length, xMin, xMax, buckets, s.logY);
        raw = r.x.map((x, i) => ({ x, y: r.y[i]! }));
        yRangeInputs.push(r.y);
        if (s.smoothing > 0 && !line.markers) {
          const sm = decimateMinMax(xs, b.smooth(s.smoothing), b.length, xMin, xMax, buckets, s.logY);
          smooth = sm.x.map((x, i) => ({ x, y: sm.y[i]! }));
        }
      }
      points += raw.length + smooth.length;
      const smoothing = smooth.length > 0;
      datasets.push({
        label: `${line.label} (raw)`,
        data: raw,
        borderColor: smoothing ? withAlpha(line.color, hc ? 0.45 : 0.25) : line.color,
        backgroundColor: line.color,
        borderWidth: smoothing ? 1 : hc ? 2.5 : 1.5,
        borderDash: line.dashed ? [6, 4] : [],
        pointRadius: line.markers ? 3 : 0,
        pointHoverRadius: line.markers ? 4 : 2,
      });
      datasets.push({
        label: line.label,
        data: smooth,
        borderColor: line.color,
        backgroundColor: line.color,
        borderWidth: hc ? 3 : 2,
        borderDash: line.dashed ? [6, 4] : [],
        pointRadius: 0,
        pointHoverRadius: 2,
      });
    }
    this.renderedPoints = points;
    let range = s.ignoreOutliers ? robustRange(yRangeInputs, 0.02, s.logY) : undefined;
    if (!range) {
      // A (nearly) constant series, e.g. a constant learning rate whose EMA differs in the last bits:
      // chart.js would blow that float noise up to the full height. Show a flat line in a ±5% band.
      let lo = Infinity;
      let hi = -Infinity;
      for (const ys of yRangeInputs) {
        for (const v of ys) {
          if (!Number.isFinite(v) || (s.logY && v <= 0)) continue;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      const mid = (lo + hi) / 2;
      if (Number.isFinite(mid) && mid !== 0 && hi - lo <= 1e-9 * Math.abs(mid)) range = { min: mid - Math.abs(mid) * 0.05, max: mid + Math.abs(mid) * 0.05 };
    }
    this.chart.options = this.options(
      Number.isFinite(xMin) ? xMin : undefined,
      Number.isFinite(xMax) && xMax > xMin ? xMax : undefined,
      range?.min,
      range?.max,
    );
    this.chart.data.datasets = datasets;
    this.chart.update('none');
  }

  private tickX(v: number): string {
    if (this.settings.xMode === 'step') return formatNumber(v);
    if (this.settings.xMode === 'relative') return formatDuration(v);
    return formatClock(v);
  }

  /** The chart as a PNG data URL on the editor background (the canvas itself is transparent). */
  toPng(): string {
    const c = document.createElement('canvas');
    c.width = this.canvas.width;
    c.height = this.canvas.height;
    const ctx = c.getContext('2d');
    if (!ctx) return this.chart.toBase64Image('image/png');
    ctx.fillStyle = this.theme.background;
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(this.canvas, 0, 0);
    return c.toDataURL('image/png');
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/**
 * Redraws at most ~10 times a second from one requestAnimationFrame, however often data arrives.
 */
export class FrameScheduler {
  private pending = false;
  private last = 0;

  constructor(
    private readonly draw: () => void,
    private readonly minIntervalMs = 100,
  ) {}

  request(): void {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, this.minIntervalMs - (performance.now() - this.last));
    const go = () =>
      requestAnimationFrame(() => {
        this.pending = false;
        this.last = performance.now();
        this.draw();
      });
    if (wait > 0) setTimeout(go, wait);
    else go();
  }
}

/** Calls `fn` when VS Code switches theme (it changes the body's class). */
export function onThemeChange(fn: () => void): void {
  new MutationObserver(() => fn()).observe(document.body, { attributes: true, attributeFilter: ['class'] });
}
