// The event parser and tailer: valid lines parse, garbage and truncated lines are skipped (never thrown),
// and any split of a byte stream into chunks gives exactly the events of the whole stream.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventLineParser, EventTailer, parseEventLine, rawSummary, readAllEvents, type WorkerEvent } from '../../../src/core/events';
import { metricLine, randInt, rng, tempDir } from './helpers';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'schema', 'fixtures', 'event');
const validFixtures = readdirSync(join(FIXTURES, 'valid')).map((n) => JSON.stringify((JSON.parse(readFileSync(join(FIXTURES, 'valid', n), 'utf8')) as { data: unknown }).data));
const invalidFixtures = readdirSync(join(FIXTURES, 'invalid')).map((n) => JSON.stringify((JSON.parse(readFileSync(join(FIXTURES, 'invalid', n), 'utf8')) as { data: unknown }).data));

/** A stream of valid events with a non-ASCII log message (multi-byte UTF-8 to cut in half). */
function validStream(n: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 7 === 3) lines.push(JSON.stringify({ type: 'log', version: 1, time: 1.5e9 + i, level: 'info', message: `étape ${i} — ∇ loss 🚀` }));
    else lines.push(metricLine(i, i % 11 === 5 ? null : 1 / (i + 1)));
  }
  return lines;
}

function garbage(r: () => number): string {
  const kinds = [
    () => '',
    () => '{',
    () => 'null',
    () => '[1,2,3]',
    () => '{"type":"metric"}',
    () => '{"type":"metric","version":2,"time":1,"step":1,"split":"train","loss":1}',
    () => '{"type":"nope","version":1,"time":1}',
    () => metricLine(1, 1).slice(0, randInt(r, 1, 40)),
    () => String.fromCharCode(...Array.from({ length: randInt(r, 1, 60) }, () => randInt(r, 1, 0xd7ff))).replace(/\n/g, ' '),
    () => invalidFixtures[randInt(r, 0, invalidFixtures.length - 1)]!,
    () => '\u0000\u0001\u0002 binary',
    () => '{"type":"metric","version":1,"time":1,"step":-1,"split":"train","loss":1}',
  ];
  return kinds[randInt(r, 0, kinds.length - 1)]!();
}

describe('parseEventLine', () => {
  it('accepts every valid fixture and types it by `type`', () => {
    expect(validFixtures.length).toBeGreaterThanOrEqual(5);
    for (const line of validFixtures) {
      const r = parseEventLine(line);
      expect(r.ok, line).toBe(true);
    }
  });

  it('rejects every invalid fixture with a reason, without throwing', () => {
    for (const line of invalidFixtures) {
      const r = parseEventLine(line);
      expect(r.ok, line).toBe(false);
      if (!r.ok) expect(r.reason.length).toBeGreaterThan(5);
    }
  });

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`never throws on random garbage and never accepts it (seed ${seed})`, () => {
      const r = rng(seed);
      for (let i = 0; i < 300; i++) {
        const g = garbage(r);
        const res = parseEventLine(g);
        expect(res.ok, g).toBe(false);
      }
    });
  }

  it('keeps a null loss (NaN on the worker side)', () => {
    const r = parseEventLine(metricLine(3, null));
    expect(r.ok && r.event.type === 'metric' && r.event.loss === null).toBe(true);
  });

  it("rawSummary reads the finished summary's raw numbers, under the old names in events written before the rename", () => {
    const finished = (summary: object) => {
      const r = parseEventLine(JSON.stringify({ type: 'finished', version: 1, time: 1, status: 'completed', summary }));
      if (!r.ok || r.event.type !== 'finished') throw new Error(r.ok ? 'not finished' : r.reason);
      return r.event;
    };
    expect(rawSummary(finished({ steps: 3, last_loss: 0.5, min_loss: 0.25, process_wall_s: 2 }))).toEqual({ last_loss: 0.5, min_loss: 0.25, process_wall_s: 2 });
    expect(rawSummary(finished({ steps: 3, final_loss: 0.5, best_loss: 0.25, wall_s: 2 }))).toEqual({ last_loss: 0.5, min_loss: 0.25, process_wall_s: 2 });
    expect(rawSummary(finished({}))).toEqual({ last_loss: null, min_loss: null, process_wall_s: null });
  });
});

