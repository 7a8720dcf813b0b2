// The webview side of the message contract: typed post, the ready handshake (handshake.ts: retried until
// answered, pings while live), request ids, view state.
import { type HostMessage, type ReceivedMessage, unpackSeries, type WebviewMessage } from '../../src/shared/messages';
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

  /** Snapshots in a row whose series could not be unpacked (a resync is asked for a few times, not forever). */
  private badSnapshots = 0;

  constructor(onMessage: (m: ReceivedMessage) => void, onStatus: (s: ConnectionStatus) => void) {
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
      if (m.type !== 'snapshot' && m.type !== 'append') {
        onMessage(m);
        return;
      }
      let series;
      try {
        series = unpackSeries(m.series);
      } catch (err) {
        // Points lost on the way: never draw a partial view as if whole. A delta is a gap (a fresh
        // snapshot repairs it); a snapshot is asked for again a few times.
        console.error(`${m.type}: ${(err as Error).message}`);
        if (m.type === 'append' || this.badSnapshots++ < 3) this.resync();
        return;
      }
      if (m.type === 'snapshot') this.badSnapshots = 0;
      onMessage({ ...m, series });
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
