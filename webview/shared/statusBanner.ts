// What a tab says while it has no data to show, or while its data may be stale (handshake.ts phases):
// never a blank page. The phase is also set on <body data-phase>, which the stylesheet uses to hide the
// content (loading, gone, unreadable) or dim it (reconnecting).
import type { ConnectionStatus } from './handshake';
import { h, icon, replaceChildren } from './dom';

export interface BannerActions {
  /** "run" or "comparison": the words of the messages. */
  what: 'run' | 'comparison';
  close: () => void;
  retry: () => void;
}

/** The banner element (`#view-state`, role status); `update` re-renders it for a status. */
export function statusBanner(actions: BannerActions): { element: HTMLElement; update: (s: ConnectionStatus) => void } {
  const element = h('section', { id: 'view-state', class: 'view-state', role: 'status', 'aria-live': 'polite' });
  const button = (label: string, iconName: string, id: string, onClick: () => void) => {
    const b = h('vscode-button', { id, secondary: true }, icon(iconName), ` ${label}`);
    b.addEventListener('click', onClick);
    return b;
  };
  const update = (s: ConnectionStatus) => {
    document.body.dataset.phase = s.phase;
    element.dataset.phase = s.phase;
    element.hidden = s.phase === 'live';
    const again = s.attempts > 1 ? ` (attempt ${s.attempts})` : '';
    switch (s.phase) {
      case 'live':
        replaceChildren(element);
        return;
      case 'loading':
        replaceChildren(
          element,
          h('p', {}, icon('loading codicon-modifier-spin'), s.attempts > 1 ? ` Waiting for the extension host to answer${again}…` : ` Loading the ${actions.what}…`),
        );
        return;
      case 'reconnecting':
        replaceChildren(
          element,
          h('p', {}, icon('debug-disconnect'), ` The extension host restarted — reconnecting${again}…`),
          h('p', { class: 'muted' }, `What is shown below is as it was; it refreshes once the extension answers. If this stays, close this tab and open the ${actions.what} again from the Experiments view.`),
        );
        return;
      case 'gone':
        replaceChildren(
          element,
          h('p', {}, icon('trash'), ` This ${actions.what} no longer exists.`),
          s.message ? h('p', { class: 'muted' }, s.message) : null,
          button('Close Tab', 'close', 'close-tab', actions.close),
        );
        return;
      case 'unreadable':
        replaceChildren(
          element,
          h('p', {}, icon('error'), ` The run directory cannot be read: ${s.message ?? 'unknown reason'}`),
          h('p', { class: 'muted' }, 'Check that the folder and its files exist and are readable, then retry.'),
          button('Retry', 'refresh', 'retry', actions.retry),
        );
        return;
    }
  };
  return { element, update };
}
