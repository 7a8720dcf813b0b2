// The shared JSON Schemas (repository `schema/`) and readable validation errors.
// The Python worker validates against the same files (native-worker/riemannlora/schemas.py) and formats
// errors the same way: a JSON pointer naming the field itself (also for a missing required field or an
// unknown key) and a message that says what is allowed. schema/fixtures holds the shared verdicts.
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import runConfigSchema from '../../schema/run-config.schema.json';
import workerEventSchema from '../../schema/worker-event.schema.json';
import runStatusSchema from '../../schema/run-status.schema.json';
import runCardSchema from '../../schema/run-card.schema.json';
import experimentSchema from '../../schema/experiment.schema.json';
import comparisonSchema from '../../schema/comparison.schema.json';
import { pointerSegment, preview } from './jsonDocument';

export type SchemaName = 'config' | 'event' | 'status' | 'card' | 'experiment' | 'comparison';

export interface SchemaError {
  /** JSON pointer of the field, "/" for the document itself. */
  path: string;
  message: string;
}

const SCHEMAS: Record<SchemaName, object> = {
  config: runConfigSchema,
  event: workerEventSchema,
  status: runStatusSchema,
  card: runCardSchema,
  experiment: experimentSchema,
  comparison: comparisonSchema,
};

// verbose: errors carry the offending value (err.data) and the schema node (err.parentSchema) the messages use.
const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
const compiled = new Map<SchemaName, ValidateFunction>();

export function validator(name: SchemaName): ValidateFunction {
  let fn = compiled.get(name);
  if (!fn) {
    fn = ajv.compile(SCHEMAS[name]);
    compiled.set(name, fn);
  }
  return fn;
}

export const schemaJson = (name: SchemaName): object => SCHEMAS[name];

// Pointers and values in messages are cut (jsonDocument.ts preview/pointerSegment): a 10 MB key or value
// must not become 10 MB of message. ajv's instancePath is already escaped: only its segments are cut.
const shorten = (path: string) => path.split('/').map((seg) => (seg.length > 64 ? `${seg.slice(0, 63)}…` : seg)).join('/');
const at = (base: string, key?: string) => (key === undefined ? shorten(base) || '/' : `${shorten(base)}/${pointerSegment(key)}`);

function describe(err: ErrorObject): SchemaError | undefined {
  const p = err.params as Record<string, unknown>;
  const schema = err.parentSchema as Record<string, unknown> | undefined;
  switch (err.keyword) {
    case 'if':
    case 'allOf':
      return undefined; // reported by the inner errors
    case 'required':
      return { path: at(err.instancePath, String(p.missingProperty)), message: 'is required' };
    case 'additionalProperties': {
      const known = Object.keys((schema?.properties as object | undefined) ?? {}).sort();
      return {
        path: at(err.instancePath, String(p.additionalProperty)),
        message: `unknown key; allowed keys: ${known.join(', ') || 'none'}`,
      };
    }
    case 'enum':
    case 'const': {
      const allowed = err.keyword === 'enum' ? (p.allowedValues as unknown[]) : [p.allowedValue];
      return {
        path: at(err.instancePath),
        message: `${preview(err.data)} is not allowed; allowed values: ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
      };
    }
    case 'not': {
      const why = typeof schema?.description === 'string' ? ` (${schema.description})` : '';
      return { path: at(err.instancePath), message: `is not allowed here${why}` };
    }
    case 'pattern':
    case 'oneOf':
    case 'anyOf':
      if (typeof schema?.description === 'string') {
        return { path: at(err.instancePath), message: `${preview(err.data)} is not valid: expected ${schema.description}` };
      }
      return { path: at(err.instancePath), message: err.message ?? 'is not valid' };
    default:
      return { path: at(err.instancePath), message: `${preview(err.data)} ${err.message ?? 'is not valid'}` };
  }
}

/** Inside a failing oneOf/anyOf with a description, the branch errors add noise: keep the summary. */
function underDescribedChoice(err: ErrorObject, all: ErrorObject[]): boolean {
  return all.some(
    (o) =>
      (o.keyword === 'oneOf' || o.keyword === 'anyOf') &&
      o !== err &&
      typeof (o.parentSchema as Record<string, unknown> | undefined)?.description === 'string' &&
      err.schemaPath.startsWith(o.schemaPath.replace(/\/(oneOf|anyOf)$/, '/$1/')),
  );
}

/** All problems of `data` against schema `name`, sorted by path; one enum message per field (the narrowest). */
export function validate(name: SchemaName, data: unknown): SchemaError[] {
  const fn = validator(name);
  if (fn(data)) return [];
  const raw = fn.errors ?? [];
  const out = new Map<string, SchemaError>();
  const enums = new Map<string, SchemaError>();
  for (const err of raw) {
    if (underDescribedChoice(err, raw)) continue;
    const e = describe(err);
    if (!e) continue;
    if (e.message.includes('allowed values:')) {
      const old = enums.get(e.path);
      const commas = (s: string) => s.split(',').length;
      if (!old || commas(e.message) < commas(old.message)) enums.set(e.path, e);
    } else {
      out.set(`${e.path}\u0000${e.message}`, e);
    }
  }
  return [...out.values(), ...enums.values()].sort((a, b) => (a.path === b.path ? a.message.localeCompare(b.message) : a.path < b.path ? -1 : 1));
}

export const formatErrors = (errors: SchemaError[]): string => errors.map((e) => `${e.path}: ${e.message}`).join('\n');
