// @vitest-environment jsdom
// The webview's connection state machine (webview/shared/handshake.ts) on a fake clock, and the banner
// that shows each phase (webview/shared/statusBanner.ts).
import { describe, expect, test } from 'vitest';
import { type HostMessage, packSeries } from '../../src/shared/messages';
import { type ConnectionStatus, Handshake, type HandshakeTiming, type Timers } from '../../webview/shared/handshake';
import { statusBanner } from '../../webview/shared/statusBanner';

/** Timers that run only when the test advances the clock. */
class FakeClock implements Timers {
  now = 0;
  private nextId = 1;
  private pending = new Map<number, { at: number; fn: () => void }>();
  set(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
  }
  get count(): number {
    return this.pending.size;
  }
}

const TIMING: HandshakeTiming = { retryMs: 100, maxRetryMs: 400, pingMs: 1000, pongWaitMs: 500 };
const SNAPSHOT: HostMessage = { type: 'snapshot', kind: 'run', target: { kind: 'run', run: 'e/r' }, title: 'r', runs: [], series: packSeries([]) };

function setup() {
  const clock = new FakeClock();
  const sent: { at: number; type: string }[] = [];
  const phases: ConnectionStatus[] = [];
  const hs = new Handshake((type) => sent.push({ at: clock.now, type }), (s) => phases.push(s), clock, TIMING);
  return { clock, sent, phases, hs, readies: () => sent.filter((m) => m.type === 'ready').map((m) => m.at) };
}

describe('the handshake', () => {
  test('an unanswered ready is posted again with back-off until a snapshot comes, then the view is live', () => {
    const { clock, hs, readies, phases } = setup();
    hs.start();
    expect(hs.status).toEqual({ phase: 'loading', attempts: 1 });
    clock.advance(1500);
    // 0, then +100, +200, +400 and every 400 (the cap)
    expect(readies()).toEqual([0, 100, 300, 700, 1100, 1500]);
    expect(hs.status.phase).toBe('loading');
    expect(hs.status.attempts).toBe(6);
    hs.received(SNAPSHOT);
    expect(hs.status).toEqual({ phase: 'live', attempts: 0 });
    clock.advance(TIMING.pingMs + TIMING.pongWaitMs - 1); // one ping, not yet overdue
    expect(readies()).toHaveLength(6); // no more readies once answered
    expect(phases.map((p) => p.phase)).toEqual(['loading', 'loading', 'loading', 'loading', 'loading', 'loading', 'live']);
  });

  test('a live view pings; an answered ping keeps it live, an unanswered one means the host is gone', () => {
    const { clock, hs, sent, readies } = setup();
    hs.start();
    hs.received(SNAPSHOT);
    clock.advance(1000);
    expect(sent.at(-1)).toEqual({ at: 1000, type: 'ping' });
    hs.received({ type: 'pong' });
    clock.advance(1000);
    expect(sent.filter((m) => m.type === 'ping').map((m) => m.at)).toEqual([1000, 2000]);
    expect(hs.status.phase).toBe('live');
    // Any message answers a ping: deltas count.
    hs.received({ type: 'append', series: packSeries([]) });
    clock.advance(1000);
    expect(hs.status.phase).toBe('live');
    // This ping stays unanswered.
    clock.advance(499);
    expect(hs.status.phase).toBe('live');
    clock.advance(1);
    expect(hs.status).toEqual({ phase: 'reconnecting', attempts: 1 });
    expect(readies().at(-1)).toBe(3500);
    clock.advance(300);
    expect(hs.status).toEqual({ phase: 'reconnecting', attempts: 3 });
    // A new host answers: live again, pinging again.
    hs.received(SNAPSHOT);
    expect(hs.status.phase).toBe('live');
    const before = readies().length;
    clock.advance(1000);
    expect(sent.at(-1)?.type).toBe('ping');
    expect(readies()).toHaveLength(before);
  });

  test('a host that acknowledges the ready is not asked again while it builds a big snapshot', () => {
    const { clock, hs, readies, sent } = setup();
    hs.start();
    hs.received({ type: 'pong' }); // the host's acknowledgement, before the snapshot
    for (let i = 0; i < 8; i++) {
      // a slow snapshot: several ping intervals, each ping answered
      clock.advance(TIMING.pingMs);
      hs.received({ type: 'pong' });
    }
    expect(readies()).toEqual([0]);
    expect(hs.status.phase).toBe('loading');
    expect(sent.filter((m) => m.type === 'ping').length).toBeGreaterThan(0);
    hs.received(SNAPSHOT);
    expect(hs.status.phase).toBe('live');
  });

  test('a host that acknowledged and then went away is asked again', () => {
    const { clock, hs, readies } = setup();
    hs.start();
    hs.received({ type: 'pong' });
    clock.advance(TIMING.pingMs + TIMING.pongWaitMs);
    expect(hs.status).toEqual({ phase: 'loading', attempts: 1 });
    expect(readies()).toEqual([0, TIMING.pingMs + TIMING.pongWaitMs]);
  });

  test('one ping at a time: no second ping while the first is unanswered', () => {
    const { clock, hs, sent } = setup();
    hs.start();
    hs.received(SNAPSHOT);
    clock.advance(1400);
    expect(sent.filter((m) => m.type === 'ping')).toHaveLength(1);
  });

  test('gone: the view stops asking; unreadable: it asks again only when told to (Retry)', () => {
    const { clock, hs, sent } = setup();
    hs.start();
    hs.received({ type: 'unavailable', reason: 'gone', target: { kind: 'run', run: 'e/r' }, title: 'r', message: 'e/r was deleted.' });
    expect(hs.status).toEqual({ phase: 'gone', attempts: 0, message: 'e/r was deleted.' });
    const n = sent.length;
    clock.advance(60_000);
    expect(sent).toHaveLength(n);
    expect(clock.count).toBe(0);

    const b = setup();
    b.hs.start();
    b.hs.received(SNAPSHOT);
    b.hs.received({ type: 'unavailable', reason: 'unreadable', target: { kind: 'run', run: 'e/r' }, title: 'r', message: 'EACCES' });
    expect(b.hs.status).toEqual({ phase: 'unreadable', attempts: 0, message: 'EACCES' });
    b.clock.advance(60_000);
    expect(b.sent.filter((m) => m.at > 0)).toEqual([]);
    b.hs.start(); // Retry
    expect(b.hs.status).toEqual({ phase: 'loading', attempts: 1 });
    expect(b.sent.at(-1)).toEqual({ at: 60_000, type: 'ready' });
  });

  test('a dropped first ready is repeated: the host that answers late still ends the loading', () => {
    // The host of the lost-handshake bug: it answers only the second ready.
    const { clock, hs, readies } = setup();
    let answered = 0;
    const host = () => {
      if (readies().length >= 2 && !answered) {
        answered++;
        hs.received(SNAPSHOT);
      }
    };
    hs.start();
    host();
    expect(hs.status.phase).toBe('loading');
    clock.advance(100);
    host();
    expect(hs.status.phase).toBe('live');
  });
});

