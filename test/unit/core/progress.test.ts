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

  it('a run label with escape sequences or other control characters reaches the terminal escaped and cut', () => {
    for (const tty of [true, false]) {
      const out = new Sink(tty);
      const b = new ProgressBoard(out, { minIntervalMs: 0 });
      const hostile = `evil\x1b]0;owned\x07\x1b[2J\r\n\x9b31m${'x'.repeat(500)}`;
      b.update({ key: 'e/r', label: hostile, state: 'running', step: 1, steps: 10 });
      b.done();
      // The board's own cursor moves (TTY) are the only escape sequences written.
      const ESC = String.fromCharCode(27);
      const own = out.text.split(`\r${ESC}[2K`).join('').replace(new RegExp(`${ESC}\\[\\d+A`, 'g'), '');
      expect([...own].filter((c) => c.charCodeAt(0) < 0x20 && c !== '\n')).toEqual([]);
      expect(own).not.toMatch(/[\x7f-\x9f]/);
      expect(own).toContain('evil\\u001b]0;owned\\u0007\\u001b[2J\\u000d\\u000a\\u009b31m');
      expect(own.split('\n').filter(Boolean)).toHaveLength(1); // one line, the newline in the label is shown, not printed
      expect(own).toContain('…');
      expect(own.length).toBeLessThan(200);
    }
    expect(renderLine({ key: 'a', label: 'a\x1bb', state: 'running', step: 0, steps: 1, loss: null }, 4, 4)).toMatch(/^a\\u001bb /);
  });
});
