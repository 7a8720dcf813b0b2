// A FIFO of jobs with a maximum number running at once (the engine's "max concurrent runs" setting).
// Jobs are keyed so a queued job can be cancelled; a job is running from the moment its start function
// is called until the promise it returns settles.

export type Job = () => Promise<unknown>;

export class RunQueue {
  private waiting: { key: string; job: Job }[] = [];
  private active = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  private freedWaiters = new Map<string, (() => void)[]>();

  constructor(private max = 1) {
    this.setMaxConcurrent(max);
  }

  get maxConcurrent(): number {
    return this.max;
  }

  /** Changes the limit; raising it starts waiting jobs at once, lowering it lets running ones finish. */
  setMaxConcurrent(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`max concurrent runs must be an integer >= 1 (got ${n})`);
    this.max = n;
    this.pump();
  }

  /** Adds a job; it starts when a slot is free. A key already waiting or running is refused. */
  enqueue(key: string, job: Job): void {
    if (this.has(key)) throw new Error(`${key} is already queued or running`);
    this.waiting.push({ key, job });
    this.pump();
  }

  /** Removes a job that has not started; true when it was waiting. */
  cancel(key: string): boolean {
    const i = this.waiting.findIndex((w) => w.key === key);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    this.notifyFreed(key);
    this.notifyIdle();
    return true;
  }

  has(key: string): boolean {
    return this.active.has(key) || this.waiting.some((w) => w.key === key);
  }

  isRunning(key: string): boolean {
    return this.active.has(key);
  }

  get running(): string[] {
    return [...this.active];
  }

  get queued(): string[] {
    return this.waiting.map((w) => w.key);
  }

  /** Resolves once `key` is neither waiting nor running (at once if it is not in the queue). */
  whenFreed(key: string): Promise<void> {
    if (!this.has(key)) return Promise.resolve();
    return new Promise((resolve) => this.freedWaiters.set(key, [...(this.freedWaiters.get(key) ?? []), resolve]));
  }

  /** Resolves once nothing is waiting or running. */
  onIdle(): Promise<void> {
    if (!this.active.size && !this.waiting.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.active.size < this.max && this.waiting.length) {
      const next = this.waiting.shift()!;
      this.active.add(next.key);
      let p: Promise<unknown>;
      try {
        p = Promise.resolve(next.job());
      } catch (err) {
        p = Promise.reject(err);
      }
      // A failing job frees its slot like a succeeding one; reporting the failure is the job's business.
      p.catch(() => undefined).finally(() => {
        this.active.delete(next.key);
        this.notifyFreed(next.key);
        this.pump();
        this.notifyIdle();
      });
    }
  }

  private notifyFreed(key: string): void {
    const waiters = this.freedWaiters.get(key);
    this.freedWaiters.delete(key);
    for (const w of waiters ?? []) w();
  }

  private notifyIdle(): void {
    if (this.active.size || this.waiting.length) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
