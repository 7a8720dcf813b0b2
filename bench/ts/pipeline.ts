// Extension pipeline benchmarks (issue 7, item 5), bundled by bench/ts/build.mjs:
//  1. ingest: events/s of worker `metric` lines through the engine's parser (EventLineParser: line split,
//     JSON parse, schema check), the run store's series (RunSeries.add) and the host's message batching
//     (SentSeries.delta -> SeriesChunk messages, one per poll), fed in poll-sized byte chunks; and the same
//     through EventTailer reading a real events.jsonl from disk (what a poll does).
//  2. open a comparison: 20 runs with one million events in total on disk; time of what the comparison panel
//     does on open: engine.snapshot(run) for every run, SentSeries.snapshot, engine.comparison(experiment),
//     and the JSON serialization of the snapshot message.
// Writes JSON to stdout (the caller stores it).
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/core/engine';
import { EventLineParser, EventTailer } from '../../src/core/events';
import { RunSeries } from '../../src/core/series';
import { SentSeries } from '../../src/panels/panelData';

const args = process.argv.slice(2);
const quick = args.includes('--quick');

function metricLine(step: number, t0: number): string {
  const loss = 2 * Math.exp(-step / 5000) + 0.05 * Math.sin(step);
  return JSON.stringify({
    type: 'metric',
    version: 1,
    time: t0 + step * 0.01,
    step,
    split: 'train',
    loss,
    lr: 1e-4,
    grad_norm: 0.5 + 0.1 * Math.cos(step),
    tokens_per_s: 12000 + (step % 100),
    memory_bytes: 123456789,
    elapsed: step * 0.01,
  });
}

function evalLine(step: number, t0: number): string {
  return JSON.stringify({ type: 'eval', version: 1, time: t0 + step * 0.01, step, metrics: { loss: 1 / (1 + step / 1000), accuracy: Math.min(1, step / 1e5) } });
}

/** An events.jsonl body: started, init, `n` events (metrics with an eval every 100 steps), finished. */
function eventsText(n: number, t0: number): string {
  const lines = [
    JSON.stringify({ type: 'started', version: 1, time: t0, device: 'cpu', dtype: 'fp32', trainable_params: 1000, total_params: 100000, task: 'synthetic-lowrank', method: 'riemannion+loi', steps: n, start_step: 0, pid: 1 }),
    JSON.stringify({ type: 'init', version: 1, time: t0, method: 'riemannion+loi', seconds: 0.5, details: { lr: 0.01 } }),
  ];
  let step = 0;
  while (lines.length < n - 1) {
    step += 1;
    lines.push(metricLine(step, t0));
    if (step % 100 === 0 && lines.length < n - 1) lines.push(evalLine(step, t0));
  }
  lines.push(JSON.stringify({ type: 'finished', version: 1, time: t0 + step * 0.01, status: 'completed', summary: { steps: step, last_loss: 0.1, process_wall_s: step * 0.01 } }));
  return `${lines.join('\n')}\n`;
}

function ingest(n: number, pollEvents: number): Record<string, number> {
  const text = Buffer.from(eventsText(n, 1.7e9));
  const pollBytes = Math.max(1, Math.floor((text.length / n) * pollEvents));
  const best: number[] = [];
  let parseOnly = Infinity;
  let messages = 0;
  for (let rep = 0; rep < (quick ? 2 : 3); rep++) {
    // parser alone
    let t = performance.now();
    let parsed = 0;
    const p0 = new EventLineParser();
    for (let off = 0; off < text.length; off += pollBytes) parsed += p0.push(text.subarray(off, off + pollBytes)).events.length;
    parsed += p0.flush().events.length;
    parseOnly = Math.min(parseOnly, performance.now() - t);
    if (parsed !== n) throw new Error(`ingest: parsed ${parsed} events, expected ${n}`);
    // parser + series + message batching
    t = performance.now();
    const parser = new EventLineParser();
    const series = new RunSeries();
    const sent = new SentSeries();
    let sentPoints = 0;
    messages = 0;
    for (let off = 0; off < text.length; off += pollBytes) {
      const r = parser.push(text.subarray(off, off + pollBytes));
      const d = series.add(r.events);
      const chunks = sent.delta('exp/run', d.train, d.eval);
      if (chunks.length) messages += 1;
      for (const c of chunks) sentPoints += c.step.length;
    }
    series.add(parser.flush().events);
    best.push(performance.now() - t);
    if (sentPoints === 0) throw new Error('ingest: no points reached the message batches');
  }
  let jsonOnly = Infinity;
  for (let rep = 0; rep < 2; rep++) {
    const t = performance.now();
    for (const line of text.toString('utf8').split('\n')) if (line) JSON.parse(line);
    jsonOnly = Math.min(jsonOnly, performance.now() - t);
  }
  const ms = Math.min(...best);
  return { json_parse_only_events_per_s: n / (jsonOnly / 1e3), events: n, poll_events: pollEvents, bytes: text.length, parse_ms: parseOnly, parse_events_per_s: n / (parseOnly / 1e3), pipeline_ms: ms, events_per_s: n / (ms / 1e3), messages };
}

