// Exporting a run's PEFT adapter (<run-dir>/adapter/) to a folder the user chose.
//
// A run folder is data that anyone can write (a repository can ship one): its adapter/ may hold symbolic
// links. A link that resolves inside the run directory is copied as the file or folder it names; a link
// that leads outside it (to ~/.ssh/id_rsa, say) refuses the whole export, naming the link, before
// anything is written. Nothing but plain files and folders is copied (no fifo, socket or device). An
// existing destination that is not an empty folder is never written into: the caller asks for another
// name (freeDestination). Files are copied into a temporary sibling folder first and moved into place at
// the end, so a failed export leaves nothing half-written.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';

export type ExportProblem = 'no-adapter' | 'unsafe' | 'destination';

export class ExportError extends Error {
  constructor(
    message: string,
    readonly problem: ExportProblem,
  ) {
    super(message);
    this.name = 'ExportError';
  }
}

/** What is at a destination path: nothing, an empty folder, a folder with entries, or something else. */
export type DestinationState = 'absent' | 'empty' | 'not-empty' | 'not-a-folder';

export function destinationState(dest: string): DestinationState {
  let st;
  try {
    st = lstatSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (!st.isDirectory()) return 'not-a-folder'; // a file, or a link (never followed)
  return readdirSync(dest).length ? 'not-empty' : 'empty';
}

/** `<parent>/<name>`, or `<name>-2`, `<name>-3`, … : the first that is absent or an empty folder. */
export function freeDestination(parent: string, name: string): string {
  for (let i = 1; i < 10_000; i++) {
    const p = join(parent, i === 1 ? name : `${name}-${i}`);
    const state = destinationState(p);
    if (state === 'absent' || state === 'empty') return p;
  }
  throw new ExportError(`no free folder name for ${name} in ${parent}`, 'destination');
}

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
};

interface Plan {
  dirs: string[];
  /** [real source path, path relative to the adapter folder] */
  files: [string, string][];
  bytes: number;
}

/** Walks adapter/ (links resolved and confined to the run directory); throws naming every refused entry. */
function planCopy(runDir: string): { plan: Plan; source: string } {
  const src = join(runDir, 'adapter');
  let realRun: string;
  try {
    realRun = realpathSync(runDir);
  } catch (err) {
    throw new ExportError(`the run directory ${runDir} cannot be read: ${(err as Error).message}`, 'no-adapter');
  }
  try {
    lstatSync(src);
  } catch {
    throw new ExportError(`${runDir} has no exported adapter (adapter/ does not exist)`, 'no-adapter');
  }
  const refused: string[] = [];
  const plan: Plan = { dirs: [], files: [], bytes: 0 };
  const visited = new Set<string>();
  const resolveEntry = (path: string, shown: string): { real: string; kind: 'file' | 'dir' } | undefined => {
    const st = lstatSync(path);
    let real = path;
    let target = st;
    if (st.isSymbolicLink()) {
      try {
        real = realpathSync(path);
      } catch {
        refused.push(`${shown} (a symbolic link to nothing)`);
        return undefined;
      }
      if (!inside(realRun, real)) {
        refused.push(`${shown} (a symbolic link to ${real}, outside the run directory)`);
        return undefined;
      }
      target = statSync(real);
    }
    if (target.isDirectory()) return { real, kind: 'dir' };
    if (target.isFile()) return { real, kind: 'file' };
    refused.push(`${shown} (not a plain file or folder)`);
    return undefined;
  };
  const walk = (realDir: string, rel: string) => {
    const key = realpathSync(realDir);
    if (visited.has(key)) {
      refused.push(`${join('adapter', rel)} (a folder that links back to itself)`);
      return;
    }
    visited.add(key);
    for (const name of readdirSync(realDir).sort()) {
      const childRel = rel ? join(rel, name) : name;
      const entry = resolveEntry(join(realDir, name), join('adapter', childRel));
      if (!entry) continue;
      if (entry.kind === 'dir') {
        plan.dirs.push(childRel);
        walk(entry.real, childRel);
      } else {
        plan.files.push([entry.real, childRel]);
        plan.bytes += statSync(entry.real).size;
      }
    }
  };
  const root = resolveEntry(src, 'adapter');
  if (root && root.kind !== 'dir') refused.push('adapter (not a folder)');
  if (root?.kind === 'dir') walk(root.real, '');
  if (refused.length) {
    const shown = refused.slice(0, 5).join('; ');
    throw new ExportError(`not exported: ${shown}${refused.length > 5 ? ` (and ${refused.length - 5} more)` : ''}`, 'unsafe');
  }
  return { plan, source: root!.real };
}

const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** Copies one file without following a link at the source (it could have been swapped for one since). */
function copyFile(from: string, to: string): void {
  const input = openSync(from, constants.O_RDONLY | NOFOLLOW);
  try {
    if (!fstatSync(input).isFile()) throw new ExportError(`${from} is no longer a plain file`, 'unsafe');
    const output = openSync(to, 'wx', 0o644);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(input, buf, 0, buf.length, null);
        if (n <= 0) break;
        let off = 0;
        while (off < n) off += writeSync(output, buf, off, n - off);
      }
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}

export interface ExportResult {
  dest: string;
  files: number;
  bytes: number;
}

/**
 * Copies `<runDir>/adapter/` to `dest` (absent, or an empty folder). Throws ExportError: `no-adapter`,
 * `unsafe` (a link out of the run directory, a special file: nothing is written), `destination` (dest
 * exists and is not an empty folder, or lies inside the adapter).
 */
export function exportAdapter(runDir: string, dest: string): ExportResult {
  const { plan, source } = planCopy(runDir);
  const state = destinationState(dest);
  if (state === 'not-empty') throw new ExportError(`${dest} already exists and is not empty: not overwritten`, 'destination');
  if (state === 'not-a-folder') throw new ExportError(`${dest} already exists and is not a folder: not overwritten`, 'destination');
  let parent: string;
  try {
    parent = realpathSync(dirname(dest));
  } catch (err) {
    throw new ExportError(`the folder of ${dest} cannot be used: ${(err as Error).message}`, 'destination');
  }
  if (inside(source, join(parent, basename(dest)))) throw new ExportError(`${dest} is inside the adapter folder it would copy`, 'destination');
  const tmp = join(parent, `.${basename(dest)}.export-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    for (const d of plan.dirs) mkdirSync(join(tmp, d));
    for (const [from, rel] of plan.files) copyFile(from, join(tmp, rel));
    if (state === 'empty') rmdirSync(dest); // fails (ENOTEMPTY) if something appeared in it meanwhile
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { dest, files: plan.files.length, bytes: plan.bytes };
}
