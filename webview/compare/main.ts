// The comparison tab: any number of runs overlaid on one chart with an HTML legend (toggle, colour, method,
// state, config on hover), the controls (metric, x axis, smoothing, log y, ignore outliers), CSV/PNG
// export and the summary table computed by the engine.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode/codicons/dist/codicon.css';
import '../shared/style.css';
import { BUILTIN_METRICS, type MetricKey, metricLabel, type PanelTarget, type ReceivedMessage, type RunView, type SummaryTable } from '../../src/shared/messages';
import { HostConnection } from '../shared/api';
import { statusBanner } from '../shared/statusBanner';
import { SeriesStore, runColor, type XMode } from '../shared/chartModel';
import { type ChartSettings, FrameScheduler, LineChart, onThemeChange } from '../shared/chartView';
import { h, icon, replaceChildren, stateBadge } from '../shared/dom';
import { bindControls, controlsBar, type ViewSettings } from '../shared/controls';

interface CompareState extends ViewSettings {
  /** What this panel shows (read by the host's serializer after a reload). */
  target?: PanelTarget;
  metric: MetricKey;
  /** Runs the user unticked in the legend. */
  hidden: string[];
}

const store = new SeriesStore();
let runs: RunView[] = [];
let table: SummaryTable | undefined;
const banner = statusBanner({ what: 'comparison', close: () => conn.post({ type: 'close' }), retry: () => conn.connect() });
const conn = new HostConnection<CompareState>(onMessage, banner.update);
const state: CompareState = {
  metric: 'loss',
  xMode: 'step',
  smoothing: 0.6,
  logY: false,
  ignoreOutliers: false,
  zoom: null,
  hidden: [],
  ...conn.state,
};

const root = document.getElementById('root')!;
const title = h('h1', { class: 'title' }, 'Comparison');
const metricSelect = h('vscode-single-select', { id: 'metric', 'aria-label': 'Metric' });
const status = h('span', { class: 'status', id: 'status' });
const csvButton = h('vscode-button', { id: 'export-csv', secondary: true }, icon('export'), ' Export CSV');
const pngButton = h('vscode-button', { id: 'export-png', secondary: true }, icon('file-media'), ' Export PNG');
const controls = controlsBar(state);
const canvas = h('canvas', { id: 'chart', role: 'img', 'aria-label': 'Overlaid curves of the selected runs' });
const legend = h('ul', { class: 'legend', id: 'legend', 'aria-label': 'Runs' });
const tableBox = h('div', { class: 'table-box', id: 'summary' });
// A fair comparison's verdict (docs/comparisons.md) goes on top: it is what the comparison is for.
const verdictBox = h('section', { class: 'verdict', id: 'verdict', 'aria-label': 'Verdict', hidden: true });
root.append(
  h('header', { class: 'header' }, title, status),
  banner.element,
  h(
    'div',
    { id: 'content' },
    verdictBox,
    h('div', { class: 'toolbar' }, h('label', { class: 'control' }, 'Metric ', metricSelect), controls.element, csvButton, pngButton),
    h('div', { class: 'chart-box chart-box-large' }, canvas),
    legend,
    tableBox,
  ),
);

const settings = (): ChartSettings => ({ xMode: state.xMode, logY: state.logY, smoothing: state.smoothing, ignoreOutliers: state.ignoreOutliers, zoom: state.zoom });
const chart = new LineChart(canvas, store, settings(), {
  yTitle: metricLabel(state.metric),
  get bytes() {
    return state.metric === 'memory_bytes';
  },
  onZoom: (zoom) => {
    state.zoom = zoom;
    changed();
  },
});
const frames = new FrameScheduler(() => draw());

function save(): void {
  conn.state = { ...state };
}

function changed(): void {
  save();
  chart.update(settings());
  frames.request();
}

bindControls(controls, state, changed);
metricSelect.addEventListener('change', () => {
  const v = (metricSelect as unknown as { value: string }).value as MetricKey;
  if (v && v !== state.metric) {
    state.metric = v;
    state.zoom = null;
    changed();
  }
});

function setMetricOptions(): void {
  const present = store.metrics();
  const ordered = [...BUILTIN_METRICS.filter((m) => present.includes(m)), ...present.filter((m) => m.startsWith('eval:'))];
  if (!ordered.includes(state.metric)) ordered.unshift(state.metric);
  const current = [...metricSelect.querySelectorAll('vscode-option')].map((o) => o.getAttribute('value'));
  if (current.join('|') === ordered.join('|')) return;
  replaceChildren(metricSelect, ...ordered.map((m) => h('vscode-option', { value: m, selected: m === state.metric }, metricLabel(m))));
  (metricSelect as unknown as { value: string }).value = state.metric;
}

function color(key: string): string {
  // A fair comparison draws a method's seeds in one colour (its legend and table row share it).
  if (table?.verdict) {
    const methods = [...new Set(runs.map((r) => r.method))];
    return runColor(Math.max(0, methods.indexOf(runs.find((r) => r.key === key)?.method ?? '')));
  }
  return runColor(runs.findIndex((r) => r.key === key));
}

