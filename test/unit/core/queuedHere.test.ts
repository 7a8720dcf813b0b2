// What this machine queued is remembered across windows; a queued run folder from elsewhere is not ours.
import { describe, expect, it } from 'vitest';
import { QueuedHere, type KeyValueStore } from '../../../src/core/queuedHere';
import type { RunInfo } from '../../../src/core/runStore';

class MemoryStore implements KeyValueStore {
  data = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }
  update(key: string, value: unknown): void {
    this.data.set(key, structuredClone(value));
  }
}

const run = (key: string, created_at: number) => ({ key, created_at, state: 'queued' }) as RunInfo;

describe('QueuedHere', () => {
  it('splits queued runs into the ones this machine queued and the others', () => {
    const store = new MemoryStore();
    const mine = new QueuedHere(store, '/ws/.rlora-runs');
    mine.remember(run('e/a', 100.25));
    // a later window (a new object on the same storage) knows it
    const later = new QueuedHere(store, '/ws/.rlora-runs');
    const { ours, foreign } = later.split([run('e/a', 100.25), run('shipped/x', 5), run('e/a-copy', 100.25)]);
    expect(ours.map((r) => r.key)).toEqual(['e/a']);
    expect(foreign.map((r) => r.key)).toEqual(['shipped/x', 'e/a-copy']);
  });

  it('a folder re-created under the same key, or the same key in another runs root, is not the run that was queued', () => {
    const store = new MemoryStore();
    new QueuedHere(store, '/ws/.rlora-runs').remember(run('e/a', 100));
    expect(new QueuedHere(store, '/ws/.rlora-runs').has(run('e/a', 101))).toBe(false);
    expect(new QueuedHere(store, '/other/.rlora-runs').has(run('e/a', 100))).toBe(false);
  });

  it('forgets a run once it ended, and survives a damaged stored value', () => {
    const store = new MemoryStore();
    const q = new QueuedHere(store, '/r');
    q.remember(run('e/a', 1));
    q.remember(run('e/b', 2));
    q.forget('e/a');
    expect(q.has(run('e/a', 1))).toBe(false);
    expect(q.has(run('e/b', 2))).toBe(true);
    store.update('riemannlora.queuedHere', { not: 'a list' });
    expect(q.split([run('e/b', 2)]).foreign).toHaveLength(1);
  });
});
