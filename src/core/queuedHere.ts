// The runs that this machine queued, remembered outside the workspace (the extension keeps the list in
// its global storage; the CLI starts what it queues at once and needs none). At activation only these
// are started again: a queued run folder that came with a repository, a copy or another machine is data,
// and starting it would run a training nobody here asked for. Such runs wait for the user to start them.
import type { RunInfo, RunKey } from './runStore';

/** Where the list lives (VS Code's Memento satisfies it). */
export interface KeyValueStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void> | void;
}

const KEY = 'riemannlora.queuedHere';
/** At most this many remembered runs (oldest dropped): the list only bridges a window reload. */
const MAX = 2000;

/** A run's identity across windows: its runs root, its key and the time its folder was created. */
const identity = (root: string, info: Pick<RunInfo, 'key' | 'created_at'>): string => `${root}\u0000${info.key}\u0000${info.created_at}`;

export class QueuedHere {
  constructor(
    private readonly store: KeyValueStore,
    private readonly root: string,
  ) {}

  private list(): string[] {
    const v = this.store.get<unknown>(KEY);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  }

  remember(info: Pick<RunInfo, 'key' | 'created_at'>): void {
    const id = identity(this.root, info);
    const list = this.list().filter((x) => x !== id);
    list.push(id);
    void this.store.update(KEY, list.slice(-MAX));
  }

  forget(key: RunKey): void {
    const prefix = `${this.root}\u0000${key}\u0000`;
    const list = this.list();
    const kept = list.filter((x) => !x.startsWith(prefix));
    if (kept.length !== list.length) void this.store.update(KEY, kept);
  }

  has(info: Pick<RunInfo, 'key' | 'created_at'>): boolean {
    return this.list().includes(identity(this.root, info));
  }

  /** Queued runs split into the ones this machine queued and the others (which must not start by themselves). */
  split(queued: readonly RunInfo[]): { ours: RunInfo[]; foreign: RunInfo[] } {
    const ours: RunInfo[] = [];
    const foreign: RunInfo[] = [];
    for (const r of queued) (this.has(r) ? ours : foreign).push(r);
    return { ours, foreign };
  }
}
