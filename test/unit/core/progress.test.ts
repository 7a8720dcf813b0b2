// Terminal progress: bar rendering, in-place redraw on a TTY, plain lines elsewhere.
import { describe, expect, it } from 'vitest';
import { ProgressBoard, renderLine } from '../../../src/core/progress';

class Sink {
  text = '';
  isTTY: boolean;
  columns = 200;
  constructor(tty: boolean) {
    this.isTTY = tty;
  }
  write(s: string) {
    this.text += s;
    return true;
  }
}

const info = (key: string, state: string, step: number, steps = 100) => ({ key, label: key.toUpperCase(), state: state as 'running', step, steps });

describe('renderLine', () => {
  it('draws a bar proportional to the step, the percent, the step and the loss', () => {
    const l = renderLine({ key: 'a', label: 'RiemannLoRA', state: 'running', step: 50, steps: 100, loss: 0.123456 }, 12, 10);
    expect(l).toMatch(/^RiemannLoRA +\[#####-----\] +50% {2}running {4}step 50\/100 +loss 0\.1235$/);
    expect(renderLine({ key: 'a', label: 'x', state: 'queued', step: 0, steps: 0, loss: null }, 1, 4)).toContain('[----]');
    expect(renderLine({ key: 'a', label: 'x', state: 'completed', step: 150, steps: 100, loss: null }, 1, 4)).toContain('[####]  100%');
  });
});

describe('ProgressBoard', () => {
  it('on a TTY redraws all lines in place (cursor up) and never moves the step backwards', () => {
    const out = new Sink(true);
    const b = new ProgressBoard(out, { minIntervalMs: 0 });
    b.update(info('a', 'running', 0));
    b.update(info('b', 'queued', 0));
    b.done();
    b.progress('a', 40, 0.5);
    b.update(info('a', 'running', 10)); // status.json lags behind the events
    b.done();
    const frames = out.text.split('\x1b[2A');
    expect(frames).toHaveLength(2);
    expect(frames[1]).toContain('step 40/100');
    expect(frames[1]).toContain('loss 0.5');
    expect(frames[1]!.match(/\n/g)).toHaveLength(2);
  });

  it('off a TTY prints a plain line per state change and quarter, no escape codes', () => {
    const out = new Sink(false);
    const b = new ProgressBoard(out);
    b.update(info('a', 'queued', 0));
    b.update(info('a', 'running', 0));
    for (let s = 1; s <= 100; s++) b.progress('a', s, 1 / s);
    b.update(info('a', 'completed', 100));
    b.done();
    expect(out.text).not.toContain('\x1b');
    const lines = out.text.trim().split('\n');
    expect(lines.map((l) => /(queued|running|completed)/.exec(l)?.[1])).toEqual(['queued', 'running', 'running', 'running', 'running', 'running', 'completed']);
  });
});
