// The run store: layout on disk, id validation, confinement to the root, listing many runs from the
// small files only.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../../src/core/config';
import { assertId, parseRunKey, readTail, RunStore, StoreError } from '../../../src/core/runStore';
import { tempDir } from './helpers';

const config: RunConfig = {
  name: 'tiny',
  task: { kind: 'synthetic-lowrank' },
  adapter: { rank: 2 },
  method: { init: 'loi', optimizer: 'riemannion' },
  train: { steps: 10 },
};

let cleanup = () => {};
afterEach(() => cleanup());
function store(): RunStore {
  const t = tempDir();
  cleanup = t.cleanup;
  return new RunStore(join(t.dir, 'runs'));
}

describe('ids and paths', () => {
  it('accepts ordinary ids and refuses traversal, separators, hidden names and overlong ids', () => {
    for (const ok of ['a', 'run-1', 'R.2_x', '20261129T000000Z-riemannion-loi-ab12', 'x'.repeat(128)]) expect(() => assertId('run', ok)).not.toThrow();
    for (const bad of ['', '.', '..', '../x', 'a/b', 'a\\b', '.hidden', '-x', 'a b', 'x'.repeat(129), 'é']) {
      expect(() => assertId('run', bad), bad).toThrow(StoreError);
    }
    expect(() => parseRunKey('exp/../x')).toThrow(/invalid run id/);
    expect(() => parseRunKey('noslash')).toThrow(StoreError);
  });

  it('every path stays inside the root', () => {
    const s = store();
    expect(s.path('e', 'r')).toBe(join(s.root, 'e', 'r'));
    expect(() => s.path('..', 'r')).toThrow(StoreError);
    expect(() => s.runDir('e/..')).toThrow(StoreError);
  });

  it('new ids are valid, distinct and sort by time', () => {
    const a = RunStore.newId('Riemannion + LOI / test');
    const b = RunStore.newId('Riemannion + LOI / test');
    expect(a).not.toBe(b);
    expect(() => assertId('run', a)).not.toThrow();
    expect(a).toMatch(/^\d{8}T\d{6}Z-riemannion-loi-test-[0-9a-f]{4}$/);
  });
});

