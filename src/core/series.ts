// A run's curves, folded from its worker events: train loss per step, eval metrics per step, and the
// facts the summaries need (segments of wall time, peak memory, the last error, the finished event).
//
// A resumed run restarts from its last checkpoint, which can be older than the last logged step: its
// `started` event carries `start_step`, and points after that step (logged before the stop, then trained
// again) are dropped so the curve stays a function of the step.
import type { ErrorEvent, FinishedEvent, StartedEvent, WorkerEvent } from './events';

export interface TrainPoint {
  step: number;
  /** null when the worker saw NaN or infinity. */
  loss: number | null;
  /** Seconds since the epoch. */
  time: number;
  lr?: number;
  grad_norm?: number | null;
  memory_bytes?: number;
  tokens_per_s?: number;
}

export interface EvalPoint {
  step: number;
  time: number;
  metrics: Record<string, number | null>;
}

export class RunSeries {
  train: TrainPoint[] = [];
  eval: EvalPoint[] = [];
  started?: StartedEvent;
  finished?: FinishedEvent;
  lastError?: ErrorEvent;
  /** Wall time of the finished segments plus the current one. */
  private segments: { start: number; last: number }[] = [];
  peakMemory: number | null = null;
  /** The learning rate the worker used (from the `init` event's details), when it said. */
  lr: number | null = null;
  /** Seconds spent in initialization (LOI, PiSSA's SVD...), which happens before `started`. */
  initSeconds = 0;
  eventCount = 0;

  /** Folds events in file order; returns the train and eval points that were appended by them. */
  add(events: readonly WorkerEvent[]): { train: TrainPoint[]; eval: EvalPoint[]; reset: boolean } {
    const appended = { train: [] as TrainPoint[], eval: [] as EvalPoint[], reset: false };
    for (const e of events) {
      this.eventCount += 1;
      const seg = this.segments[this.segments.length - 1];
      if (seg && e.type !== 'started' && e.time > seg.last) seg.last = e.time;
      switch (e.type) {
        case 'started': {
          this.started = e;
          this.finished = undefined;
          this.segments.push({ start: e.time, last: e.time });
          const from = e.start_step ?? 0;
          if (this.train.some((p) => p.step > from) || this.eval.some((p) => p.step > from)) {
            this.train = this.train.filter((p) => p.step <= from);
            this.eval = this.eval.filter((p) => p.step <= from);
            appended.reset = true;
          }
          break;
        }
        case 'metric': {
          if (e.memory_bytes !== undefined) this.peakMemory = Math.max(this.peakMemory ?? 0, e.memory_bytes);
          if (e.split === 'eval') {
            const p = this.evalAt(e.step, e.time, appended.eval);
            p.metrics.loss = e.loss;
            break;
          }
          const p: TrainPoint = { step: e.step, loss: e.loss, time: e.time };
          if (e.lr !== undefined) p.lr = e.lr;
          if (e.grad_norm !== undefined) p.grad_norm = e.grad_norm;
          if (e.memory_bytes !== undefined) p.memory_bytes = e.memory_bytes;
          if (e.tokens_per_s !== undefined) p.tokens_per_s = e.tokens_per_s;
          const last = this.train[this.train.length - 1];
          if (last && last.step >= p.step) {
            // Out of order (should not happen): keep the series sorted by step.
            this.train = this.train.filter((q) => q.step < p.step);
            appended.reset = true;
          }
          this.train.push(p);
          appended.train.push(p);
          break;
        }
        case 'eval': {
          const p = this.evalAt(e.step, e.time, appended.eval);
          Object.assign(p.metrics, e.metrics);
          break;
        }
        case 'init': {
          this.initSeconds += e.seconds;
          const lr = (e.details as { lr?: unknown } | undefined)?.lr;
          if (typeof lr === 'number') this.lr = lr;
          break;
        }
        case 'error':
          this.lastError = e;
          break;
        case 'finished':
          this.finished = e;
          if (e.summary.peak_memory_bytes !== undefined) this.peakMemory = Math.max(this.peakMemory ?? 0, e.summary.peak_memory_bytes);
          break;
        default:
          break;
      }
    }
    return appended;
  }

  private evalAt(step: number, time: number, appended: EvalPoint[]): EvalPoint {
    const last = this.eval[this.eval.length - 1];
    if (last && last.step === step) {
      if (!appended.includes(last)) appended.push(last);
      return last;
    }
    const p: EvalPoint = { step, time, metrics: {} };
    this.eval.push(p);
    appended.push(p);
    return p;
  }

  /**
   * Seconds of wall time: initialization plus training over all segments (a resumed run has several).
   * Python start-up and model loading are left out: they are the same for every method.
   */
  get trainWallSeconds(): number | null {
    if (!this.segments.length) return null;
    return this.initSeconds + this.segments.reduce((s, g) => s + (g.last - g.start), 0);
  }

  /** trainWallSeconds as it stood at `time` (seconds since the epoch): the time-to-result of an event. */
  wallSecondsAt(time: number): number | null {
    if (!this.segments.length) return null;
    let s = this.initSeconds;
    for (const g of this.segments) if (g.start < time) s += Math.min(g.last, time) - g.start;
    return s;
  }

  get lastStep(): number {
    return this.train[this.train.length - 1]?.step ?? this.started?.start_step ?? 0;
  }
}
