// The shared fixtures of schema/fixtures: the same verdicts as the Python worker's test.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validate, type SchemaName } from '../../src/core/schemas';

const ROOT = join(import.meta.dirname, '..', '..', 'schema', 'fixtures');
interface Fixture { description: string; data: unknown; errors?: string[] }
const cases: { schema: SchemaName; verdict: string; name: string; doc: Fixture }[] = [];
for (const schema of ['config', 'event'] as const) {
  for (const verdict of ['valid', 'invalid']) {
    for (const name of readdirSync(join(ROOT, schema, verdict)).filter((n) => n.endsWith('.json')).sort()) {
      cases.push({ schema, verdict, name, doc: JSON.parse(readFileSync(join(ROOT, schema, verdict, name), 'utf8')) as Fixture });
    }
  }
}

describe('schema fixtures', () => {
  it('has at least 20 invalid and 5 valid cases', () => {
    expect(cases.filter((c) => c.verdict === 'invalid').length).toBeGreaterThanOrEqual(20);
    expect(cases.filter((c) => c.verdict === 'valid').length).toBeGreaterThanOrEqual(5);
  });
  for (const c of cases) {
    it(`${c.schema}/${c.verdict}/${c.name}`, () => {
      const errors = validate(c.schema, c.doc.data);
      if (c.verdict === 'valid') {
        expect(errors).toEqual([]);
      } else {
        expect(errors.length).toBeGreaterThan(0);
        const paths = errors.map((e) => e.path);
        for (const expected of c.doc.errors ?? []) expect(paths, JSON.stringify(errors)).toContain(expected);
        for (const e of errors) expect(e.message.length).toBeGreaterThan(3);
      }
    });
  }
});
