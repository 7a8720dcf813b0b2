// The webview's side of the connection to the extension host, as a small state machine (no DOM, no
// timers of its own: both are given, so the unit tests drive it with a fake clock).
//
//   loading       `ready` posted, no snapshot yet; `ready` is posted again, with back-off, until the host
//                 answers (the host acknowledges a `ready` with a `pong` before it builds the snapshot, so
//                 a big snapshot is not asked for twice; from then on pings check that it is still there)
//   live          a snapshot arrived; a `ping` now and then checks that the host is still there
//   gone          the host says the run (or experiment) no longer exists; nothing more is asked
//   unreadable    the host says the run directory cannot be read (the reason is shown); retry on demand
//   reconnecting  a ping went unanswered: the extension host restarted or died; `ready` is posted again,
//                 with back-off, until a host answers with a snapshot
//
// Any message from the host counts as an answer to a ping. The host's protocol: src/shared/messages.ts.
import type { HostMessage } from '../../src/shared/messages';

export type Phase = 'loading' | 'live' | 'gone' | 'unreadable' | 'reconnecting';

export interface ConnectionStatus {
  phase: Phase;
  /** `ready` messages posted in the current loading/reconnecting phase (1 = the first one). */
  attempts: number;
  /** For gone/unreadable: what the host said. */
  message?: string;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface HandshakeTiming {
  /** First repeat of an unanswered `ready`; doubled each time up to `maxRetryMs`. */
  retryMs: number;
  maxRetryMs: number;
  /** Pause between pings of a live view. */
  pingMs: number;
  /** How long a ping may stay unanswered before the view says the host is gone. */
  pongWaitMs: number;
}

export const DEFAULT_TIMING: HandshakeTiming = { retryMs: 1000, maxRetryMs: 8000, pingMs: 5000, pongWaitMs: 5000 };

export const browserTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class Handshake {
  private current: ConnectionStatus = { phase: 'loading', attempts: 0 };
  private retryTimer: unknown;
  private pingTimer: unknown;
  private pongTimer: unknown;
  private retryDelay: number;

  constructor(
    private readonly send: (type: 'ready' | 'ping') => void,
    private readonly onChange: (status: ConnectionStatus) => void,
    private readonly timers: Timers = browserTimers,
    private readonly timing: HandshakeTiming = DEFAULT_TIMING,
  ) {
    this.retryDelay = timing.retryMs;
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  /** Posts the first `ready` (also: the user's Retry, and a view that lost track of its points). */
  start(): void {
    this.askForSnapshot(this.current.phase === 'reconnecting' ? 'reconnecting' : 'loading');
  }

  /** Every message from the host goes through here first. */
  received(m: HostMessage): void {
    const { phase } = this.current;
    if (this.pongTimer !== undefined) {
      // The outstanding ping is answered: the next one after a pause.
      this.stop(this.pongTimer);
      this.pongTimer = undefined;
      this.schedulePing();
    } else if ((phase === 'loading' || phase === 'reconnecting') && this.retryTimer !== undefined) {
      // The host heard the ready (it acknowledges before building the snapshot): stop repeating it and
      // check by pings that the host is still there while the snapshot comes.
      this.stop(this.retryTimer);
      this.retryTimer = undefined;
      this.schedulePing();
    }
    switch (m.type) {
      case 'snapshot':
        this.stop(this.retryTimer);
        this.retryTimer = undefined;
        this.retryDelay = this.timing.retryMs;
        this.set({ phase: 'live', attempts: 0 });
        this.schedulePing();
        return;
      case 'unavailable':
        this.stopAll();
        this.set({ phase: m.reason, attempts: 0, message: m.message });
        return;
      default:
        return; // deltas, pongs and results: the host is there; the phase stays
    }
  }

  dispose(): void {
    this.stopAll();
  }

  private askForSnapshot(phase: 'loading' | 'reconnecting'): void {
    this.stopAll();
    this.retryDelay = this.timing.retryMs;
    this.set({ phase, attempts: 1 });
    this.send('ready');
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.retryTimer = this.timers.set(() => {
      this.retryTimer = undefined;
      const { phase, attempts } = this.current;
      if (phase !== 'loading' && phase !== 'reconnecting') return;
      this.set({ phase, attempts: attempts + 1 });
      this.send('ready');
      this.retryDelay = Math.min(this.retryDelay * 2, this.timing.maxRetryMs);
      this.scheduleRetry();
    }, this.retryDelay);
  }

  /**
   * One ping at a time: the next is scheduled when the host has answered this one. An unanswered ping
   * means the host is gone: ask for a snapshot again (a live view says it is reconnecting).
   */
  private schedulePing(): void {
    this.stop(this.pingTimer);
    this.pingTimer = this.timers.set(() => {
      this.pingTimer = undefined;
      const { phase } = this.current;
      if (phase !== 'live' && phase !== 'loading' && phase !== 'reconnecting') return;
      this.send('ping');
      this.pongTimer = this.timers.set(() => {
        this.pongTimer = undefined;
        const now = this.current.phase;
        if (now === 'live' || now === 'reconnecting') this.askForSnapshot('reconnecting');
        else if (now === 'loading') this.askForSnapshot('loading');
      }, this.timing.pongWaitMs);
    }, this.timing.pingMs);
  }

  private set(status: ConnectionStatus): void {
    this.current = status;
    this.onChange(status);
  }

  private stop(handle: unknown): void {
    if (handle !== undefined) this.timers.clear(handle);
  }

  private stopAll(): void {
    for (const h of [this.retryTimer, this.pingTimer, this.pongTimer]) this.stop(h);
    this.retryTimer = this.pingTimer = this.pongTimer = undefined;
  }
}
