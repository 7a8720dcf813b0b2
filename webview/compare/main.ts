// The comparison tab: any number of runs overlaid on one chart with an HTML legend (toggle, colour, method,
// state, config on hover), the controls (metric, x axis, smoothing, log y, ignore outliers), CSV/PNG
// export and the summary table computed by the engine. A fair comparison (table.verdict) adds the verdict on
// top, "Seeds: mean ± range | each seed" (a method as its seed mean over a min–max band, seedBands.ts, or
// its seeds one by one, in the method's colour) and the learning-rate sensitivity chart below the chart.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-radio/index.js';
import '@vscode-elements/elements/dist/vscode-radio-group/index.js';
import '@vscode/codicons/dist/codicon.css';
import '../shared/style.css';
import { BUILTIN_METRICS, type MetricKey, metricLabel, type PanelTarget, type ReceivedMessage, type RunView, type SummaryTable } from '../../src/shared/messages';
import { HostConnection } from '../shared/api';
import { statusBanner } from '../shared/statusBanner';
import { SeriesStore, runColor, type XMode } from '../shared/chartModel';
import { type Band, type ChartSettings, FrameScheduler, LineChart, onThemeChange } from '../shared/chartView';
import { storeBand } from '../shared/seedBands';
import { SensitivityChart } from '../shared/sensitivityChart';
import { h, icon, replaceChildren, stateBadge } from '../shared/dom';
import { bindControls, controlsBar, type ViewSettings } from '../shared/controls';

interface CompareState extends ViewSettings {
  /** What this panel shows (read by the host's serializer after a reload). */
  target?: PanelTarget;
  metric: MetricKey;
  /** Runs the user unticked in the legend (unticking a method in mean mode unticks its seeds). */
  hidden: string[];
  /** A fair comparison's seeds: each method as its mean ± range (one line and a band), or every seed. */
  seeds: SeedMode;
}

type SeedMode = 'mean' | 'each';

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
  seeds: 'mean',
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
const seedRadio = (value: SeedMode, label: string) => h('vscode-radio', { name: 'seeds', value, label, checked: state.seeds === value });
const seedModes = h('vscode-radio-group', { id: 'seed-mode', 'aria-label': 'Seeds' }, seedRadio('mean', 'mean ± range'), seedRadio('each', 'each seed'));
const seedControl = h('div', { class: 'control', id: 'seed-control', title: "A fair comparison's matched seeds: each method as its seed mean with the min–max range, or every seed", hidden: true }, 'Seeds: ', seedModes);
// A fair comparison's search: final validation value against the learning rate, per method.
const sensitivityCanvas = h('canvas', { id: 'sensitivity', role: 'img', 'aria-label': 'Learning-rate sensitivity: final validation value of each search trial against its learning rate' });
const sensitivityNote = h('p', { class: 'muted', id: 'sensitivity-note' });
const sensitivityBox = h(
  'section',
  { id: 'sensitivity-section', 'aria-label': 'Learning-rate sensitivity', hidden: true },
  h(
    'figure',
    { class: 'chart-box chart-box-small' },
    h('figcaption', {}, 'Learning-rate sensitivity: the final validation value of each search trial at its longest rung; the chosen rate starred, a failed trial hollow on the bottom edge'),
    h('div', { class: 'canvas-wrap' }, sensitivityCanvas),
  ),
  sensitivityNote,
);
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
    h('div', { class: 'toolbar' }, h('label', { class: 'control' }, 'Metric ', metricSelect), seedControl, controls.element, csvButton, pngButton),
    h('div', { class: 'chart-box chart-box-large' }, canvas),
    legend,
    sensitivityBox,
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
const sensitivity = new SensitivityChart(sensitivityCanvas);
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
seedModes.addEventListener('change', (e) => {
  const v = (e.target as unknown as { value?: string }).value;
  if ((v === 'mean' || v === 'each') && v !== state.seeds) {
    state.seeds = v;
    renderLegend();
    changed();
  }
});
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

const fair = (): boolean => !!table?.verdict;
/** A fair comparison in mean mode: one line and band per method. */
const meanMode = (): boolean => fair() && state.seeds === 'mean';

/** A fair comparison's methods in the record's order (the sensitivity chart has them all before any seed runs), then any other. */
function methods(): string[] {
  return [...new Set([...(table?.verdict?.sensitivity?.methods.map((m) => m.method) ?? []), ...runs.map((r) => r.method)])];
}

function methodColor(method: string): string {
  return runColor(Math.max(0, methods().indexOf(method)));
}

function methodLabel(method: string): string {
  const named = table?.verdict?.sensitivity?.methods.find((m) => m.method === method)?.label;
  if (named) return named;
  const first = runs.find((r) => r.method === method);
  return first ? first.label.replace(/ · seed \d+$/, '') : method;
}

function color(key: string): string {
  // A fair comparison draws a method's seeds in one colour (its legend, table row and sensitivity points share it).
  if (fair()) return methodColor(runs.find((r) => r.key === key)?.method ?? '');
  return runColor(runs.findIndex((r) => r.key === key));
}

