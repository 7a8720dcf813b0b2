// Every path that a comment, a docstring or a document cites must exist in the repository, and every
// section of docs/ that one cites (`docs/method.md §4`, `docs/architecture.md "Run directory"`) must be a
// heading of that file. A reference to a design note that lives somewhere else (another machine, a folder
// outside the repository) is a dead link for every reader of the code; this test fails on it.
//
// What counts as a reference (kept narrow, so the allowlist stays tiny):
//   - any token ending in `.md` (documents are what comments cite), and
//   - any token that starts with a top-level folder of the repository (`src/`, `docs/`, `native-worker/`,
//     …, also after `./` or `../` segments), e.g. `src/core/launcher.ts` or `../../schema/run-config.schema.json`.
// Tokens with placeholders or globs (`*`, `<run-dir>`, `{…}`, `$VAR`, `NNN`) and URLs are not references.
//
// Resolution: a token that starts with `./` or `../` is relative to the citing file's folder. Any other
// token is tried in the citing file's folder and in every folder above it, up to the repository root
// (a Python docstring may write a path from the package folder; `docs/method.md` written anywhere means
// the root's docs/). Code specifiers may omit the extension (`../../src/shared/messages`): .ts, .mts,
// .mjs, .js and .py are tried.
//
// This file itself is not checked for references (its self-tests are made of missing names on purpose),
// only for machine paths.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Top-level folders whose paths are references wherever they appear. */
const TOP_LEVEL = ['src', 'docs', 'native-worker', 'schema', 'test', 'scripts', 'webview', 'examples', 'bench', 'media'];

/** Where references are looked for: folders (walked) and single files, relative to the root. */
const SCANNED_DIRS = ['src', 'webview', 'test', 'scripts', 'native-worker', 'schema', 'docs', 'examples', 'bench'];
const SCANNED_FILES = ['README.md', 'package.json'];
/** Folders never walked: installed packages, caches, build and benchmark outputs, the built-in model and data. */
const SKIPPED_DIRS = new Set(['node_modules', '__pycache__', '.pytest_cache', '.ruff_cache', 'results', 'generated']);
const SKIPPED_PATHS = new Set([
  'native-worker/riemannlora/assets/default/model',
  'native-worker/riemannlora/assets/default/data',
  'schema/fixtures', // test data: configs as a user would write them elsewhere, some naming missing paths on purpose
]);
const SCANNED_EXTENSIONS = ['.ts', '.mts', '.mjs', '.js', '.py', '.md', '.sh', '.css', '.toml', '.json'];

/**
 * Names that look like references but are not citations of a repository file, per citing file, with the
 * reason. Keep it tiny: fix the reference instead whenever the name is meant to be a repository path.
 */
const ALLOWED: readonly { token: string; files: readonly string[]; why: string }[] = [
  { token: 'latest.md', files: ['scripts/bench.mjs', 'bench/report.mjs'], why: "a file name joined to bench/results/ in code (`join(results, 'latest.md')`)" },
  { token: 'bench/results/gpu.json', files: ['bench/gpu.py', 'bench/report.mjs', 'bench/README.md'], why: 'the output of bench/gpu.py, which exists only after a run on a GPU' },
  { token: 'sub/README.md', files: ['test/unit/core/exportAdapter.test.ts'], why: 'a file the test writes into a temporary run folder' },
];

interface Reference {
  file: string;
  line: number;
  token: string;
  /** Section names or numbers cited right after the token (`§4`, `"Run directory"`). */
  sections: string[];
}

const CODE_EXTENSIONS = ['', '.ts', '.mts', '.mjs', '.js', '.py'];
const TOP = TOP_LEVEL.join('|');
// A token: path characters not preceded by another path character (so `test-results/`, `a/src/x` and
// `https://host/docs/x.md` do not start a match in the middle).
const TOP_LEVEL_RE = new RegExp(String.raw`(?<![\w.@~/:\\-])((?:\.\.?/)*(?:${TOP})/[\w./-]*)`, 'g');
const DOC_RE = /(?<![\w.@~/:\\-])((?:\.\.?\/)*(?:[\w.-]+\/)*[\w-][\w.-]*\.md)(?![\w/-])/g;
const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s)'"`>\]]+|\b(?:www\.)?github\.com\/[^\s)'"`>\]]+/gi;
const PLACEHOLDER_RE = /[*<>{}$…]|NNN|\.\.\.$/;
const SELF = 'test/unit/references.test.ts';
/** Names of missing files for the self-tests, assembled so that this file does not cite them itself. */
const missing = (...parts: string[]): string => parts.join('');