describe('the banner says what each phase means; the page is never blank', () => {
  const actions = () => {
    const calls: string[] = [];
    return { calls, a: { what: 'run' as const, close: () => calls.push('close'), retry: () => calls.push('retry') } };
  };

  test.each([
    [{ phase: 'loading', attempts: 1 }, /Loading the run/],
    [{ phase: 'loading', attempts: 3 }, /Waiting for the extension host to answer \(attempt 3\)/],
    [{ phase: 'reconnecting', attempts: 2 }, /The extension host restarted — reconnecting \(attempt 2\)/],
    [{ phase: 'gone', attempts: 0, message: 'e/r was deleted.' }, /This run no longer exists\.e\/r was deleted\./],
    [{ phase: 'unreadable', attempts: 0, message: 'EACCES: permission denied' }, /The run directory cannot be read: EACCES: permission denied/],
  ] as [ConnectionStatus, RegExp][])('%j', (status, text) => {
    const { a } = actions();
    const b = statusBanner(a);
    document.body.replaceChildren(b.element);
    b.update(status);
    expect(b.element.hidden).toBe(false);
    expect(b.element.textContent).toMatch(text);
    expect(document.body.dataset.phase).toBe(status.phase);
  });

  test('live hides the banner; Close and Retry post what they say', () => {
    const { a, calls } = actions();
    const b = statusBanner(a);
    document.body.replaceChildren(b.element);
    b.update({ phase: 'gone', attempts: 0 });
    (b.element.querySelector('#close-tab') as HTMLElement).click();
    b.update({ phase: 'unreadable', attempts: 0, message: 'x' });
    (b.element.querySelector('#retry') as HTMLElement).click();
    expect(calls).toEqual(['close', 'retry']);
    b.update({ phase: 'live', attempts: 0 });
    expect(b.element.hidden).toBe(true);
    expect(b.element.childElementCount).toBe(0);
  });
});
