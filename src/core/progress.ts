// Terminal progress: one line per run, redrawn in place on a TTY (at most ~10 times a second);
// on anything else (CI logs, pipes) plain lines at state changes and every 25% of a run.
// Labels and states come from run folders and configs (data): control characters are shown escaped
// (text.ts printable), so a run name cannot send escape sequences to the terminal.
import type { RunInfo } from './runStore';
import { printable } from './text';

export interface ProgressLine {
  key: string;
  label: string;
  state: string;
  step: number;
  steps: number;
  /** The latest logged train loss, raw (one step's mini-batch, not smoothed). */
  loss: number | null;
}

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

const FINISHED = new Set(['completed', 'failed', 'stopped', 'diverged', 'damaged']);

const fmtLoss = (v: number | null) => (v === null ? '' : `loss ${Number(v.toPrecision(4))}`);

/** Labels are cut to this many characters (a progress line is one line of a terminal). */
const LABEL_MAX = 60;

/** One run's line: `label  [#########-----------]  45%  running    step 45/100  loss 0.123`. */
export function renderLine(p: ProgressLine, labelWidth: number, barWidth = 20): string {
  const frac = p.steps > 0 ? Math.min(1, Math.max(0, p.step / p.steps)) : 0;
  const filled = Math.round(frac * barWidth);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const step = `step ${p.step}/${p.steps}`;
  // printable() is idempotent: lines of the board are escaped already, direct callers' are escaped here.
  return [printable(p.label, LABEL_MAX).padEnd(labelWidth), bar, pct, printable(p.state, 20).padEnd(9), step.padEnd(6 + 2 * String(p.steps).length), fmtLoss(p.loss)].join('  ').trimEnd();
}

export class ProgressBoard {
  private lines = new Map<string, ProgressLine>();
  private drawn = 0;
  private lastDraw = 0;
  private pending: NodeJS.Timeout | undefined;
  private lastPlain = new Map<string, string>();
  readonly tty: boolean;

  constructor(
    private readonly out: ProgressStream = process.stdout,
    opts: { tty?: boolean; minIntervalMs?: number } = {},
  ) {
    this.tty = opts.tty ?? !!out.isTTY;
    this.minInterval = opts.minIntervalMs ?? 100;
  }

  private readonly minInterval: number;

  /** Adds or updates a run's line from its info (state, step) and optionally the latest loss. */
  update(info: Pick<RunInfo, 'key' | 'label' | 'state' | 'step' | 'steps'>, loss?: number | null): void {
    const old = this.lines.get(info.key);
    const state = printable(info.state, 20);
    const line: ProgressLine = {
      key: info.key,
      label: printable(info.label, LABEL_MAX),
      state,
      step: Math.max(info.step, old && old.state === state ? old.step : 0),
      steps: info.steps,
      loss: loss === undefined ? (old?.loss ?? null) : loss,
    };
    this.lines.set(info.key, line);
    this.schedule();
  }

  /** A newer step and loss from the event stream (ahead of status.json). */
  progress(key: string, step: number, loss: number | null): void {
    const line = this.lines.get(key);
    if (!line) return;
    line.step = Math.max(line.step, step);
    if (loss !== null) line.loss = loss;
    this.schedule();
  }

  /** A line of its own above the board (e.g. a comparison's stage). */
  note(text: string): void {
    if (this.tty && this.drawn) {
      this.out.write(`\x1b[${this.drawn}A\r\x1b[0J`);
      this.drawn = 0;
    }
    this.out.write(`${printable(text, 1000)}\n`);
    if (this.tty) this.draw();
  }

  /** Draws the final state now (and stops redrawing). */
  done(): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
    this.draw();
  }

  private schedule(): void {
    if (!this.tty) {
      this.drawPlain();
      return;
    }
    if (this.pending) return;
    const wait = Math.max(0, this.lastDraw + this.minInterval - Date.now());
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.draw();
    }, wait);
  }

  private draw(): void {
    if (!this.tty) {
      this.drawPlain();
      return;
    }
    this.lastDraw = Date.now();
    let all = [...this.lines.values()];
    const w = Math.max(...all.map((l) => l.label.length), 6);
    const cols = this.out.columns ?? 120;
    // More lines than the terminal shows cannot be redrawn in place: the finished ones fold into a count.
    const room = Math.max(4, (this.out.rows ?? 24) - 2);
    let folded = '';
    if (all.length > room) {
      const done = all.filter((l) => FINISHED.has(l.state));
      const counts = new Map<string, number>();
      for (const l of done) counts.set(l.state, (counts.get(l.state) ?? 0) + 1);
      folded = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
      all = all.filter((l) => !FINISHED.has(l.state)).slice(0, room - 1);
    }
    let text = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const l of all) text += `\r\x1b[2K${renderLine(l, w).slice(0, cols - 1)}\n`;
    if (folded) text += `\r\x1b[2K${`(${folded})`.slice(0, cols - 1)}\n`;
    const count = all.length + (folded ? 1 : 0);
    // Lines left over from a taller board are cleared.
    if (this.drawn > count) text += '\x1b[0J';
    this.drawn = count;
    this.out.write(text);
  }

  /** Plain mode: a line when a run changes state or crosses a quarter of its steps. */
  private drawPlain(): void {
    const all = [...this.lines.values()];
    const w = Math.max(...all.map((l) => l.label.length), 6);
    for (const l of all) {
      const quarter = l.steps > 0 ? Math.floor((4 * Math.min(l.step, l.steps)) / l.steps) : 0;
      const sig = `${l.state}|${quarter}`;
      if (this.lastPlain.get(l.key) === sig) continue;
      this.lastPlain.set(l.key, sig);
      this.out.write(`${renderLine(l, w)}\n`);
    }
  }
}
