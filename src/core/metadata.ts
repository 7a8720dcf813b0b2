// The run store's metadata files, checked on read: status.json (schema/run-status.schema.json, written by
// the worker), run.json (schema/run-card.schema.json) and experiment.json (schema/experiment.schema.json),
// both written by the engine. A run folder is data that anyone can write (a repository can ship one, a
// disk can corrupt one): a file that is not JSON or does not match its schema is reported with a reason,
// never trusted and never allowed to crash a listing.
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import experimentSchema from '../../schema/experiment.schema.json';
import runCardSchema from '../../schema/run-card.schema.json';
import type { ExperimentDoc } from './generated/experiment';
import type { RunCard } from './generated/run-card';
import type { RunStatus } from './generated/run-status';
import { formatErrors, validate } from './schemas';
import { printable } from './text';

export type MetadataFile = 'status.json' | 'run.json' | 'experiment.json';

/** A metadata file read from disk: `absent`, `ok` with the document, or `damaged` with the reason. */
export type MetadataRead<T> = { kind: 'absent' } | { kind: 'ok'; doc: T } | { kind: 'damaged'; reason: string };

const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
let compiled: { card: ValidateFunction; experiment: ValidateFunction } | undefined;
const validators = () => (compiled ??= { card: ajv.compile(runCardSchema), experiment: ajv.compile(experimentSchema) });

/** One readable line per problem: "<pointer>: <what is wrong>", like schemas.ts (values cut to 80 characters). */
function describe(err: ErrorObject): string | undefined {
  const p = err.params as Record<string, unknown>;
  const schema = err.parentSchema as Record<string, unknown> | undefined;
  const where = err.instancePath || '/';
  const value = () => printable(JSON.stringify(err.data) ?? String(err.data), 80);
  switch (err.keyword) {
    case 'if':
    case 'allOf':
      return undefined;
    case 'required':
      return `${err.instancePath}/${String(p.missingProperty)}: is required`;
    case 'const':
      return `${where}: ${value()} is not allowed; allowed values: ${JSON.stringify(p.allowedValue)}`;
    case 'enum':
      return `${where}: ${value()} is not allowed; allowed values: ${(p.allowedValues as unknown[]).map((a) => JSON.stringify(a)).join(', ')}`;
    case 'oneOf':
    case 'anyOf':
    case 'pattern':
      if (typeof schema?.description === 'string') return `${where}: ${value()} is not valid: expected ${schema.description}`;
      return `${where}: ${value()} ${err.message ?? 'is not valid'}`;
    default:
      return `${where}: ${value()} ${err.message ?? 'is not valid'}`;
  }
}

/** Inside a failing oneOf that has a description, the branches' own errors are noise. */
function underDescribedChoice(err: ErrorObject, all: ErrorObject[]): boolean {
  return all.some(
    (o) =>
      (o.keyword === 'oneOf' || o.keyword === 'anyOf') &&
      o !== err &&
      typeof (o.parentSchema as Record<string, unknown> | undefined)?.description === 'string' &&
      err.schemaPath.startsWith(o.schemaPath.replace(/\/(oneOf|anyOf)$/, '/$1/')),
  );
}

function problems(fn: ValidateFunction, data: unknown): string[] {
  if (fn(data)) return [];
  const all = fn.errors ?? [];
  const out = new Set<string>();
  for (const err of all) {
    if (underDescribedChoice(err, all)) continue;
    const line = describe(err);
    if (line) out.add(line);
  }
  return [...out].sort();
}

/** The problems of a document, one per line (empty: valid). */
export function metadataProblems(file: MetadataFile, data: unknown): string[] {
  if (file === 'status.json') {
    return formatErrors(validate('status', data))
      .split('\n')
      .filter(Boolean)
      .map((l) => printable(l, 300));
  }
  return problems(file === 'run.json' ? validators().card : validators().experiment, data);
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
