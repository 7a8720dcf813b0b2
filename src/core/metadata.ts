// The run store's metadata files, checked on read: status.json (schema/run-status.schema.json, written by
// the worker), run.json (schema/run-card.schema.json) and experiment.json (schema/experiment.schema.json),
// both written by the engine. A run folder is data that anyone can write (a repository can ship one, a
// disk can corrupt one): a file that is not JSON or does not match its schema is reported with a reason,
// never trusted and never allowed to crash a listing.
import { readFileSync } from 'node:fs';
import type { ExperimentDoc } from './generated/experiment';
import type { RunCard } from './generated/run-card';
import type { RunStatus } from './generated/run-status';
import { formatErrors, validate } from './schemas';
import { printable } from './text';

export type MetadataFile = 'status.json' | 'run.json' | 'experiment.json';

/** A metadata file read from disk: `absent`, `ok` with the document, or `damaged` with the reason. */
export type MetadataRead<T> = { kind: 'absent' } | { kind: 'ok'; doc: T } | { kind: 'damaged'; reason: string };

/** The problems of a document, one per line (empty: valid). */
export function metadataProblems(file: MetadataFile, data: unknown): string[] {
  const schema = ({ 'status.json': 'status', 'run.json': 'card', 'experiment.json': 'experiment' } as const)[file];
  return formatErrors(validate(schema, data))
    .split('\n')
    .filter(Boolean)
    .map((l) => printable(l, 300));
}

/** At most this many problems are named in a reason (the rest are counted). */
const MAX_PROBLEMS = 3;

/**
 * Reads and checks one metadata file. The reason of a damaged file names the file and says what is
 * wrong: "status.json is not valid JSON (…)", "status.json: /state: \"bogus\" is not allowed; …".
 */
export function readMetadata<T>(path: string, file: MetadataFile): MetadataRead<T> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'damaged', reason: `${file} cannot be read (${e.code ?? e.message})` };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { kind: 'damaged', reason: `${file} is not valid JSON (${printable((err as Error).message, 120)})` };
  }
  const found = metadataProblems(file, data);
  if (!found.length) return { kind: 'ok', doc: data as T };
  const shown = found.slice(0, MAX_PROBLEMS).join('; ');
  const more = found.length > MAX_PROBLEMS ? ` (and ${found.length - MAX_PROBLEMS} more)` : '';
  return { kind: 'damaged', reason: `${file}: ${shown}${more}` };
}

export const readStatusFile = (path: string): MetadataRead<RunStatus> => readMetadata<RunStatus>(path, 'status.json');
export const readCardFile = (path: string): MetadataRead<RunCard> => readMetadata<RunCard>(path, 'run.json');
export const readExperimentFile = (path: string): MetadataRead<ExperimentDoc> => readMetadata<ExperimentDoc>(path, 'experiment.json');
