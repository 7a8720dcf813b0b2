// The run queue: never more than max jobs at once, FIFO, cancel, changing the limit.
import { describe, expect, it } from 'vitest';
import { RunQueue } from '../../../src/core/queue';
import { randInt, rng } from './helpers';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('RunQueue', () => {
  it('runs at most max jobs, in FIFO order, and frees a slot on failure too', async () => {
    const q = new RunQueue(2);
    const started: string[] = [];
    const d = Object.fromEntries(['a', 'b', 'c', 'd'].map((k) => [k, deferred()]));
    for (const k of ['a', 'b', 'c', 'd']) q.enqueue(k, () => (started.push(k), d[k]!.promise));
    expect(started).toEqual(['a', 'b']);
    expect(q.running).toEqual(['a', 'b']);
    expect(q.queued).toEqual(['c', 'd']);
    d.a!.reject(new Error('boom'));
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(['a', 'b', 'c']);
    d.b!.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(['a', 'b', 'c', 'd']);
    d.c!.resolve();
    d.d!.resolve();
    await q.onIdle();
    expect(q.running).toEqual([]);
  });

  for (const seed of [1, 2, 3]) {
    it(`never exceeds the limit with random durations (seed ${seed})`, async () => {
      const r = rng(seed);
      const max = randInt(r, 1, 4);
      const q = new RunQueue(max);
      let active = 0;
      let peak = 0;
      let done = 0;
      for (let i = 0; i < 30; i++) {
        const ms = randInt(r, 0, 3);
        q.enqueue(`j${i}`, async () => {
          active += 1;
          peak = Math.max(peak, active);
          await new Promise((res) => setTimeout(res, ms));
          active -= 1;
          done += 1;
        });
      }
      await q.onIdle();
      expect(done).toBe(30);
      expect(peak).toBe(max);
    });
  }

  it('cancels a waiting job, refuses duplicates, and starts more when the limit is raised', async () => {
    const q = new RunQueue(1);
    const started: string[] = [];
    const hold = deferred();
    q.enqueue('a', () => (started.push('a'), hold.promise));
    q.enqueue('b', async () => void started.push('b'));
    q.enqueue('c', async () => void started.push('c'));
    expect(() => q.enqueue('a', async () => {})).toThrow(/already queued or running/);
    expect(q.cancel('b')).toBe(true);
    expect(q.cancel('a')).toBe(false); // running jobs are not the queue's to cancel
    q.setMaxConcurrent(2);
    expect(started).toEqual(['a', 'c']);
    hold.resolve();
    await q.onIdle();
    expect(started).toEqual(['a', 'c']);
    expect(() => q.setMaxConcurrent(0)).toThrow(RangeError);
  });
});

describe('RunQueue.whenFreed', () => {
  it('resolves once the key has left the queue (finished or cancelled), at once for unknown keys', async () => {
    const q = new RunQueue(1);
    let release!: () => void;
    q.enqueue('a', () => new Promise<void>((r) => (release = r)));
    q.enqueue('b', async () => {});
    const order: string[] = [];
    const a = q.whenFreed('a').then(() => order.push(`a freed, has(a)=${q.has('a')}`));
    await q.whenFreed('zzz');
    expect(q.cancel('b')).toBe(true);
    await q.whenFreed('b');
    release();
    await a;
    expect(order).toEqual(['a freed, has(a)=false']);
  });
});