function draw(): void {
  const shown = runs.filter((r) => !state.hidden.includes(r.key));
  chart.lines = shown.map((r) => ({
    run: r.key,
    metric: state.metric,
    label: r.label,
    color: color(r.key),
    markers: state.metric === 'eval_loss' || state.metric.startsWith('eval:'),
    info: [`${r.method} · ${r.state}`, ...r.config],
  }));
  chart.yTitle = metricLabel(state.metric);
  chart.render();
  canvas.dataset.drawnTheme = document.body.className; // which theme's colours the last frame used
  status.textContent = `${shown.length} of ${runs.length} runs · ${store.totalPoints().toLocaleString()} points · ${chart.renderedPoints.toLocaleString()} drawn`;
}

function renderLegend(): void {
  replaceChildren(
    legend,
    ...runs.map((r) => {
      const on = !state.hidden.includes(r.key);
      const box = h('vscode-checkbox', { checked: on, 'aria-label': `Show ${r.label}` });
      box.addEventListener('change', () => {
        const checked = (box as unknown as { checked: boolean }).checked;
        state.hidden = checked ? state.hidden.filter((k) => k !== r.key) : [...new Set([...state.hidden, r.key])];
        item.classList.toggle('off', !checked);
        changed();
      });
      const open = h('a', { href: '#', class: 'run-link', title: 'Open the run tab' }, r.label);
      open.addEventListener('click', (e) => {
        e.preventDefault();
        conn.post({ type: 'command', command: 'openRun', run: r.key });
      });
      const item = h(
        'li',
        { class: `legend-item${on ? '' : ' off'}`, 'data-run': r.key, title: [`${r.label} (${r.method})`, ...r.config].join('\n') },
        box,
        h('span', { class: 'swatch', 'data-color': color(r.key) }),
        open,
        h('span', { class: 'method' }, r.method),
        stateBadge(r.state),
      );
      // CSP forbids inline style attributes but not CSSOM: colour the swatch from script.
      (item.querySelector('.swatch') as HTMLElement).style.backgroundColor = color(r.key);
      return item;
    }),
  );
}

function renderTable(): void {
  if (!table || !table.columns.length) {
    replaceChildren(tableBox, h('p', { class: 'muted' }, 'The summary table appears once runs have logged points.'));
    return;
  }
  const t = table;
  const head = h('tr', {}, ...t.columns.map((c) => h('th', { scope: 'col' }, c.header)));
  const body = t.rows.map((key, i) =>
    h(
      'tr',
      { 'data-run': key },
      ...t.columns.map((c, j) => {
        const cell = h(j === 0 ? 'th' : 'td', j === 0 ? { scope: 'row' } : {}, c.cells[i] ?? '');
        if (j === 0) cell.prepend(h('span', { class: 'swatch' }));
        const sw = cell.querySelector('.swatch') as HTMLElement | null;
        if (sw) sw.style.backgroundColor = color(key);
        return cell;
      }),
    ),
  );
  replaceChildren(tableBox, h('table', { class: 'summary', id: 'summary-table' }, h('thead', {}, head), h('tbody', {}, ...body)), t.note ? h('p', { class: 'muted' }, t.note) : null);
}

function renderVerdict(): void {
  const v = table?.verdict;
  verdictBox.hidden = !v;
  if (!v) return;
  const head = v.state === 'running' ? 'Fair comparison running' : v.state === 'complete' ? 'Verdict' : `Verdict (comparison ${v.state})`;
  replaceChildren(
    verdictBox,
    h('h2', {}, head),
    v.progress ? h('p', { class: 'muted', id: 'verdict-progress' }, v.progress) : null,
    v.lines.length ? h('ul', {}, ...v.lines.map((line) => h('li', {}, line))) : v.state === 'running' ? null : h('p', {}, 'No verdict: no completed seeds to compare.'),
  );
}

function onMessage(m: ReceivedMessage): void {
  switch (m.type) {
    case 'snapshot':
      store.clear();
      runs = m.runs;
      table = m.table;
      title.textContent = m.title;
      document.title = m.title;
      state.target = m.target;
      save();
      if (!store.apply(m.series)) console.warn('snapshot did not apply cleanly');
      break;
    case 'unavailable':
      title.textContent = m.title;
      document.title = m.title;
      state.target = m.target;
      save();
      return;
    case 'append':
      if (!store.apply(m.series)) {
        // A gap: ask for a fresh snapshot rather than draw a curve with a hole.
        conn.resync();
        return;
      }
      break;
    case 'runs':
      runs = m.runs;
      if (m.table) table = m.table;
      break;
    default:
      return;
  }
  if (m.type !== 'append') {
    renderLegend();
    renderVerdict();
    renderTable();
  }
  setMetricOptions();
  frames.request();
}

csvButton.addEventListener('click', async () => {
  const selected = runs.filter((r) => !state.hidden.includes(r.key)).map((r) => r.key);
  const r = await conn.request((requestId) => ({ type: 'exportCsv', requestId, runs: selected, metrics: store.metrics() }));
  status.textContent = r.message ?? (r.ok ? 'CSV exported' : 'CSV export failed');
});
pngButton.addEventListener('click', async () => {
  const r = await conn.request((requestId) => ({ type: 'exportPng', requestId, dataUrl: chart.toPng(), name: `${title.textContent ?? 'comparison'}-${state.metric}` }));
  status.textContent = r.message ?? (r.ok ? 'PNG exported' : 'PNG export failed');
});

onThemeChange(() => {
  chart.applyTheme();
  frames.request();
});
new ResizeObserver(() => frames.request()).observe(canvas.parentElement!);
export type { XMode };
conn.connect();
