// The webview side of the message contract: typed post, the ready handshake (handshake.ts: retried until
// answered, pings while live), request ids, view state.
import { type HostMessage, reviveChunk, type WebviewMessage } from '../../src/shared/messages';
import { type ConnectionStatus, Handshake } from './handshake';

interface VsCodeApi<S> {
  postMessage(msg: unknown): void;
  getState(): S | undefined;
  setState(state: S): void;
}
declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

export class HostConnection<S extends object> {
  private readonly api: VsCodeApi<S>;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: { ok: boolean; message?: string }) => void>();
  readonly handshake: Handshake;

  constructor(onMessage: (m: HostMessage) => void, onStatus: (s: ConnectionStatus) => void) {
    this.api = acquireVsCodeApi<S>();
    this.handshake = new Handshake((type) => this.post({ type }), onStatus);
    window.addEventListener('message', (e: MessageEvent) => {
      const m = e.data as HostMessage;
      if (!m || typeof m !== 'object' || typeof m.type !== 'string') return;
      this.handshake.received(m);
      if (m.type === 'pong') return;
      if (m.type === 'result') {
        this.waiting.get(m.requestId)?.(m);
        this.waiting.delete(m.requestId);
        return;
      }
      if (m.type === 'snapshot' || m.type === 'append') m.series = m.series.map(reviveChunk);
      onMessage(m);
    });
  }

  post(m: WebviewMessage): void {
    this.api.postMessage(m);
  }

  /** Starts the handshake: `ready` until the host answers with a snapshot (or says there is none). */
  connect(): void {
    this.handshake.start();
  }

  /** Asks for a fresh snapshot while the view stays as it is (it lost track of a series). */
  resync(): void {
    this.post({ type: 'ready' });
  }

  /** Posts a request and resolves with the host's answer. */
  request(make: (requestId: number) => WebviewMessage): Promise<{ ok: boolean; message?: string }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.post(make(id));
    });
  }

  get state(): S | undefined {
    return this.api.getState();
  }

  set state(s: S) {
    this.api.setState(s);
  }
}