describe('EventLineParser', () => {
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    it(`gives the same events for any chunking of the stream, garbage skipped (seed ${seed})`, () => {
      const r = rng(seed);
      const valid = validStream(60);
      const lines: string[] = [];
      const expected: string[] = [];
      for (const v of valid) {
        if (r() < 0.3) lines.push(garbage(r));
        lines.push(v);
        expected.push(v);
      }
      const bytes = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
      const parser = new EventLineParser();
      const got: WorkerEvent[] = [];
      let skipped = 0;
      for (let at = 0; at < bytes.length; ) {
        const n = randInt(r, 1, 97); // cuts anywhere, also inside multi-byte characters
        const out = parser.push(bytes.subarray(at, at + n));
        got.push(...out.events);
        skipped += out.skipped.length;
        at += n;
      }
      expect(parser.pendingBytes).toBe(0);
      expect(got.map((e) => JSON.stringify(e))).toEqual(expected);
      expect(skipped).toBe(lines.length - expected.length - lines.filter((l) => !l.trim()).length);
    });
  }

  it('holds back a truncated last line until its newline arrives', () => {
    const parser = new EventLineParser();
    const line = metricLine(7, 0.5);
    const first = parser.push(Buffer.from(`${metricLine(6, 0.6)}\n${line.slice(0, 20)}`));
    expect(first.events.map((e) => (e as { step: number }).step)).toEqual([6]);
    expect(first.skipped).toEqual([]);
    const second = parser.push(Buffer.from(`${line.slice(20)}\n`));
    expect(second.events.map((e) => (e as { step: number }).step)).toEqual([7]);
  });

  it('flush() reports a line cut for good (a killed worker) as skipped with its line number', () => {
    const parser = new EventLineParser();
    parser.push(Buffer.from(`${metricLine(1, 1)}\n${metricLine(2, 1).slice(0, 30)}`));
    const out = parser.flush();
    expect(out.events).toEqual([]);
    expect(out.skipped).toHaveLength(1);
    expect(out.skipped[0]!.line).toBe(2);
  });
});

describe('EventTailer', () => {
  let cleanup = () => {};
  afterEach(() => cleanup());

  it('reads appended bytes incrementally by offset, including a line completed later', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'events.jsonl');
    const tailer = new EventTailer(path, 16); // tiny chunks: many reads per call
    expect(tailer.read().events).toEqual([]); // no file yet: nothing, no error
    writeFileSync(path, `${metricLine(1, 1)}\n${metricLine(2, 0.9).slice(0, 25)}`);
    expect(tailer.read().events.map((e) => (e as { step: number }).step)).toEqual([1]);
    appendFileSync(path, `${metricLine(2, 0.9).slice(25)}\nnot json\n${metricLine(3, 0.8)}\n`);
    const out = tailer.read();
    expect(out.events.map((e) => (e as { step: number }).step)).toEqual([2, 3]);
    expect(out.skipped.map((s) => s.line)).toEqual([3]);
    expect(tailer.read().events).toEqual([]);
    expect(tailer.offset).toBe(readFileSync(path).length);
  });

  it('starts over when the file is replaced by a shorter one', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'events.jsonl');
    const tailer = new EventTailer(path);
    writeFileSync(path, `${metricLine(1, 1)}\n${metricLine(2, 1)}\n`);
    expect(tailer.read().events).toHaveLength(2);
    writeFileSync(path, `${metricLine(9, 1)}\n`);
    expect(tailer.read().events.map((e) => (e as { step: number }).step)).toEqual([9]);
  });

  it('readAllEvents parses a whole file, with a last line that has no newline', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'events.jsonl');
    writeFileSync(path, `${metricLine(1, 1)}\n${metricLine(2, 1)}`);
    expect(readAllEvents(path).events).toHaveLength(2);
  });
});
