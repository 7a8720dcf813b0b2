// Export Adapter (issue 14, LOW): never overwrite an existing folder, never copy what a symbolic link
// inside the run's adapter/ names outside the run directory.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { destinationState, ExportError, exportAdapter, freeDestination } from '../../../src/core/exportAdapter';
import { tempDir } from './helpers';

let cleanup = () => {};
afterEach(() => cleanup());

function setup() {
  const t = tempDir();
  cleanup = t.cleanup;
  const run = join(t.dir, 'runs', 'exp', 'run');
  mkdirSync(join(run, 'adapter', 'sub'), { recursive: true });
  writeFileSync(join(run, 'adapter', 'adapter_config.json'), '{"r": 8}');
  writeFileSync(join(run, 'adapter', 'adapter_model.safetensors'), Buffer.alloc(3000, 7));
  writeFileSync(join(run, 'adapter', 'sub', 'README.md'), 'readme');
  writeFileSync(join(run, 'config.json'), '{"name": "x"}');
  const secret = join(t.dir, 'secret.txt');
  writeFileSync(secret, 'the user\'s private key');
  const out = join(t.dir, 'out');
  mkdirSync(out);
  return { run, secret, out, root: t.dir };
}

const tree = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? tree(join(dir, d.name)).map((p) => `${d.name}/${p}`) : [d.name])).sort();

describe('exportAdapter', () => {
  it('copies the adapter folder (nested files, bytes intact) to a new folder', () => {
    const { run, out } = setup();
    const r = exportAdapter(run, join(out, 'run-adapter'));
    expect(r).toMatchObject({ dest: join(out, 'run-adapter'), files: 3, bytes: 3000 + 8 + 6 });
    expect(tree(join(out, 'run-adapter'))).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'sub/README.md']);
    expect(readFileSync(join(out, 'run-adapter', 'adapter_model.safetensors')).equals(Buffer.alloc(3000, 7))).toBe(true);
    expect(readdirSync(out)).toEqual(['run-adapter']); // no temporary folder left
  });

  it('refuses a symbolic link in adapter/ that leads outside the run directory, naming it, and writes nothing', () => {
    const { run, out, secret } = setup();
    symlinkSync(secret, join(run, 'adapter', 'sub', 'tokenizer.json'));
    const dest = join(out, 'run-adapter');
    expect(() => exportAdapter(run, dest)).toThrow(ExportError);
    expect(() => exportAdapter(run, dest)).toThrow(/not exported: adapter\/sub\/tokenizer\.json \(a symbolic link to .*secret\.txt, outside the run directory\)/);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(out)).toEqual([]);
  });

  it('refuses an adapter/ that is itself a link out of the run, and links to nothing', () => {
    const { run, out, root } = setup();
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'x'), 'x');
    const run2 = join(root, 'runs', 'exp', 'run2');
    mkdirSync(run2);
    symlinkSync(elsewhere, join(run2, 'adapter'));
    expect(() => exportAdapter(run2, join(out, 'a'))).toThrow(/adapter \(a symbolic link to .*elsewhere, outside the run directory\)/);
    symlinkSync(join(root, 'nothing'), join(run, 'adapter', 'dangling'));
    expect(() => exportAdapter(run, join(out, 'b'))).toThrow(/adapter\/dangling \(a symbolic link to nothing\)/);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a link that stays inside the run directory is copied as the file it names', () => {
    const { run, out } = setup();
    symlinkSync(join(run, 'config.json'), join(run, 'adapter', 'training_config.json'));
    exportAdapter(run, join(out, 'a'));
    expect(readFileSync(join(out, 'a', 'training_config.json'), 'utf8')).toBe('{"name": "x"}');
  });

  it('never writes into an existing folder that is not empty, nor over a file; an empty folder is used', () => {
    const { run, out } = setup();
    const dest = join(out, 'run-adapter');
    mkdirSync(dest);
    writeFileSync(join(dest, 'mine.txt'), 'keep me');
    expect(() => exportAdapter(run, dest)).toThrow(/already exists and is not empty: not overwritten/);
    expect(readdirSync(dest)).toEqual(['mine.txt']);
    writeFileSync(join(out, 'file'), 'a file');
    expect(() => exportAdapter(run, join(out, 'file'))).toThrow(/is not a folder/);
    mkdirSync(join(out, 'empty'));
    expect(exportAdapter(run, join(out, 'empty')).files).toBe(3);
    expect(() => exportAdapter(run, join(run, 'adapter', 'sub', 'inner'))).toThrow(/inside the adapter folder/);
  });

  it('a run without adapter/ says so', () => {
    const { root, out } = setup();
    const bare = join(root, 'runs', 'exp', 'bare');
    mkdirSync(bare);
    expect(() => exportAdapter(bare, join(out, 'x'))).toThrow(expect.objectContaining({ problem: 'no-adapter' }));
  });

  it('destinationState and freeDestination: the first name that is absent or empty', () => {
    const { out } = setup();
    expect(destinationState(join(out, 'a'))).toBe('absent');
    mkdirSync(join(out, 'a'));
    expect(destinationState(join(out, 'a'))).toBe('empty');
    expect(freeDestination(out, 'a')).toBe(join(out, 'a'));
    writeFileSync(join(out, 'a', 'x'), '');
    expect(destinationState(join(out, 'a'))).toBe('not-empty');
    writeFileSync(join(out, 'a-2'), '');
    expect(freeDestination(out, 'a')).toBe(join(out, 'a-3'));
  });
});