function tailFromDisk(n: number): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'rlora-bench-tail-'));
  try {
    const path = join(dir, 'events.jsonl');
    const text = eventsText(n, 1.7e9);
    writeFileSync(path, '');
    const tailer = new EventTailer(path);
    const series = new RunSeries();
    const sent = new SentSeries();
    // the worker appends, the engine polls: 100 appends of n/100 events each, one poll after each
    const lines = text.split('\n');
    const per = Math.ceil(lines.length / 100);
    let busy = 0;
    let seen = 0;
    for (let i = 0; i < lines.length; i += per) {
      appendFileSync(path, lines.slice(i, i + per).filter(Boolean).map((l) => `${l}\n`).join(''));
      const t = performance.now();
      const r = tailer.read();
      const d = series.add(r.events);
      sent.delta('exp/run', d.train, d.eval);
      busy += performance.now() - t;
      seen += r.events.length;
    }
    if (seen !== n) throw new Error(`tail: read ${seen} events, expected ${n}`);
    return { events: n, polls: 100, ms: busy, events_per_s: n / (busy / 1e3) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openComparison(runs: number, totalEvents: number): Record<string, number> {
  const root = mkdtempSync(join(tmpdir(), 'rlora-bench-cmp-'));
  try {
    const engine = new Engine({ root, python: '/nonexistent/python', nativeWorkerDir: '/nonexistent', launcher: 'python', nproc: 1, maxConcurrent: 1, pollIntervalMs: 1e9 });
    const base = { task: { kind: 'synthetic-lowrank' }, adapter: { rank: 4 }, method: { init: 'loi', optimizer: 'riemannion' }, train: { steps: Math.ceil(totalEvents / runs) } };
    const { experiment, runs: infos } = engine.createComparison(base as never, { start: false, methods: undefined });
    // more runs than the default methods: add plain runs to the same experiment
    const keys = infos.map((r) => r.key);
    for (let i = keys.length; i < runs; i++) keys.push(engine.createRun(base as never, { experiment: experiment.id, run: `extra-${i}`, start: false }).key);
    const per = Math.floor(totalEvents / runs);
    for (const [i, key] of keys.entries()) {
      const info = engine.get(key)!;
      writeFileSync(join(info.dir, 'events.jsonl'), eventsText(per, 1.7e9 + i));
    }
    const phases = { snapshot_ms: Infinity, chunks_ms: Infinity, comparison_ms: Infinity, serialize_ms: Infinity, open_ms: Infinity };
    let bytes = 0;
    let points = 0;
    for (let rep = 0; rep < (quick ? 1 : 3); rep++) {
      const sent = new SentSeries();
      const series = [];
      const snaps = [];
      let snapshot = 0;
      let chunks = 0;
      const t = performance.now();
      for (const key of keys) {
        const a = performance.now();
        const snap = engine.snapshot(key);
        const b = performance.now();
        snaps.push(snap.info);
        series.push(...sent.snapshot(key, snap.train, snap.eval));
        snapshot += b - a;
        chunks += performance.now() - b;
      }
      const c = performance.now();
      const table = engine.comparison(experiment.id);
      const d = performance.now();
      // the size of what postMessage carries (typed arrays written out as plain arrays)
      const msg = JSON.stringify({ type: 'snapshot', runs: snaps, series, table }, (_k, v) => (v instanceof Float64Array ? Array.from(v) : v));
      const e = performance.now();
      const take = (k: keyof typeof phases, v: number) => (phases[k] = Math.min(phases[k], v));
      take('snapshot_ms', snapshot);
      take('chunks_ms', chunks);
      take('comparison_ms', d - c);
      take('serialize_ms', e - d);
      take('open_ms', d - t); // host work before postMessage (serialization is the transport's)
      bytes = msg.length;
      points = series.reduce((s, c) => s + c.step.length, 0);
    }
    engine.dispose();
    return { runs: keys.length, events: per * keys.length, ...phases, message_json_bytes: bytes, points };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const n = quick ? 200_000 : 1_000_000;
const result = {
  benchmark: 'extension pipeline: ingest and comparison open',
  node: process.version,
  ingest: ingest(n, 1000),
  tail_from_disk: tailFromDisk(quick ? 100_000 : 500_000),
  open_comparison: openComparison(20, 1_000_000),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