/** The sections cited right after a reference: `§4`, `§1–3`, `section 5`, `"Run directory", "Process model"`. */
function sectionsAfter(rest: string): string[] {
  const sections: string[] = [];
  const numbered = /^[\s,(]*(?:§\s*|section\s+)(\d+)(?:\s*[–-]\s*(\d+))?/.exec(rest);
  if (numbered) {
    sections.push(`§${numbered[1]}`);
    if (numbered[2]) sections.push(`§${numbered[2]}`);
    return sections;
  }
  let tail = rest;
  for (;;) {
    const named = /^[\s,(]*"([^"\n]{1,80})"/.exec(tail);
    if (!named) return sections;
    sections.push(named[1]!);
    tail = tail.slice(named[0].length);
  }
}

/** The references of one file's text (`file` relative to the root, with forward slashes). */
function findReferences(file: string, text: string): Reference[] {
  const refs: Reference[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.replace(URL_RE, (url) => ' '.repeat(url.length));
    const seen = new Set<string>();
    for (const re of [DOC_RE, TOP_LEVEL_RE]) {
      for (const m of line.matchAll(re)) {
        const token = m[1]!.replace(/[.,:;]+$/, '');
        const key = `${m.index}:${token}`;
        const next = line[m.index! + m[0].length] ?? '';
        if (seen.has(key) || PLACEHOLDER_RE.test(m[1]! + next) || (!token.includes('/') && !token.endsWith('.md'))) continue;
        seen.add(key);
        // A path that continues on the next line (`…/` at the end of a wrapped comment) is left alone.
        if (token.endsWith('/') && m.index! + m[0].length >= line.trimEnd().length && !existsSync(join(ROOT, token))) continue;
        const rest = line.slice(m.index! + m[0].length) + (index + 1 < lines.length ? ` ${lines[index + 1]!.replace(/^\s*(?:\/\/|#|\*)?/, '')}` : '');
        refs.push({ file, line: index + 1, token, sections: token.endsWith('.md') ? sectionsAfter(rest) : [] });
      }
    }
  });
  // The same token found by both patterns at the same place counts once.
  return refs.filter((r, i) => refs.findIndex((o) => o.line === r.line && o.token === r.token) === i);
}

/** The repository path (relative to the root) that a reference names, or null when none exists. */
function resolveReference(file: string, token: string): string | null {
  const from = dirname(join(ROOT, file));
  const bases: string[] = [];
  if (token.startsWith('./') || token.startsWith('../')) bases.push(from);
  else for (let dir = from; ; dir = dirname(dir)) {
    bases.push(dir);
    if (dir === ROOT || !dir.startsWith(ROOT)) break;
  }
  for (const base of bases) {
    for (const ext of CODE_EXTENSIONS) {
      const candidate = resolve(base, token + ext);
      if (candidate !== ROOT && !candidate.startsWith(ROOT + sep)) continue;
      if (existsSync(candidate)) return relative(ROOT, candidate).split(sep).join('/');
    }
  }
  return null;
}

/** The headings of a markdown file, as written and without a leading section number ("4. Optimizers" → "Optimizers"). */
function headings(path: string): { names: Set<string>; numbers: Set<string> } {
  const names = new Set<string>();
  const numbers = new Set<string>();
  for (const line of readFileSync(join(ROOT, path), 'utf8').split('\n')) {
    const h = /^#{1,6}\s+(.*?)\s*$/.exec(line);
    if (!h) continue;
    names.add(h[1]!);
    const numbered = /^(\d+)\.\s+(.*)$/.exec(h[1]!);
    if (numbered) {
      numbers.add(`§${numbered[1]}`);
      names.add(numbered[2]!);
    }
  }
  return { names, numbers };
}

/** What is wrong with one reference, or null. Sections are checked for files in docs/ (our own convention). */
function problem(ref: Reference): string | null {
  const where = `${ref.file}:${ref.line}`;
  if (ALLOWED.some((a) => a.token === ref.token && a.files.includes(ref.file))) return null;
  const target = resolveReference(ref.file, ref.token);
  if (!target) return `${where}: "${ref.token}" names no file or folder of the repository`;
  if (target.startsWith('docs/') && target.endsWith('.md') && ref.sections.length) {
    const { names, numbers } = headings(target);
    for (const s of ref.sections) {
      if (s.startsWith('§') ? !numbers.has(s) : !names.has(s)) return `${where}: ${target} has no section ${s.startsWith('§') ? s : `"${s}"`}`;
    }
  }
  return null;
}

