// Damaged metadata (issue 14 item 5): status.json, run.json and experiment.json are checked against
// their schemas on read. A run whose status.json or run.json is unreadable, not JSON or invalid is listed
// as `damaged` with the reason (never as queued); a damaged experiment.json lists the experiment with
// defaults; nothing of it crashes a listing.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../../src/core/config';
import { metadataProblems, readMetadata } from '../../../src/core/metadata';
import { canResume, isTerminal } from '../../../src/core/runState';
import { RunStore } from '../../../src/core/runStore';
import { tempDir } from './helpers';

const config: RunConfig = { name: 'tiny', task: { kind: 'synthetic-lowrank' }, adapter: { rank: 2 }, method: { init: 'loi', optimizer: 'riemannion' }, train: { steps: 10 } };

let cleanup = () => {};
afterEach(() => cleanup());
function store(): RunStore {
  const t = tempDir();
  cleanup = t.cleanup;
  return new RunStore(join(t.dir, 'runs'));
}

const summary = { steps: 10, final_loss_smoothed: 0.5, best_loss_smoothed: 0.4, best_eval: null, train_wall_s: 1, peak_memory_bytes: null, final_eval: null };

describe('status.json and run.json are checked on read', () => {
  it('a status.json that is not JSON makes the run damaged, not queued', () => {
    const s = store();
    const info = s.createRun('e', 'r', config);
    writeFileSync(join(info.dir, 'status.json'), '{"version": 1, "state": "runn');
    const got = s.getRun('e/r')!;
    expect(got.state).toBe('damaged');
    expect(got.damaged).toMatch(/^status\.json is not valid JSON \(/);
    expect(got.last_error).toMatchObject({ kind: 'damaged', message: got.damaged });
    expect(s.readStatus('e/r')).toBeUndefined();
  });

  it('a schema-invalid status.json names the field and what is allowed', () => {
    const s = store();
    const info = s.createRun('e', 'r', config);
    writeFileSync(join(info.dir, 'status.json'), JSON.stringify({ version: 1, state: 'bogus', updated_at: 1 }));
    expect(s.getRun('e/r')?.damaged).toMatch(/^status\.json: \/state: "bogus" is not allowed; allowed values: "queued", "running"/);
    writeFileSync(join(info.dir, 'status.json'), JSON.stringify({ version: 1, state: 'running', updated_at: 1, pid: 'x' }));
    expect(s.getRun('e/r')?.damaged).toMatch(/^status\.json: \/pid: "x" must be integer,null/);
    writeFileSync(join(info.dir, 'status.json'), '[]');
    expect(s.getRun('e/r')).toMatchObject({ state: 'damaged', damaged: expect.stringMatching(/^status\.json: \/: \[\] must be object/) });
  });

  it('a status.json that is a directory is damaged (EISDIR), not an exception', () => {
    const s = store();
    const info = s.createRun('e', 'r', config);
    rmSync(join(info.dir, 'status.json'));
    mkdirSync(join(info.dir, 'status.json'));
    expect(s.getRun('e/r')).toMatchObject({ state: 'damaged', damaged: 'status.json cannot be read (EISDIR)' });
  });

  it('a non-numeric summary.final_loss_smoothed in run.json makes the run damaged and does not crash listing', () => {
    const s = store();
    s.createRun('e', 'ok', config);
    const bad = s.createRun('e', 'bad', config);
    s.writeStatus('e/bad', { version: 1, state: 'completed', updated_at: 5, step: 10, exit_code: 0 });
    s.updateCard('e/bad', (c) => (c.summary = { ...summary, final_loss_smoothed: 'not a number' as unknown as number }));
    const runs = s.listAll();
    expect(runs.map((r) => [r.run, r.state])).toEqual([['ok', 'queued'], ['bad', 'damaged']]);
    const b = runs[1]!;
    expect(b.damaged).toBe('run.json: /summary/final_loss_smoothed: "not a number" must be number,null');
    expect(b.summary).toBeNull(); // nothing of the damaged card is used
    expect(b.label).toBe('tiny'); // the label comes from config.json instead
    expect(bad.dir).toBe(b.dir);
  });

  it('a summary under the old names is checked as one (a non-numeric final_loss is damaged); a new one missing a field too', () => {
    const s = store();
    s.createRun('e', 'old', config);
    s.updateCard('e/old', (c) => (c.summary = { steps: 10, final_loss: 'low' as unknown as number }));
    expect(s.getRun('e/old')?.damaged).toBe('run.json: /summary/final_loss: "low" must be number,null');
    s.updateCard('e/old', (c) => (c.summary = { steps: 10, final_loss: 0.5, best_loss: 0.4, wall_s: 1 }));
    expect(s.getRun('e/old')).toMatchObject({ damaged: null, summary: null, summary_stale: true });
    const { train_wall_s: _, ...partial } = summary;
    s.updateCard('e/old', (c) => (c.summary = partial as typeof summary));
    expect(s.getRun('e/old')?.damaged).toBe('run.json: /summary/train_wall_s: is required');
  });

  it('both files damaged: both reasons; a huge value is cut, control characters are shown escaped', () => {
    const s = store();
    const info = s.createRun('e', 'r', config);
    writeFileSync(join(info.dir, 'status.json'), JSON.stringify({ version: 1, state: `\x1b[31m${'x'.repeat(100_000)}`, updated_at: 1 }));
    writeFileSync(join(info.dir, 'run.json'), JSON.stringify({ version: 1, label: 7, method: 'm', task: 't', steps: 1, created_at: 0 }));
    const d = s.getRun('e/r')!.damaged!;
    expect(d).toMatch(/^status\.json: \/state: "\\u001b\[31mxxx.*…/); // JSON's own escape of ESC, cut
    expect(d).toMatch(/; run\.json: \/label: 7 must be string$/);
    expect(d.length).toBeLessThan(600);
    expect(d).not.toContain('\x1b');
  });

  it('a damaged run is terminal for the queue and can neither be resumed nor started', () => {
    expect(isTerminal('damaged')).toBe(true);
    expect(canResume('damaged')).toBe(false);
  });

  it('readMetadata: absent, ok, damaged', () => {
    const t = tempDir();
    try {
      const p = join(t.dir, 'run.json');
      expect(readMetadata(p, 'run.json')).toEqual({ kind: 'absent' });
      const card = { version: 1, label: 'a', method: 'm', task: 't', steps: 3, created_at: 1, summary, future_field: true };
      writeFileSync(p, JSON.stringify(card));
      expect(readMetadata(p, 'run.json')).toEqual({ kind: 'ok', doc: card }); // unknown keys are allowed
      expect(metadataProblems('run.json', { ...card, summary: { ...summary, best_eval: { name: 'acc', value: 'high', step: 1 } } })).toEqual([
        '/summary/best_eval/value: "high" must be number',
      ]);
      expect(metadataProblems('run.json', { ...card, pgid: -1 })).toEqual(['/pgid: -1 must be >= 0']);
    } finally {
      t.cleanup();
    }
  });
});

describe('experiment.json is checked on read', () => {
  it('`{}` lists the experiment with defaults and the reason; its runs are still listed', () => {
    const s = store();
    s.createRun('e', 'r1', config);
    s.createRun('e', 'r2', config);
    writeFileSync(join(s.root, 'e', 'experiment.json'), '{}');
    const [exp] = s.listExperiments();
    expect(exp).toMatchObject({ id: 'e', name: 'e', kind: 'single', runs: [] });
    expect(exp!.damaged).toMatch(/^experiment\.json: \/created_at: is required; \/kind: is required; \/name: is required \(and 2 more\)$/);
    expect(s.listRuns('e').map((r) => r.run)).toEqual(['r1', 'r2']);
    expect(s.listAll()).toHaveLength(2);
  });

  it('invalid kinds, run lists and baselines are damaged, not crashes; not JSON too', () => {
    const s = store();
    s.createRun('e', 'r', config);
    const write = (doc: unknown) => writeFileSync(join(s.root, 'e', 'experiment.json'), typeof doc === 'string' ? doc : JSON.stringify(doc));
    const good = { version: 1, id: 'e', name: 'E', kind: 'compare', created_at: 1, runs: ['r'], baseline: 'r' };
    write(good);
    expect(s.getExperiment('e')).toMatchObject({ name: 'E', kind: 'compare', damaged: null });
    write({ ...good, runs: 'r' });
    expect(s.getExperiment('e')?.damaged).toBe('experiment.json: /runs: "r" must be array');
    write({ ...good, runs: ['../../etc'] });
    expect(s.getExperiment('e')?.damaged).toMatch(/^experiment\.json: \/runs\/0: "\.\.\/\.\.\/etc" is not valid: expected 1-128 letters/);
    write({ ...good, kind: 'weird' });
    expect(s.getExperiment('e')?.damaged).toMatch(/\/kind: "weird" is not allowed; allowed values: "single", "compare"/);
    write('not json');
    expect(s.getExperiment('e')?.damaged).toMatch(/^experiment\.json is not valid JSON/);
    expect(s.listRuns('e').map((r) => r.state)).toEqual(['queued']);
  });

  it('updating a damaged experiment.json replaces it with sound defaults (the flag is not written)', () => {
    const s = store();
    s.createRun('e', 'r', config);
    writeFileSync(join(s.root, 'e', 'experiment.json'), '{}');
    s.createRun('e', 'r2', config);
    expect(s.getExperiment('e')).toMatchObject({ damaged: null, runs: ['r2'] });
  });
});
