// Run configs (docs/architecture.md "Run config"): load a JSON file, validate it against
// schema/run-config.schema.json and the rules between fields (schema/rules.json) with errors that name the
// field and the allowed values, and fill in the schema's defaults.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { RunConfig } from './generated/run-config';
import { DocumentError, documentLimits, parseBytes, parseText } from './jsonDocument';
import { ruleErrors } from './rules';
import { formatErrors, schemaJson, validate, type SchemaError } from './schemas';

export type { RunConfig } from './generated/run-config';

export class ConfigError extends Error {
  constructor(
    readonly errors: SchemaError[],
    readonly source?: string,
  ) {
    super(`${source ? `${source}: ` : ''}invalid run config:\n${formatErrors(errors)}`);
    this.name = 'ConfigError';
  }
}

/** The problems of a config document ([] when valid): the schema, then the rules between fields. */
export function configErrors(data: unknown): SchemaError[] {
  const errors = validate('config', data);
  // The rules between fields (schema/rules.json) are read on a schema-valid config only, like the worker.
  return errors.length ? errors : ruleErrors(data);
}

/** Validates and returns the config typed; throws ConfigError listing every problem. */
export function checkConfig(data: unknown, source?: string): RunConfig {
  const errors = configErrors(data);
  if (errors.length) throw new ConfigError(errors, source);
  return data as RunConfig;
}

function parseDocument(parse: () => unknown, source?: string): unknown {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DocumentError) throw new ConfigError([{ path: err.pointer || '/', message: err.detail }], source);
    throw err;
  }
}

/**
 * Parses JSON text under the document rules (src/core/jsonDocument.ts: no NaN/Infinity, bounded nesting,
 * finite numbers) and validates it; a syntax error becomes a ConfigError at "/" with the line and column.
 */
export function parseConfigText(text: string, source?: string): RunConfig {
  return checked(parseDocument(() => parseText(text, documentLimits(), 'the config file'), source), source);
}

function checked(data: unknown, source?: string): RunConfig {
  const config = checkConfig(data, source);
  return source && isAbsolute(source) ? resolveTaskPaths(config, dirname(source)) : config;
}

/**
 * Makes the local paths of a config (task.model, task.data, task.eval_data) absolute, relative to the
 * folder of the config file that names them: the worker runs with the run directory as its current
 * folder, so `./data/train.jsonl` in `experiments/x.rlora.json` must not be looked up there. A value that is
 * neither explicitly relative (`./`, `../`) nor an existing path stays as it is (a hub id such as
 * `org/model`).
 */
export function resolveTaskPaths(config: RunConfig, baseDir: string): RunConfig {
  const task = { ...config.task } as Record<string, unknown>;
  for (const key of ['model', 'data', 'eval_data']) {
    const value = task[key];
    if (typeof value !== 'string' || isAbsolute(value)) continue;
    const candidate = resolve(baseDir, value);
    if (/^\.{1,2}[\\/]/.test(value) || existsSync(candidate)) task[key] = candidate;
  }
  return { ...config, task: task as RunConfig['task'] };
}

/** Reads and validates a config file (its bytes: size cap and strict UTF-8 first). */
export function loadConfig(path: string): RunConfig {
  const limits = documentLimits();
  let data: Buffer;
  try {
    const size = statSync(path).size;
    if (size > limits.max_bytes) {
      throw new ConfigError([{ path: '/', message: `the config file is ${size.toLocaleString('en-US')} bytes; a run config is at most ${limits.max_bytes.toLocaleString('en-US')}` }], path);
    }
    data = readFileSync(path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ path: '/', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }], path);
  }
  // Absolute, so that relative task paths are resolved against the file's folder even when the file
  // was named relative to the current folder (`--config examples/synthetic.rlora.json`).
  return checked(parseDocument(() => parseBytes(data, limits, 'the config file'), path), resolve(path));
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type SchemaNode = { $ref?: string; properties?: Record<string, SchemaNode>; default?: Json; type?: unknown };

function resolveRef(root: SchemaNode & { $defs?: Record<string, SchemaNode> }, node: SchemaNode): SchemaNode {
  let n = node;
  while (n.$ref?.startsWith('#/$defs/')) n = root.$defs?.[n.$ref.slice('#/$defs/'.length)] ?? {};
  return n;
}

function fill(root: SchemaNode, node: SchemaNode, value: Record<string, unknown>): void {
  for (const [key, sub0] of Object.entries(node.properties ?? {})) {
    const sub = resolveRef(root, sub0);
    if (value[key] === undefined && sub.default !== undefined) value[key] = structuredClone(sub.default);
    const v = value[key];
    if (v && typeof v === 'object' && !Array.isArray(v) && sub.properties) fill(root, sub, v as Record<string, unknown>);
  }
}

/**
 * A copy of a valid config with every schema default filled in for the groups it has (an absent optional
 * group such as `output` is added when the schema gives its fields defaults). `method.lr` stays absent
 * when not given: the default learning rate is the optimizer's own and the worker knows it.
 */
export function withDefaults(config: RunConfig): RunConfig {
  const root = schemaJson('config') as SchemaNode;
  const out = structuredClone(config) as Record<string, unknown>;
  if (out.output === undefined) out.output = {};
  fill(root, root, out);
  return out as RunConfig;
}
