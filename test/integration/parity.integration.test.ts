// Validate and run agree, in both languages: every hostile config that is not about this machine
// (schema/fixtures/hostile/cases.json without `machine`) gets the same verdict and the same field
// pointers from the TypeScript side (the CLI's loadConfig, the engine's createRun, the editor's diagnostics
// beyond the schema) and from the worker's
// `validate` (one process for the whole corpus). The rules live in one place (the schema, schema/rules.json,
// schema/methods.json): this test fails when one side grows a rule the other does not have.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type RunConfig } from '../../src/core/config';
import { Engine } from '../../src/core/engine';
import { configProblems } from '../../src/core/configProblems';
import { DocumentError, parseBytes } from '../../src/core/jsonDocument';
import { validate } from '../../src/core/schemas';
import { NATIVE_WORKER, WORKER_ENV, workerPython } from './helpers';
import { HOSTILE_CASES, materialize } from './hostileCorpus';

const CASES = HOSTILE_CASES.filter((c) => !c.machine);
const dir = mkdtempSync(join(tmpdir(), 'rlora-parity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pointers = (paths: string[]) => [...new Set(paths.map((p) => p || '/'))].sort();

describe('one verdict for every entry point', () => {
  it('the TypeScript side and the worker name the same fields for every non-machine hostile config', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    const files = CASES.map((c) => materialize(c, join(dir, c.id)));
    const r = spawnSync(workerPython(), ['-P', '-m', 'riemannlora.worker', 'validate', ...files.flatMap((f) => ['--config', f])], {
      cwd: NATIVE_WORKER,
      env: { ...process.env, ...WORKER_ENV, PYTHONPATH: NATIVE_WORKER },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(r.status).toBe(2);
    const verdicts = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { valid: boolean; problems: { field: string }[] });
    expect(verdicts).toHaveLength(CASES.length);

    const engine = new Engine({ root: join(dir, 'runs'), python: workerPython(), nativeWorkerDir: NATIVE_WORKER });
    const disagreements: string[] = [];
    let editorChecked = 0;
    CASES.forEach((c, i) => {
      const worker = pointers(verdicts[i]!.problems.map((p) => p.field));
      let cli: string[] = [];
      try {
        loadConfig(files[i]!);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        cli = pointers(err.errors.map((e) => e.path));
      }
      if (verdicts[i]!.valid || !cli.length || cli.join() !== worker.join()) disagreements.push(`${c.id}: cli ${cli.join(' ') || 'valid'} / worker ${worker.join(' ') || 'valid'}`);
      // The editor: VS Code's JSON service checks the schema (the same file); what the schema cannot say,
      // the extension's diagnostics underline (configProblems) - the same pointers as the worker.
      const bytes = readFileSync(files[i]!);
      const text = bytes.toString('utf8');
      // The engine takes parsed objects: the same verdict for every document that parses.
      let doc: unknown;
      try {
        doc = parseBytes(bytes);
      } catch (err) {
        if (!(err instanceof DocumentError)) throw err;
        if (err.pointer) {
          const editor = pointers(configProblems(text).map((p) => p.pointer));
          if (editor.join() !== worker.join()) disagreements.push(`${c.id}: editor ${editor.join(' ')} / worker ${worker.join(' ')}`);
        }
        return;
      }
      if (!validate('config', doc).length) {
        editorChecked += 1;
        const editor = pointers(configProblems(text).map((p) => p.pointer));
        if (editor.join() !== worker.join()) disagreements.push(`${c.id}: editor ${editor.join(' ') || 'nothing'} / worker ${worker.join(' ')}`);
      }
      try {
        engine.createRun(doc as RunConfig, { start: false });
        disagreements.push(`${c.id}: the engine created the run`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const eng = pointers(err.errors.map((e) => e.path));
        if (eng.join() !== worker.join()) disagreements.push(`${c.id}: engine ${eng.join(' ')} / worker ${worker.join(' ')}`);
      }
    });
    engine.dispose();
    expect(disagreements).toEqual([]);
    expect(editorChecked).toBeGreaterThanOrEqual(4); // the rules between fields, at least
  }, 300_000);
});
