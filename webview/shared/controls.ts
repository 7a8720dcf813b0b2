// The chart controls shared by the run and comparison tabs (VS Code Elements where a real control exists;
// a native range input for the smoothing weight, which VS Code Elements does not have).
import type { XMode } from './chartModel';
import { h } from './dom';

export interface ViewSettings {
  xMode: XMode;
  smoothing: number;
  logY: boolean;
  ignoreOutliers: boolean;
  zoom: { min: number; max: number } | null;
}

export interface Controls {
  element: HTMLElement;
  xMode: HTMLElement;
  smoothing: HTMLInputElement;
  smoothingValue: HTMLElement;
  logY: HTMLElement;
  ignoreOutliers: HTMLElement;
  resetZoom: HTMLElement;
}

const X_MODES: [XMode, string][] = [
  ['step', 'Step'],
  ['relative', 'Relative time'],
  ['wall', 'Wall time'],
];

export function controlsBar(s: ViewSettings): Controls {
  const xMode = h('vscode-single-select', { id: 'x-mode', 'aria-label': 'X axis' }, ...X_MODES.map(([v, label]) => h('vscode-option', { value: v, selected: v === s.xMode }, label)));
  const smoothing = h('input', { type: 'range', id: 'smoothing', min: 0, max: 0.99, step: 0.01, value: s.smoothing, 'aria-label': 'Smoothing' });
  const smoothingValue = h('span', { class: 'value' }, s.smoothing.toFixed(2));
  const logY = h('vscode-checkbox', { id: 'log-y', checked: s.logY, label: 'Log Y' });
  const ignoreOutliers = h('vscode-checkbox', { id: 'ignore-outliers', checked: s.ignoreOutliers, label: 'Ignore outliers' });
  const resetZoom = h('vscode-button', { id: 'reset-zoom', secondary: true, title: 'Drag across a chart to zoom; double-click to reset' }, 'Reset zoom');
  const element = h(
    'div',
    { class: 'controls' },
    h('label', { class: 'control' }, 'X ', xMode),
    h('label', { class: 'control', title: 'Exponential moving average; the raw line stays faded behind' }, 'Smoothing ', smoothing, smoothingValue),
    logY,
    ignoreOutliers,
    resetZoom,
  );
  return { element, xMode, smoothing, smoothingValue, logY, ignoreOutliers, resetZoom };
}

export function bindControls(c: Controls, s: ViewSettings, changed: () => void): void {
  c.xMode.addEventListener('change', () => {
    const v = (c.xMode as unknown as { value: string }).value as XMode;
    if (v && v !== s.xMode) {
      s.xMode = v;
      s.zoom = null;
      changed();
    }
  });
  c.smoothing.addEventListener('input', () => {
    s.smoothing = Math.min(0.99, Math.max(0, Number(c.smoothing.value)));
    c.smoothingValue.textContent = s.smoothing.toFixed(2);
    changed();
  });
  c.logY.addEventListener('change', () => {
    s.logY = (c.logY as unknown as { checked: boolean }).checked;
    changed();
  });
  c.ignoreOutliers.addEventListener('change', () => {
    s.ignoreOutliers = (c.ignoreOutliers as unknown as { checked: boolean }).checked;
    changed();
  });
  c.resetZoom.addEventListener('click', () => {
    s.zoom = null;
    changed();
  });
}
