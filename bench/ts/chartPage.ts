// Chart frame-time benchmark page (issue 7, item 5): 10 runs × 100,000 points drawn by the webview's own
// LineChart over its SeriesStore (webview/shared/), in headless Chromium. A frame = LineChart.render(): min-max
// decimation of every line to the canvas width, EMA smoothing, the robust y range, chart.js update and draw.
// Measured: first frame, then frames after live appends (one new point per run, as during training), with
// smoothing on (the default view) and off, and a zoomed x-range. Results land in window.__benchResult.
import { SeriesStore, decimateMinMax, robustRange, runColor } from '../../webview/shared/chartModel';
import { LineChart, type ChartSettings, type Line } from '../../webview/shared/chartView';
import { chunk } from '../../src/shared/messages';

declare global {
  interface Window {
    __benchResult?: unknown;
    __benchError?: string;
  }
}

const RUNS = 10;
const POINTS = 100_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]!;
}

function main(): void {
  const canvas = document.getElementById('chart') as HTMLCanvasElement;
  const store = new SeriesStore();
  const lines: Line[] = [];
  for (let r = 0; r < RUNS; r++) {
    const run = `exp/run${r}`;
    const step = new Float64Array(POINTS);
    const time = new Float64Array(POINTS);
    const value = new Float64Array(POINTS);
    for (let i = 0; i < POINTS; i++) {
      step[i] = i + 1;
      time[i] = 1.7e9 + i * 0.05;
      value[i] = (1 + r * 0.1) * Math.exp(-i / 30000) + 0.05 * Math.sin(i * 0.37 + r) + (i % 9973 === 0 ? 3 : 0);
    }
    store.apply([chunk(run, 'loss', 0, step, time, value)]);
    lines.push({ run, metric: 'loss', label: `run ${r}`, color: runColor(r) });
  }
  const settings: ChartSettings = { xMode: 'step', logY: true, smoothing: 0.6, ignoreOutliers: true, zoom: null };
  const chart = new LineChart(canvas, store, settings, { yTitle: 'loss' });
  chart.lines = lines;

  const frames = (n: number, append: boolean): number[] => {
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      if (append) {
        for (let r = 0; r < RUNS; r++) {
          const b = store.get(`exp/run${r}`, 'loss')!;
          const i = b.length;
          store.apply([chunk(`exp/run${r}`, 'loss', i, [i + 1], [1.7e9 + i * 0.05], [Math.exp(-i / 30000)])]);
        }
      }
      const t = performance.now();
      chart.render();
      out.push(performance.now() - t);
    }
    return out;
  };

  const t0 = performance.now();
  chart.render();
  const first = performance.now() - t0;
  const live = frames(30, true);
  chart.update({ ...settings, smoothing: 0 });
  const raw = frames(20, true);
  chart.update({ ...settings, zoom: { min: 20_000, max: 40_000 } });
  const zoom = frames(20, false);
  chart.update({ ...settings, xMode: 'wall' });
  const wall = frames(20, true);
  // The data-model part of a frame alone (what render() does before chart.js: decimation of the raw and the
  // smoothed line of every run, robust y range), to tell model time from chart.js update + draw time.
  const modelOnly: number[] = [];
  for (let k = 0; k < 20; k++) {
    const t = performance.now();
    const ys: number[][] = [];
    for (const line of lines) {
      const b = store.get(line.run, line.metric)!;
      const xs = (i: number) => b.x('step', i, 0);
      ys.push(decimateMinMax(xs, b.value, b.length, 1, b.length, 600, true).y);
      ys.push(decimateMinMax(xs, b.smooth(0.6), b.length, 1, b.length, 600, true).y);
    }
    robustRange(ys, 0.02, true);
    modelOnly.push(performance.now() - t);
  }
  window.__benchResult = {
    model_only: { median_ms: median(modelOnly), p95_ms: p95(modelOnly), n: modelOnly.length },
    runs: RUNS,
    points_per_run: POINTS,
    canvas: [canvas.width, canvas.height],
    rendered_points: chart.renderedPoints,
    first_frame_ms: first,
    live_smoothed: { median_ms: median(live), p95_ms: p95(live), n: live.length },
    live_raw: { median_ms: median(raw), p95_ms: p95(raw), n: raw.length },
    zoomed: { median_ms: median(zoom), p95_ms: p95(zoom), n: zoom.length },
    wall_time_x: { median_ms: median(wall), p95_ms: p95(wall), n: wall.length },
  };
}

try {
  main();
} catch (e) {
  window.__benchError = String((e as Error)?.stack ?? e);
}