describe('runs and experiments', () => {
  it('creates a queued run with config.json, status.json and run.json, inside its experiment', () => {
    const s = store();
    const exp = s.createExperiment({ id: 'exp1', name: 'Experiment 1', kind: 'compare' });
    const info = s.createRun(exp.id, 'r1', config, 'Tiny run');
    expect(info).toMatchObject({ key: 'exp1/r1', state: 'queued', label: 'Tiny run', method: 'riemannion+loi', task: 'synthetic-lowrank', steps: 10, step: 0 });
    expect(JSON.parse(readFileSync(join(info.dir, 'config.json'), 'utf8'))).toEqual(config);
    expect(s.readStatus('exp1/r1')?.state).toBe('queued');
    expect(s.getExperiment('exp1')?.runs).toEqual(['r1']);
    expect(() => s.createRun('exp1', 'r1', config)).toThrow(/already exists/);
    expect(() => s.createExperiment({ id: 'exp1', name: 'again', kind: 'single' })).toThrow(/already exists/);
  });

  it('lists runs in creation order, reflects status and cached summaries, and survives junk folders', () => {
    const s = store();
    s.createExperiment({ id: 'e', name: 'e', kind: 'single' });
    for (const r of ['zz', 'aa', 'mm']) s.createRun('e', r, config);
    s.writeStatus('e/aa', { version: 1, state: 'completed', updated_at: 5, step: 10, exit_code: 0 });
    s.updateCard('e/aa', (c) => (c.summary = { steps: 10, final_loss_smoothed: 0.5, best_loss_smoothed: 0.4, best_eval: null, train_wall_s: 1, peak_memory_bytes: null, final_eval: null }));
    mkdirSync(join(s.root, 'e', '.junk'));
    mkdirSync(join(s.root, 'e', 'empty-folder'));
    writeFileSync(join(s.root, 'e', 'stray.txt'), 'x');
    const runs = s.listRuns('e');
    expect(runs.map((r) => r.run)).toEqual(['zz', 'aa', 'mm']);
    expect(runs[1]).toMatchObject({ state: 'completed', step: 10, summary: { final_loss_smoothed: 0.5 } });
    expect(runs[1]!.summary_stale).toBeUndefined();
    expect(s.getRun('e/empty-folder')).toBeUndefined();
  });

  it('a summary cached under the old names (final_loss, best_loss, wall_s) loads as stale: not shown, not damaged', () => {
    const s = store();
    s.createRun('e', 'old', config);
    s.writeStatus('e/old', { version: 1, state: 'completed', updated_at: 5, step: 10, exit_code: 0 });
    const card = JSON.parse(readFileSync(join(s.root, 'e', 'old', 'run.json'), 'utf8')) as Record<string, unknown>;
    card.summary = { steps: 10, final_loss: 0.5, best_loss: 0.4, best_eval: null, wall_s: 1, peak_memory_bytes: null, final_eval: null };
    writeFileSync(join(s.root, 'e', 'old', 'run.json'), JSON.stringify(card));
    expect(s.getRun('e/old')).toMatchObject({ state: 'completed', damaged: null, summary: null, summary_stale: true });
  });

  it('a run folder without run.json (copied in by hand) is still listed from its config', () => {
    const s = store();
    s.createExperiment({ id: 'e', name: 'e', kind: 'single' });
    mkdirSync(join(s.root, 'e', 'manual'), { recursive: true });
    writeFileSync(join(s.root, 'e', 'manual', 'config.json'), JSON.stringify(config));
    expect(s.listRuns('e').map((r) => [r.run, r.method, r.state])).toEqual([['manual', 'riemannion+loi', 'queued']]);
  });

  it('lists 1,000 runs from status.json and run.json alone (events.jsonl is never read)', () => {
    const s = store();
    for (let e = 0; e < 10; e++) {
      s.createExperiment({ id: `exp${e}`, name: `exp${e}`, kind: 'single' });
      for (let r = 0; r < 100; r++) {
        const info = s.createRun(`exp${e}`, `run${String(r).padStart(3, '0')}`, config);
        // A directory where events.jsonl should be: reading it as a file would throw EISDIR.
        mkdirSync(join(info.dir, 'events.jsonl'));
      }
    }
    const all = s.listAll();
    expect(all).toHaveLength(1000);
    expect(new Set(all.map((r) => r.key)).size).toBe(1000);
    expect(all.every((r) => r.state === 'queued')).toBe(true);
  });

  it('does not follow an experiment id out of the root, and an absent root lists nothing', () => {
    const s = store();
    expect(s.listAll()).toEqual([]);
    mkdirSync(s.root, { recursive: true });
    symlinkSync('/', join(s.root, 'outside'));
    expect(s.listExperiments().map((e) => e.id)).toEqual([]);
  });

  it('path() resolves symbolic links: an experiment or run folder that leads outside the root is refused', () => {
    const t = tempDir();
    const prev = cleanup;
    cleanup = () => {
      prev();
      t.cleanup();
    };
    const s = store();
    mkdirSync(s.root, { recursive: true });
    const elsewhere = join(t.dir, 'elsewhere');
    mkdirSync(join(elsewhere, 'r'), { recursive: true });
    symlinkSync(elsewhere, join(s.root, 'linked'));
    expect(() => s.path('linked')).toThrow(StoreError);
    expect(() => s.path('linked')).toThrow(/is a symbolic link to .*elsewhere, outside the runs root/);
    expect(() => s.path('linked', 'r')).toThrow(StoreError);
    expect(() => s.path('linked', 'new-run')).toThrow(StoreError); // not there yet: the link alone decides
    expect(() => s.createRun('linked', 'new-run', config)).toThrow(StoreError);
    expect(readdirSync(elsewhere)).toEqual(['r']); // nothing was written through the link
    expect(() => s.getRun('linked/r')).toThrow(StoreError);
    expect(s.getExperiment('plain')).toBeUndefined();
    // a run folder that is a link out of a real experiment folder
    s.createRun('real', 'ok', config);
    symlinkSync(join(elsewhere, 'r'), join(s.root, 'real', 'escape'));
    expect(() => s.path('real', 'escape')).toThrow(/outside the runs root/);
    expect(s.listRuns('real').map((r) => r.run)).toEqual(['ok']);
    // a dangling link could be pointed anywhere later
    symlinkSync(join(t.dir, 'nothing-here'), join(s.root, 'dangling'));
    expect(() => s.path('dangling', 'r')).toThrow(/symbolic link to nothing/);
    // a link that stays inside the root is only an alias
    symlinkSync(join(s.root, 'real'), join(s.root, 'alias'));
    expect(s.path('alias', 'ok')).toBe(join(s.root, 'alias', 'ok'));
    // the root itself may be a link (a runs root on a bigger disk)
    symlinkSync(s.root, join(t.dir, 'root-link'));
    const viaLink = new RunStore(join(t.dir, 'root-link'));
    expect(viaLink.getRun('real/ok')?.state).toBe('queued');
    expect(() => viaLink.path('linked')).toThrow(StoreError);
  });
});

describe('a run that cannot be shown says why', () => {
  it('gone when its directory does not exist, unreadable when it is not a run directory, else nothing', () => {
    const s = store();
    const info = s.createRun('e', 'r', config);
    expect(s.problem('e/r')).toBeUndefined();
    expect(s.problem('e/nope')).toEqual({ reason: 'gone', message: expect.stringMatching(/^e\/nope was deleted: .* does not exist$/) });
    mkdirSync(join(s.root, 'e', 'empty'));
    expect(s.problem('e/empty')).toEqual({ reason: 'unreadable', message: expect.stringMatching(/holds no status\.json, run\.json or config\.json/) });
    rmSync(info.dir, { recursive: true });
    writeFileSync(info.dir, 'a file where the run directory was');
    expect(s.problem('e/r')).toEqual({ reason: 'unreadable', message: expect.stringMatching(/ENOTDIR/) });
  });

  it('deleteRun removes the directory and the experiment entry', () => {
    const s = store();
    s.createRun('e', 'a', config);
    s.createRun('e', 'b', config);
    s.deleteRun('e/a');
    expect(existsSync(join(s.root, 'e', 'a'))).toBe(false);
    expect(s.getExperiment('e')?.runs).toEqual(['b']);
    expect(s.problem('e/a')?.reason).toBe('gone');
  });
});

describe('readTail', () => {
  it('returns the last whole lines of a file, and "" for a missing file', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const p = join(t.dir, 'worker.log');
    writeFileSync(p, Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n\n');
    expect(readTail(p, 3)).toBe('line 97\nline 98\nline 99');
    expect(readTail(p, 5, 20).split('\n').every((l) => /^line \d+$/.test(l))).toBe(true);
    expect(readTail(join(t.dir, 'nope'))).toBe('');
    rmSync(p);
    expect(existsSync(p)).toBe(false);
  });
});
