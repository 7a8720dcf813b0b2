// The rules between fields (schema/rules.json), evaluated on a schema-valid config: the twin of
// native-worker/riemannlora/rules.py, with the same reading (an absent field is the schema's default), the
// same pointers and the same messages, so the editor, the CLI, the engine and the worker refuse the same
// configs the same way.
import rulesDoc from '../../schema/rules.json';
import { schemaJson, type SchemaError } from './schemas';

interface Rule {
  field: string;
  when?: Record<string, unknown>;
  at_most?: string;
  layer_suffixes?: { prefix: string; count: string };
  message: string;
}

const RULES: readonly Rule[] = (rulesDoc as { rules: Rule[] }).rules;
const MISSING = Symbol('missing');

type Node = { $ref?: string; properties?: Record<string, Node>; default?: unknown };

function deref(root: Node & { $defs?: Record<string, Node> }, node: Node | undefined): Node | undefined {
  let n = node;
  while (n?.$ref?.startsWith('#/$defs/')) n = root.$defs?.[n.$ref.slice('#/$defs/'.length)];
  return n;
}

function schemaDefault(pointer: string): unknown {
  const root = schemaJson('config') as Node;
  let node: Node | undefined = root;
  for (const part of pointer.replace(/^\//, '').split('/')) {
    node = deref(root, node)?.properties?.[part];
    if (!node) return MISSING;
  }
  node = deref(root, node);
  return node && 'default' in node ? node.default : MISSING;
}

export function valueAt(config: unknown, pointer: string): unknown {
  let node: unknown = config;
  for (const part of pointer.replace(/^\//, '').split('/')) {
    if (!node || typeof node !== 'object' || Array.isArray(node) || !(part in node)) return schemaDefault(pointer);
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

const fill = (message: string, values: Record<string, unknown>) => message.replace(/\{(\w+)\}/g, (all, key: string) => (key in values ? String(values[key]) : all));

/** Every rule a schema-valid config breaks, as schema-style errors. */
export function ruleErrors(config: unknown): SchemaError[] {
  const out: SchemaError[] = [];
  for (const rule of RULES) {
    if (Object.entries(rule.when ?? {}).some(([p, v]) => valueAt(config, p) !== v)) continue;
    const value = valueAt(config, rule.field);
    if (value === MISSING) continue;
    if (rule.at_most) {
      const limit = valueAt(config, rule.at_most);
      if (limit !== MISSING && (value as number) > (limit as number)) out.push({ path: rule.field, message: fill(rule.message, { value, limit }) });
    }
    if (rule.layer_suffixes && Array.isArray(value)) {
      const { prefix, count } = rule.layer_suffixes;
      const names = Array.from({ length: valueAt(config, count) as number }, (_, i) => `${prefix}${i}`);
      const unmatched = (value as string[]).filter((t) => !names.some((n) => n === t || n.endsWith(`.${t}`)));
      if (unmatched.length) out.push({ path: rule.field, message: fill(rule.message, { unmatched: unmatched.map((t) => JSON.stringify(t)).join(', '), layers: names.join(', ') }) });
    }
  }
  return out;
}
