import { describe, expect, it } from 'vitest';
import { PRINTABLE_MAX, printable } from '../../../src/core/text';

describe('printable', () => {
  it('leaves ordinary text, accents and emoji alone', () => {
    expect(printable('run-1 lr=0.01 é ✓ 🚀')).toBe('run-1 lr=0.01 é ✓ 🚀');
  });

  it('turns an escape sequence into visible text (no ESC byte reaches the terminal)', () => {
    const out = printable('\x1b]0;pwned\x07\x1b[2Jname');
    expect(out).toBe('\\u001b]0;pwned\\u0007\\u001b[2Jname');
    expect([...out].some((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f))).toBe(false);
  });

  it('escapes every C0 control (newline, tab, CR too), DEL and C1 controls', () => {
    expect(printable('a\nb\tc\rd\x00e\x7ff\x9bg\x85')).toBe('a\\u000ab\\u0009c\\u000dd\\u0000e\\u007ff\\u009bg\\u0085');
  });

  it('escapes lone surrogates and bidirectional overrides', () => {
    expect(printable('x\ud800y\u202ez\u2066')).toBe('x\\ud800y\\u202ez\\u2066');
  });

  it('cuts long text to max characters ending in …, never inside an escape or a surrogate pair', () => {
    const long = 'x'.repeat(10_000_000);
    const out = printable(long);
    expect([...out].length).toBe(PRINTABLE_MAX);
    expect(out.endsWith('…')).toBe(true);
    expect(printable('abcdef', 4)).toBe('abc…');
    expect(printable('abcd', 4)).toBe('abcd');
    // 'ab' + ESC escape (6) would exceed 6 - 1: the escape is dropped whole
    expect(printable('ab\x1bcdef', 6)).toBe('ab…');
    expect(printable('🚀🚀🚀🚀', 3)).toBe('🚀🚀…');
  });

  it('max of 0 or Infinity means no limit', () => {
    expect(printable('y'.repeat(500), 0).length).toBe(500);
    expect(printable('y'.repeat(500), Infinity).length).toBe(500);
  });
});