function scannedFiles(): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(ROOT, rel), { withFileTypes: true })) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name) && !entry.name.endsWith('.egg-info') && !SKIPPED_PATHS.has(path)) walk(path);
      } else if (entry.isFile() && SCANNED_EXTENSIONS.some((e) => entry.name.endsWith(e))) {
        out.push(path);
      }
    }
  };
  for (const dir of SCANNED_DIRS) if (existsSync(join(ROOT, dir))) walk(dir);
  for (const file of SCANNED_FILES) if (existsSync(join(ROOT, file)) && statSync(join(ROOT, file)).isFile()) out.push(file);
  return out.sort();
}

describe('references to repository files', () => {
  const files = scannedFiles();

  it('scans the sources, the tests and the documents', () => {
    for (const expected of ['docs/method.md', 'docs/architecture.md', 'src/core/launcher.ts', 'native-worker/riemannlora/optim/riemannion.py', 'README.md', 'package.json']) {
      expect(files).toContain(expected);
    }
  });

  it('every cited file, folder and docs/ section exists', () => {
    const problems = files.filter((file) => file !== SELF).flatMap((file) => findReferences(file, readFileSync(join(ROOT, file), 'utf8')).map(problem)).filter((p): p is string => p !== null);
    expect(problems).toEqual([]);
  });

  it('no file cites a path of one machine', () => {
    const machine = new RegExp(['/work', '/home', '/Users'].map((p) => `(?<![\\w.-])${p}/`).join('|'));
    const hits = files.flatMap((file) =>
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .flatMap((line, i) => (machine.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(hits).toEqual([]);
  });

  it('every allowlist entry is still needed', () => {
    for (const entry of ALLOWED.flatMap((a) => a.files.map((file) => ({ file, token: a.token })))) {
      const path = join(ROOT, entry.file);
      expect(existsSync(path), entry.file).toBe(true);
      expect(findReferences(entry.file, readFileSync(path, 'utf8')).map((r) => r.token), entry.file).toContain(entry.token);
    }
  });
});

describe('the reference scanner', () => {
  const check = (file: string, text: string) => findReferences(file, text).map(problem);

  it('flags a missing document, a missing source file and missing docs/ sections', () => {
    expect(check('src/core/x.ts', `// see ${missing('docs/nothing-here', '.md')}`)[0]).toMatch(/names no file/);
    expect(check('src/core/x.ts', `// see ${missing('src/core/nothing-here', '.ts')}.`)[0]).toMatch(/names no file/);
    expect(check('native-worker/riemannlora/x.py', `# the design note (${missing('NOWHERE', '.md')} "Run directory")`)[0]).toMatch(/names no file/);
    expect(check('native-worker/tests/x.py', `# ${missing('method', '.md')} §5`)[0]).toMatch(/names no file/);
    expect(check('src/core/x.ts', `// docs/method.md ${missing('§', '99')}`)[0]).toMatch(/no section §99/);
    expect(check('src/core/x.ts', '// docs/architecture.md "Run directory", "No such section"')[0]).toMatch(/no section "No such section"/);
  });

  it('accepts what exists, relative or from the root, with or without an extension', () => {
    expect(check('src/core/x.ts', '// docs/method.md §1–3 and docs/architecture.md "Run directory", "Process model".')).toEqual([null, null]);
    expect(check('webview/run/x.ts', "import { x } from '../../src/shared/messages';")).toEqual([null]);
    expect(check('native-worker/riemannlora/tasks/x.py', '"see riemannlora/assets/default/README.md"')).toEqual([null]);
    expect(check('src/core/x.ts', '// schema/run-config.schema.json and src/core/ and native-worker/README.md#install')).toEqual([null, null, null]);
  });

  it('ignores URLs, globs, placeholders and names that are not paths', () => {
    expect(findReferences('src/x.ts', '// https://example.org/docs/missing.md, github.com/a/b/README.md')).toEqual([]);
    expect(findReferences('src/x.ts', '// schema/*.json, <run-dir>/events.jsonl, test-results/e2e/, a/src/b')).toEqual([]);
    expect(findReferences('src/x.ts', "// config.json in the model folder; run.json; './core'")).toEqual([]);
  });
});
