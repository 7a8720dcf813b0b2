// One output channel per run ("RiemannLoRA: <run>"): the worker's log events and stderr (worker.log),
// filled from disk when first shown and followed live from the engine's deltas afterwards.
import { readFileSync } from 'node:fs';
import * as vscode from 'vscode';
import type { Engine, MetricsDelta } from '../core/engine';
import { rawSummary, type WorkerEvent } from '../core/events';
import type { RunKey } from '../core/runStore';

function eventLine(e: WorkerEvent): string | undefined {
  const t = new Date(e.time * 1000).toISOString().slice(11, 19);
  switch (e.type) {
    case 'started':
      return `${t} started on ${e.device}${e.device_name ? ` (${e.device_name})` : ''}, ${e.dtype}, ${e.trainable_params} trainable of ${e.total_params} parameters, ${e.method}`;
    case 'init':
      return `${t} init ${e.method} in ${e.seconds.toFixed(2)} s`;
    case 'checkpoint':
      return `${t} checkpoint at step ${e.step}: ${e.path}`;
    case 'log':
      return `${t} [${e.level}] ${e.message}`;
    case 'error':
      return `${t} [error] ${e.kind}: ${e.message}${e.hint ? `\n         hint: ${e.hint}` : ''}`;
    case 'finished': {
      const last = rawSummary(e).last_loss;
      return `${t} finished: ${e.status}${last !== null ? `, last loss ${last} (raw)` : ''}`;
    }
    default:
      return undefined;
  }
}

export class RunLogs implements vscode.Disposable {
  private channels = new Map<RunKey, vscode.OutputChannel>();
  private readonly listener = (d: MetricsDelta) => {
    const ch = this.channels.get(d.key);
    if (!ch) return;
    for (const e of d.events) {
      const line = eventLine(e);
      if (line) ch.appendLine(line);
    }
  };

  constructor(private readonly engine: () => Engine | undefined) {}

  attach(engine: Engine): void {
    engine.on('metrics-appended', this.listener);
  }

  show(key: RunKey): void {
    const engine = this.engine();
    if (!engine) return;
    let ch = this.channels.get(key);
    if (!ch) {
      const info = engine.get(key);
      ch = vscode.window.createOutputChannel(`RiemannLoRA: ${info?.label ?? key} (${key})`);
      this.channels.set(key, ch);
      const snap = engine.snapshot(key);
      ch.appendLine(`run ${key} — ${snap.info.method} — ${snap.info.state}`);
      ch.appendLine(`directory: ${snap.info.dir}`);
      ch.appendLine('── events ──');
      for (const e of snap.events) {
        const line = eventLine(e);
        if (line) ch.appendLine(line);
      }
      let log = '';
      try {
        log = readFileSync(engine.store.logPath(key), 'utf8');
      } catch {
        /* no log yet */
      }
      ch.appendLine('── worker.log ──');
      ch.appendLine(log.length > 200_000 ? `…${log.slice(-200_000)}` : log || '(empty)');
      ch.appendLine('── live ──');
    }
    ch.show(true);
  }

  dispose(): void {
    this.engine()?.off('metrics-appended', this.listener);
    for (const ch of this.channels.values()) ch.dispose();
    this.channels.clear();
  }
}
