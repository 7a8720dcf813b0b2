// The method catalogue (schema/methods.json), read where the engine and the editor need it: every
// initialization and optimizer with its label, family, the method fields it takes, its default learning
// rate and learning-rate search range. native-worker/riemannlora/catalogue.py reads the same file;
// scripts/gen-catalogue.mjs writes the schema's enums and rules and package.json's setting enums from it.
import methods from '../../schema/methods.json';
import type { RunConfig } from './generated/run-config';

export type InitId = RunConfig['method']['init'];
export type OptimizerId = RunConfig['method']['optimizer'];
export type Parametrization = 'manifold' | 'factors';
/** A method field that only some optimizers take. */
export type OptimizerParam = 'momentum' | 'betas' | 'momentum_store' | 'loraplus_ratio' | 'weight_decay';

export interface InitEntry {
  id: InitId;
  label: string;
  summary: string;
  detail: string;
  parametrizations: Parametrization[];
  gradient_based: boolean;
  /** Starts with B·A = 0 (the only start DoRA supports). */
  zero_product: boolean;
}

export interface OptimizerEntry {
  id: OptimizerId;
  label: string;
  family: 'riemannian' | 'factor';
  summary: string;
  detail: string;
  reference: string;
  lr: { default: number; search: [number, number] };
  params: Partial<Record<OptimizerParam, { default?: number | string; minimum?: number }>>;
}

const doc = methods as unknown as {
  task_lr_search: Record<string, { from_default: [number, number] } | string>;
  families: Record<OptimizerEntry['family'], { parametrization: Parametrization; label: string }>;
  inits: InitEntry[];
  optimizers: OptimizerEntry[];
};

export const INITS: readonly InitEntry[] = doc.inits;
export const OPTIMIZERS: readonly OptimizerEntry[] = doc.optimizers;

export function optimizer(id: OptimizerId): OptimizerEntry {
  const found = OPTIMIZERS.find((o) => o.id === id);
  if (!found) throw new RangeError(`unknown optimizer ${JSON.stringify(id)}; known: ${OPTIMIZERS.map((o) => o.id).join(', ')}`);
  return found;
}

export const parametrization = (id: OptimizerId): Parametrization => doc.families[optimizer(id).family].parametrization;
export const isRiemannian = (id: OptimizerId): boolean => parametrization(id) === 'manifold';
/** Whether `method.<param>` means something for this optimizer (the worker drops it with a warning otherwise). */
export const takes = (id: OptimizerId, param: OptimizerParam): boolean => param in optimizer(id).params;
/** Whether `init` can start the parametrization that `opt` trains. */
export const starts = (init: InitId, opt: OptimizerId): boolean => (INITS.find((i) => i.id === init)?.parametrizations ?? []).includes(parametrization(opt));
export const defaultLr = (id: OptimizerId): number => optimizer(id).lr.default;
/**
 * The log-uniform range a learning-rate search draws from: the optimizer's `lr.search`, or, on a task the
 * catalogue scales (`task_lr_search`: a small model that trains at other rates than the LLM defaults),
 * [default × from_default[0], default × from_default[1]].
 */
export function lrSearchRange(id: OptimizerId, taskKind?: string): [number, number] {
  const entry = optimizer(id);
  const scaled = taskKind === undefined || taskKind.startsWith('$') ? undefined : doc.task_lr_search[taskKind];
  if (!scaled || typeof scaled === 'string') return entry.lr.search;
  const [a, b] = scaled.from_default;
  return [Number((entry.lr.default * a).toPrecision(3)), Number((entry.lr.default * b).toPrecision(3))];
}
