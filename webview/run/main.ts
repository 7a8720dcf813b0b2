// The run tab: status and progress, the config summary, live charts (train and eval loss, learning rate,
// gradient norm, tokens/s, memory) and, for a failed run, the error, its hint and the tail of worker.log.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode/codicons/dist/codicon.css';
import '../shared/style.css';
import type { MetricKey, PanelTarget, ReceivedMessage, RunView } from '../../src/shared/messages';
import { HostConnection } from '../shared/api';
import { statusBanner } from '../shared/statusBanner';
import { formatDuration, formatNumber, runColor, SeriesStore } from '../shared/chartModel';
import { type ChartSettings, FrameScheduler, LineChart, onThemeChange } from '../shared/chartView';
import { bindControls, controlsBar, type ViewSettings } from '../shared/controls';
import { h, icon, replaceChildren, stateBadge } from '../shared/dom';

const store = new SeriesStore();
let run: RunView | undefined;
type RunState = ViewSettings & { target?: PanelTarget };
const banner = statusBanner({ what: 'run', close: () => conn.post({ type: 'close' }), retry: () => conn.connect() });
const conn = new HostConnection<RunState>(onMessage, banner.update);
const state: RunState = { xMode: 'step', smoothing: 0.6, logY: false, ignoreOutliers: false, zoom: null, ...conn.state };

const root = document.getElementById('root')!;
const title = h('h1', { class: 'title' }, 'Run');
const badge = h('span', { id: 'state' });
const progress = h('span', { class: 'muted', id: 'progress' });
const actions = h('span', { class: 'actions' });
const configBox = h('dl', { class: 'config', id: 'config' });
const errorBox = h('section', { class: 'error-box', id: 'error', hidden: true });
const controls = controlsBar(state);
const content = h('div', { id: 'content' }, configBox, errorBox, h('div', { class: 'toolbar' }, controls.element));
root.append(h('header', { class: 'header' }, title, badge, progress, actions), banner.element, content);

interface Panel {
  title: string;
  metrics: { metric: MetricKey; label: string; markers?: boolean; dashed?: boolean; color: number }[];
  bytes?: boolean;
  large?: boolean;
}
const PANELS: Panel[] = [
  { title: 'loss', large: true, metrics: [{ metric: 'loss', label: 'train loss', color: 0 }, { metric: 'eval_loss', label: 'eval loss', markers: true, dashed: true, color: 1 }] },
  { title: 'learning rate', metrics: [{ metric: 'lr', label: 'learning rate', color: 2 }] },
  { title: 'gradient norm', metrics: [{ metric: 'grad_norm', label: 'gradient norm', color: 3 }] },
  { title: 'tokens/s', metrics: [{ metric: 'tokens_per_s', label: 'tokens/s', color: 4 }] },
  { title: 'memory', bytes: true, metrics: [{ metric: 'memory_bytes', label: 'memory', color: 5 }] },
];

const settings = (): ChartSettings => ({ xMode: state.xMode, logY: state.logY, smoothing: state.smoothing, ignoreOutliers: state.ignoreOutliers, zoom: state.zoom });
const grid = h('div', { class: 'chart-grid' });
content.append(grid);
const charts = PANELS.map((p) => {
  const canvas = h('canvas', { role: 'img', 'aria-label': p.title, 'data-chart': p.title });
  const box = h('figure', { class: `chart-box${p.large ? ' chart-box-large' : ''}`, 'data-panel': p.title }, h('figcaption', {}, p.title), h('div', { class: 'canvas-wrap' }, canvas));
  grid.append(box);
  const chart = new LineChart(canvas, store, settings(), {
    yTitle: p.title,
    bytes: p.bytes,
    onZoom: (zoom) => {
      state.zoom = zoom;
      changed();
    },
  });
  return { panel: p, chart, box };
});
const frames = new FrameScheduler(draw);

function changed(): void {
  conn.state = { ...state };
  for (const c of charts) c.chart.update(settings());
  frames.request();
}
bindControls(controls, state, changed);

function draw(): void {
  if (!run) return;
  const r = run;
  // status.json is rewritten at state changes; the live step comes from the points.
  const loss = store.get(r.key, 'loss');
  const live = loss?.length ? loss.step[loss.length - 1]! : 0;
  if (live > r.step) {
    r.step = live;
    progress.textContent = progressText(r);
  }
  for (const { panel, chart, box } of charts) {
    chart.lines = panel.metrics.map((m) => ({ run: r.key, metric: m.metric, label: m.label, color: runColor(m.color), markers: m.markers, dashed: m.dashed, info: r.config }));
    const has = panel.metrics.some((m) => (store.get(r.key, m.metric)?.length ?? 0) > 0);
    // Points held for the panel's first metric (the e2e tests check that none is lost across a reload).
    box.dataset.points = String(store.get(r.key, panel.metrics[0]!.metric)?.length ?? 0);
    box.classList.toggle('empty', !has);
    // Memory and throughput stay empty for some tasks: a panel without points takes no space.
    box.hidden = !has && !panel.large;
    if (has || panel.large) chart.render();
  }
}