const seedsOf = (method: string): RunView[] => runs.filter((r) => r.method === method);
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function draw(): void {
  const shown = runs.filter((r) => !state.hidden.includes(r.key));
  const markers = state.metric === 'eval_loss' || state.metric.startsWith('eval:');
  if (meanMode()) {
    // Each method's shown seeds as one curve (hidden seeds, e.g. unticked in "each seed", do not count).
    chart.lines = [];
    chart.bands = methods()
      .map((method): Band | undefined => {
        const seeds = shown.filter((r) => r.method === method);
        if (!seeds.length) return undefined;
        return {
          id: method,
          label: methodLabel(method),
          color: methodColor(method),
          band: storeBand(store, seeds.map((r) => r.key), state.metric, state.xMode, markers ? 0 : state.smoothing),
          markers,
          info: [`${method}: the band is the min–max over the seeds`, ...seeds.map((r) => `${r.label} · ${r.state}`)],
        };
      })
      .filter((b): b is Band => !!b);
  } else {
    chart.bands = [];
    chart.lines = shown.map((r) => ({
      run: r.key,
      metric: state.metric,
      label: r.label,
      color: color(r.key),
      markers,
      info: [`${r.method} · ${r.state}`, ...r.config],
    }));
  }
  chart.yTitle = metricLabel(state.metric);
  chart.render();
  canvas.dataset.drawnTheme = document.body.className; // which theme's colours the last frame used
  const what = meanMode() ? `${chart.bands.length} of ${plural(methods().filter((m) => seedsOf(m).length).length, 'method')} (mean ± range of ${plural(shown.length, 'seed')})` : `${shown.length} of ${runs.length} runs`;
  status.textContent = `${what} · ${store.totalPoints().toLocaleString()} points · ${chart.renderedPoints.toLocaleString()} drawn`;
  drawSensitivity();
}

/** What the sensitivity chart last drew: it is redrawn when the search, the colours or the theme change, not every frame. */
let sensitivityDrawn: { s: unknown; key: string } | undefined;

function drawSensitivity(): void {
  const s = table?.verdict?.sensitivity;
  sensitivityBox.hidden = !s;
  if (!s) return;
  const key = `${methods().join('|')}\u0000${document.body.className}\u0000${sensitivityCanvas.clientWidth}x${sensitivityCanvas.clientHeight}`;
  if (sensitivityDrawn?.s === s && sensitivityDrawn.key === key) return;
  sensitivityDrawn = { s, key };
  const plot = sensitivity.render(s, methodColor);
  const searched = s.methods.reduce((n, m) => n + m.points.length, 0);
  sensitivityNote.textContent = !searched
    ? 'No search trial has ended yet.'
    : plot.failedText.length
      ? `Failed or diverged (no finite value): ${plot.failedText.join('; ')}.`
      : `${plural(searched, 'searched rate')}, none failed.`;
  sensitivityCanvas.dataset.points = String(searched);
}

/** Mean mode's legend: one entry per method with its seed count; unticking it hides all its seeds. */
function methodLegend(): HTMLElement[] {
  return methods()
    .filter((m) => seedsOf(m).length)
    .map((method) => {
      const seeds = seedsOf(method);
      const on = seeds.some((r) => !state.hidden.includes(r.key));
      const label = methodLabel(method);
      const box = h('vscode-checkbox', { checked: on, 'aria-label': `Show ${label}` });
      box.addEventListener('change', () => {
        const checked = (box as unknown as { checked: boolean }).checked;
        const keys = seeds.map((r) => r.key);
        state.hidden = checked ? state.hidden.filter((k) => !keys.includes(k)) : [...new Set([...state.hidden, ...keys])];
        item.classList.toggle('off', !checked);
        changed();
      });
      const states = [...new Set(seeds.map((r) => r.state))];
      const shown = seeds.filter((r) => !state.hidden.includes(r.key)).length;
      const count = shown === seeds.length ? plural(seeds.length, 'seed') : `${shown} of ${plural(seeds.length, 'seed')}`;
      const item = h(
        'li',
        { class: `legend-item${on ? '' : ' off'}`, 'data-method': method, title: [`${label} (${method}): mean ± range of its seeds`, ...seeds.map((r) => `${r.label} · ${r.state}`)].join('\n') },
        box,
        h('span', { class: 'swatch swatch-band' }),
        h('span', { class: 'method-label' }, label),
        h('span', { class: 'method' }, `${method} · ${count}`),
        ...states.map((st) => stateBadge(st)),
      );
      (item.querySelector('.swatch') as HTMLElement).style.backgroundColor = methodColor(method);
      return item;
    });
}

function renderLegend(): void {
  seedControl.hidden = !fair();
  legend.setAttribute('aria-label', meanMode() ? 'Methods' : 'Runs');
  if (meanMode()) {
    replaceChildren(legend, ...methodLegend());
    return;
  }
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
        // A fair table's rows follow the record's methods, as the sensitivity payload does: coloured before any seed runs.
        const method = t.verdict?.sensitivity?.methods[i]?.method;
        if (sw) sw.style.backgroundColor = method ? methodColor(method) : color(key);
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
