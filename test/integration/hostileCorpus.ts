// The hostile-config corpus (schema/fixtures/hostile/cases.json) as files on disk, for the tests that
// send it through the CLI and the engine (native-worker/tests/test_hostile_configs.py reads it too).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import corpus from '../../schema/fixtures/hostile/cases.json';

export interface HostileCase {
  id: string;
  expect: string;
  text?: string;
  /** Concatenated; a [string, count] part is repeated. */
  parts?: (string | [string, number])[];
  encoding?: 'latin-1';
  /** Created beside the config; a name ending in / is a folder. */
  files?: Record<string, string | null>;
  /** Refused only for what this machine has (paths, device, memory): only the worker can tell. */
  machine?: boolean;
}

export const HOSTILE_CASES: readonly HostileCase[] = (corpus as { cases: HostileCase[] }).cases;

/** Writes the case's config.json (and its files) into `folder`; returns the config's path. */
export function materialize(c: HostileCase, folder: string): string {
  mkdirSync(folder, { recursive: true });
  for (const [name, content] of Object.entries(c.files ?? {})) {
    const path = join(folder, name);
    if (name.endsWith('/')) mkdirSync(path, { recursive: true });
    else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content ?? '');
    }
  }
  const text = c.text ?? (c.parts ?? []).map((p) => (typeof p === 'string' ? p : p[0].repeat(p[1]))).join('');
  const path = join(folder, 'config.json');
  writeFileSync(path, Buffer.from(text, c.encoding === 'latin-1' ? 'latin1' : 'utf8'));
  return path;
}
