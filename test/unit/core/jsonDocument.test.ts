// The strict document rules (src/core/jsonDocument.ts), the twin of native-worker/riemannlora/jsondoc.py:
// the positions below are the ones the worker reports for the same bytes (schema/fixtures/hostile).
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigText } from '../../../src/core/config';
import { DocumentError, decodeUtf8, documentLimits, parseBytes, parseText, preview } from '../../../src/core/jsonDocument';
import { validate } from '../../../src/core/schemas';

const fail = (f: () => unknown): DocumentError => {
  try {
    f();
  } catch (err) {
    if (err instanceof DocumentError) return err;
    throw err;
  }
  throw new Error('expected a DocumentError');
};

describe('strict JSON documents', () => {
  it('limits come from the config schema', () => {
    expect(documentLimits()).toMatchObject({ max_bytes: 1048576, max_depth: 16 });
  });

  it('NaN, Infinity and comments are named with their line and column', () => {
    expect(fail(() => parseText('{"lr": NaN}')).message).toContain('at line 1, column 8: unexpected "NaN"');
    expect(fail(() => parseText('{\n  "a": [1, -Infinity]\n}')).message).toContain('at line 2, column 13');
    expect(fail(() => parseText('// x\n{}')).message).toContain('at line 1, column 1: unexpected "//"');
    expect(parseText('{"s": "NaN // Infinity", "t": true, "f": false, "n": null}')).toEqual({ s: 'NaN // Infinity', t: true, f: false, n: null });
  });

  it('nesting deeper than the limit is refused by a scan, not a stack overflow', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(fail(() => parseText(deep)).message).toContain('at line 1, column 17: nests deeper than 16 levels');
    expect(parseText(`${'['.repeat(16)}${']'.repeat(16)}`)).toBeTruthy();
  });

  it('a number that is not finite is refused at its pointer', () => {
    const err = fail(() => parseText('{"method": {"betas": [0.9, 1e999]}}'));
    expect(err.pointer).toBe('/method/betas/1');
  });

  it('UTF-8 only: a BOM is fine, a latin-1 byte is named', () => {
    expect(parseBytes(Buffer.from('\ufeff{"a": 1}', 'utf8'))).toEqual({ a: 1 });
    expect(fail(() => decodeUtf8(Buffer.from('{\n"name": "café"}', 'latin1'))).message).toContain('byte 0xe9 at line 2, column 13');
    const big = Buffer.alloc(documentLimits().max_bytes + 1, 0x20);
    expect(fail(() => parseBytes(big)).message).toContain('a run config is at most 1,048,576');
  });

  it('previews cut long values', () => {
    expect(preview('x'.repeat(10_000))).toHaveLength(60);
    expect(preview({ a: 1 })).toBe('{…}');
    const errors = validate('config', { name: 'n'.repeat(500_000), ['k'.repeat(200_000)]: 1 });
    const text = errors.map((e) => `${e.path}: ${e.message}`).join('\n');
    expect(text.length).toBeLessThan(2000);
    expect(text).toContain('/name');
  });

  it('parseConfigText and loadConfig use the same rules (a ConfigError naming the position)', () => {
    expect(() => parseConfigText('{"lr": NaN}')).toThrow(/line 1, column 8/);
    expect(() => loadConfig('/nonexistent/config.json')).toThrow(/cannot read the file: ENOENT/);
  });
});
