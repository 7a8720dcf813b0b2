// One chart.js line chart over the series store: decimated per frame, smoothed with the raw line faded
// behind, log or linear y, x by step / relative time / wall time, optional outlier-robust y range, drag to
// zoom the x-range (double-click resets), theme colours from the --vscode-* CSS variables. Besides lines
// (one run's metric each), bands: a method's seed mean with its min–max range filled (seedBands.ts).
import {
  Chart,
  type ChartDataset,
  type ChartOptions,
  Filler,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
} from 'chart.js';
import type { MetricKey } from '../../src/shared/messages';
import { decimateMinMax, formatClock, formatDuration, formatNumber, robustRange, type SeriesStore, withAlpha, type XMode } from './chartModel';
import { decimateBand, type SeedBand } from './seedBands';

// Filler: a band is its min line and its max line with the area between them filled.
Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Tooltip, Filler);

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

/** A method's seeds as one curve: the mean line over a translucent min–max band (seedBands.ts). */
export interface Band {
  /** What the band stands for (a method). */
  id: string;
  label: string;
  color: string;
  /** The aggregate, already smoothed and in the chart's x mode (storeBand). */
  band: SeedBand;
  markers?: boolean;
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
/** A tooltip in the editor's colours (every chart of the webviews shares it). */
export const themedTooltip = (t: Theme) => ({ backgroundColor: t.background, titleColor: t.foreground, bodyColor: t.foreground, footerColor: t.muted, borderColor: t.grid, borderWidth: 1 });

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

/** What a dataset draws: a line's raw or smoothed curve, or a band's min edge, max edge or mean. */
type Drawn = { line: Line; raw: boolean } | { band: Band; part: 'min' | 'max' | 'mean'; count: number[]; min: number[]; max: number[] };

export class LineChart {
  readonly chart: Chart<'line', Pt[]>;
  lines: Line[] = [];
  bands: Band[] = [];
  /** Per dataset of the last render, what it draws (the tooltip's text). */
  private drawn: Drawn[] = [];
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
          ...themedTooltip(t),
          // A band's edges are told in its mean's line.
          filter: (item) => {
            const d = this.drawn[item.datasetIndex];
            return !d || !('band' in d) || d.part === 'mean';
          },
          callbacks: {
            title: (items) => (items[0] ? this.formatX(items[0].parsed.x ?? NaN) : ''),
            label: (item) => {
              const d = this.drawn[item.datasetIndex];
              const v = (y: number) => formatNumber(y, this.opts.bytes);
              if (d && 'band' in d) {
                const i = item.dataIndex;
                const n = d.count[i] ?? 0;
                const of = n < d.band.band.seeds ? `${n} of ${d.band.band.seeds}` : `${n}`;
                return `${d.band.label}: mean ${v(item.parsed.y ?? NaN)} (range ${v(d.min[i] ?? NaN)} – ${v(d.max[i] ?? NaN)}, ${of} seed${n === 1 ? '' : 's'})`;
              }
              return `${d?.line.label ?? ''}${d?.raw && this.settings.smoothing > 0 ? ' (raw)' : ''}: ${v(item.parsed.y ?? NaN)}`;
            },
            footer: (items) => {
              const d = items[0] ? this.drawn[items[0].datasetIndex] : undefined;
              return (d && 'band' in d ? d.band.info : d?.line.info) ?? [];
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
    for (const { band } of this.bands) {
      if (!band.x.length) continue;
      xMin = Math.min(xMin, band.x[0]!);
      xMax = Math.max(xMax, band.x[band.x.length - 1]!);
    }
    if (s.zoom) {
      xMin = s.zoom.min;
      xMax = s.zoom.max;
    }
    const datasets: ChartDataset<'line', Pt[]>[] = [];
    const drawn: Drawn[] = [];
    const yRangeInputs: number[][] = [];
    let points = 0;
    let series = 0;
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
      if (raw.length) series++;
      const smoothing = smooth.length > 0;
      drawn.push({ line, raw: true }, { line, raw: false });
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
    // All the bands' areas first, then every mean on top: a later band's fill never veils an earlier mean.
    const means: { ds: ChartDataset<'line', Pt[]>; d: Drawn }[] = [];
    for (const band of this.bands) {
      const p = band.band.x.length && Number.isFinite(xMin) ? decimateBand(band.band, xMin, xMax, buckets, s.logY) : { x: [], mean: [], min: [], max: [], count: [] };
      const pts = (ys: number[]): Pt[] => p.x.map((x, i) => ({ x, y: ys[i]! }));
      yRangeInputs.push(p.min, p.max);
      points += 3 * p.x.length;
      if (p.x.length) series++;
      const all = band.band.seeds;
      // Edges: a hairline, the max edge filled down to the min edge (the dataset just before it).
      const edge = { borderWidth: hc ? 1 : 0.75, borderColor: withAlpha(band.color, hc ? 0.7 : 0.4), pointRadius: 0, pointHoverRadius: 0, pointHitRadius: 0 };
      drawn.push({ band, part: 'min', ...p }, { band, part: 'max', ...p });
      datasets.push({ label: `${band.label} (min)`, data: pts(p.min), ...edge, fill: false });
      datasets.push({ label: `${band.label} (max)`, data: pts(p.max), ...edge, fill: '-1', backgroundColor: withAlpha(band.color, hc ? 0.3 : 0.16) });
      means.push({
        d: { band, part: 'mean', ...p },
        ds: {
          label: band.label,
          data: pts(p.mean),
          borderColor: band.color,
          backgroundColor: band.color,
          borderWidth: hc ? 3 : 2,
          fill: false,
          pointRadius: band.markers ? 3 : 0,
          pointHoverRadius: band.markers ? 4 : 2,
          // Dashed where fewer than all the method's seeds have a value (not there yet, ended, or NaN).
          segment: { borderDash: (ctx) => ((p.count[ctx.p1DataIndex] ?? all) < all || (p.count[ctx.p0DataIndex] ?? all) < all ? [6, 4] : undefined) },
        },
      });
    }
    for (const m of means) {
      drawn.push(m.d);
      datasets.push(m.ds);
    }
    this.drawn = drawn;
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
    // What this frame drew, for tests and for anyone inspecting the webview: the lines (runs) and seed
    // bands that have at least one point on screen, and the points handed to chart.js.
    this.canvas.dataset.seriesDrawn = String(series);
    this.canvas.dataset.pointsDrawn = String(points);
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