function button(label: string, iconName: string, command: 'stopRun' | 'resumeRun' | 'showLog'): HTMLElement {
  const b = h('vscode-button', { secondary: command === 'showLog', 'data-command': command }, icon(iconName), ` ${label}`);
  b.addEventListener('click', () => run && conn.post({ type: 'command', command, run: run.key }));
  return b;
}

function progressText(r: RunView): string {
  const parts = [`step ${r.step} / ${r.totalSteps}`, r.method];
  if (r.device) parts.push(r.device);
  if (r.trainWallSeconds !== null) parts.push(`${formatDuration(r.trainWallSeconds)} init + training`);
  if (r.finalLossSmoothed !== null) parts.push(`final loss (smoothed) ${formatNumber(r.finalLossSmoothed)}`);
  if (r.bestLossSmoothed !== null) parts.push(`best (smoothed) ${formatNumber(r.bestLossSmoothed)}`);
  if (r.peakMemory !== null) parts.push(`peak ${formatNumber(r.peakMemory, true)}`);
  return parts.join(' · ');
}

function renderRun(): void {
  if (!run) return;
  const r = run;
  title.textContent = r.label;
  document.title = r.label;
  replaceChildren(badge, stateBadge(r.state));
  const loss = store.get(r.key, 'loss');
  if (loss?.length) r.step = Math.max(r.step, loss.step[loss.length - 1]!);
  progress.textContent = progressText(r);
  replaceChildren(
    actions,
    r.state === 'running' || r.state === 'queued' ? button('Stop', 'debug-stop', 'stopRun') : null,
    r.state === 'stopped' || r.state === 'failed' ? button('Resume', 'debug-continue', 'resumeRun') : null,
    button('Log', 'output', 'showLog'),
  );
  replaceChildren(
    configBox,
    ...r.config.flatMap((line) => {
      const i = line.indexOf(':');
      return i < 0 ? [h('dt', {}, line), h('dd', {}, '')] : [h('dt', {}, line.slice(0, i)), h('dd', {}, line.slice(i + 1).trim())];
    }),
  );
  const failed = r.state === 'failed' || r.state === 'diverged' || r.state === 'damaged';
  errorBox.hidden = !(failed && (r.error || r.logTail));
  if (!errorBox.hidden) {
    replaceChildren(
      errorBox,
      h('h2', {}, icon(r.state === 'damaged' ? 'warning' : 'error'), r.state === 'damaged' ? ' damaged: this run\'s metadata cannot be trusted' : ` ${r.error ? `${r.error.kind}: ` : ''}${r.state}`),
      r.error ? h('p', { class: 'error-message' }, r.error.message) : null,
      r.error?.hint ? h('p', { class: 'hint' }, icon('lightbulb'), ` ${r.error.hint}`) : null,
      r.logTail ? h('details', { open: true }, h('summary', {}, 'worker.log (last lines)'), h('pre', { class: 'log-tail' }, r.logTail)) : null,
    );
  }
}

function onMessage(m: ReceivedMessage): void {
  switch (m.type) {
    case 'snapshot':
      store.clear();
      run = m.runs[0];
      if (state.target?.run && m.target.run !== state.target.run && state.zoom) {
        // The tab now shows another run (a Start Run reuses the tab of the previous one): its x-range
        // would not fit. Smoothing, scales and x mode are the user's choices and stay.
        state.zoom = null;
        for (const c of charts) c.chart.update(settings());
      }
      state.target = m.target;
      conn.state = { ...state };
      store.apply(m.series);
      renderRun();
      break;
    case 'unavailable':
      // The banner says why; the title says which run.
      title.textContent = m.title;
      document.title = m.title;
      state.target = m.target;
      conn.state = { ...state };
      return;
    case 'append':
      if (!store.apply(m.series)) {
        conn.resync();
        return;
      }
      break;
    case 'runs':
      run = m.runs[0] ?? run;
      renderRun();
      break;
    default:
      return;
  }
  frames.request();
}

onThemeChange(() => {
  for (const c of charts) c.chart.applyTheme();
  frames.request();
});
new ResizeObserver(() => frames.request()).observe(grid);
conn.connect();
