// Worker events (docs/architecture.md "Worker events", schema/worker-event.schema.json): the parser and the tailer.
//
// The worker appends one JSON object per line to <run-dir>/events.jsonl and flushes each line. A reader
// may see the file at any moment, so the last line can be incomplete (or cut inside a multi-byte UTF-8
// character); the tailer keeps those bytes and only parses complete lines. A line that is not valid JSON
// or does not match the schema is reported to the caller and skipped: a bad line never stops a run view.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Checkpoint, Error as ErrorFields, Eval, Finished, Init, Log, Metric, Started } from './generated/worker-event';
import { formatErrors, validate } from './schemas';

export const PROTOCOL_VERSION = 1;

interface Base {
  version: 1;
  /** Seconds since the epoch. */
  time: number;
  rank?: number;
}
type Fields<T> = Omit<T, 'type' | 'version' | 'time' | 'rank'>;

export type StartedEvent = Base & Fields<Started> & { type: 'started' };
export type InitEvent = Base & Fields<Init> & { type: 'init' };
export type MetricEvent = Base & Fields<Metric> & { type: 'metric' };
export type EvalEvent = Base & Fields<Eval> & { type: 'eval' };
export type CheckpointEvent = Base & Fields<Checkpoint> & { type: 'checkpoint' };
export type LogEvent = Base & Fields<Log> & { type: 'log' };
export type ErrorEvent = Base & Fields<ErrorFields> & { type: 'error' };
export type FinishedEvent = Base & Fields<Finished> & { type: 'finished' };

/** One validated worker event, discriminated by `type`. */
export type WorkerEvent =
  | StartedEvent
  | InitEvent
  | MetricEvent
  | EvalEvent
  | CheckpointEvent
  | LogEvent
  | ErrorEvent
  | FinishedEvent;

/**
 * The raw numbers of a `finished` event's summary (this worker process, never smoothed), read under the
 * old names too: events written before the rename have final_loss, best_loss and wall_s.
 */
export function rawSummary(e: FinishedEvent): { last_loss: number | null; min_loss: number | null; process_wall_s: number | null } {
  const s = e.summary;
  return {
    last_loss: s.last_loss ?? s.final_loss ?? null,
    min_loss: s.min_loss ?? s.best_loss ?? null,
    process_wall_s: s.process_wall_s ?? s.wall_s ?? null,
  };
}

export type ParseResult = { ok: true; event: WorkerEvent } | { ok: false; reason: string };

const MAX_LINE_CHARS = 1 << 20;

/** Parses one line of events.jsonl; never throws. Blank lines are `ok: false` with reason "blank line". */
export function parseEventLine(line: string): ParseResult {
  const text = line.trim();
  if (!text) return { ok: false, reason: 'blank line' };
  if (text.length > MAX_LINE_CHARS) return { ok: false, reason: `line longer than ${MAX_LINE_CHARS} characters` };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
  const errors = validate('event', data);
  if (errors.length) return { ok: false, reason: `not a valid event: ${formatErrors(errors).replace(/\n/g, '; ')}` };
  return { ok: true, event: data as WorkerEvent };
}

/** A line that was skipped, with where it was (1-based line number of the file) and why. */
export interface SkippedLine {
  line: number;
  reason: string;
  text: string;
}

export interface ParsedChunk {
  events: WorkerEvent[];
  skipped: SkippedLine[];
}

/**
 * Splits a byte stream into complete lines and parses them. Feed it chunks in file order; bytes after the
 * last newline wait for the next chunk (a line being written, or a UTF-8 character cut in two).
 */
export class EventLineParser {
  private pending: Buffer = Buffer.alloc(0);
  /** Lines completed so far (the line number of the next line is `lineCount + 1`). */
  lineCount = 0;

  push(chunk: Buffer): ParsedChunk {
    const out: ParsedChunk = { events: [], skipped: [] };
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      this.take(buf.subarray(start, nl), out);
      start = nl + 1;
    }
    buf = buf.subarray(start);
    // Keep a copy: `chunk` may be a reused read buffer.
    this.pending = Buffer.from(buf);
    if (this.pending.length > MAX_LINE_CHARS * 4) {
      // A runaway line without newline: drop it rather than grow without bound.
      this.lineCount += 1;
      out.skipped.push({ line: this.lineCount, reason: 'line too long without a newline', text: this.pending.subarray(0, 200).toString('utf8') });
      this.pending = Buffer.alloc(0);
    }
    return out;
  }

  /** Bytes held back waiting for their newline. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /**
   * Parses the held-back partial line as if it were complete: used once a worker has exited, when no more
   * bytes will come (a worker killed mid-write leaves a cut line, which is then reported as skipped).
   */
  flush(): ParsedChunk {
    const out: ParsedChunk = { events: [], skipped: [] };
    if (this.pending.length) {
      this.take(this.pending, out);
      this.pending = Buffer.alloc(0);
    }
    return out;
  }

  private take(bytes: Buffer, out: ParsedChunk): void {
    this.lineCount += 1;
    const text = bytes.toString('utf8');
    if (!text.trim()) return;
    const r = parseEventLine(text);
    if (r.ok) out.events.push(r.event);
    else out.skipped.push({ line: this.lineCount, reason: r.reason, text: text.length > 200 ? `${text.slice(0, 200)}…` : text });
  }
}

/**
 * Reads events.jsonl incrementally by byte offset. `read()` returns what was appended since the last call
 * (complete lines only). The file may not exist yet (a queued run): that reads as nothing; a file that
 * cannot be read throws (the caller says so instead of showing an empty run). A file that got
 * shorter (replaced) is read again from the start.
 */
export class EventTailer {
  private parser = new EventLineParser();
  /** Byte offset up to which the file has been read. */
  offset = 0;

  constructor(readonly path: string, private readonly chunkSize = 1 << 20) {}

  read(): ParsedChunk {
    const out: ParsedChunk = { events: [], skipped: [] };
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      // Not written yet (a queued run) reads as nothing; any other error (no permission, …) is a real one.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) {
        this.offset = 0;
        this.parser = new EventLineParser();
      }
      const buf = Buffer.allocUnsafe(Math.min(this.chunkSize, Math.max(1, size - this.offset)));
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        const r = this.parser.push(buf.subarray(0, n));
        out.events.push(...r.events);
        out.skipped.push(...r.skipped);
      }
    } finally {
      closeSync(fd);
    }
    return out;
  }

  /** After the writer is gone: read the rest and parse a trailing line that has no newline. */
  finish(): ParsedChunk {
    const out = this.read();
    const r = this.parser.flush();
    out.events.push(...r.events);
    out.skipped.push(...r.skipped);
    return out;
  }

  get pendingBytes(): number {
    return this.parser.pendingBytes;
  }
}

/** Reads a whole events file (complete and trailing lines). */
export function readAllEvents(path: string): ParsedChunk {
  return new EventTailer(path).finish();
}
