#!/usr/bin/env node
// Writes what the method catalogue (schema/methods.json) decides into the files that cannot read it at run
// time: the run-config schema (init and optimizer enums and descriptions, the init x optimizer rule, the
// DoRA rules, loraplus_ratio's bounds) and package.json (the settings' enums and enum descriptions). The
// TypeScript engine (src/core/catalogue.ts) and the worker (riemannlora/catalogue.py) read the catalogue
// itself. Run scripts/gen-types.mjs afterwards: the generated types follow the schema.
//   node scripts/gen-catalogue.mjs            (re)write schema/run-config.schema.json and package.json
//   node scripts/gen-catalogue.mjs --check    exit 1 (naming the stale files) when they differ
//   --root DIR                                work on another checkout (the catalogue's own test)
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const argRoot = process.argv.indexOf('--root');
const ROOT = argRoot > 0 ? resolve(process.argv[argRoot + 1]) : resolve(import.meta.dirname, '..');
const check = process.argv.includes('--check');

const read = (rel) => JSON.parse(readFileSync(join(ROOT, rel), 'utf8'));
const catalogue = read('schema/methods.json');
const inits = catalogue.inits;
const optimizers = catalogue.optimizers;
const family = (o) => catalogue.families[o.family];
const describe = (items) => items.map((i) => `${i.id}: ${i.summary}.`).join(' ');

/** The inits an optimizer can start from: those that can start its family's parametrization. */
const initsFor = (o) => inits.filter((i) => i.parametrizations.includes(family(o).parametrization)).map((i) => i.id);

function schema() {
  const doc = read('schema/run-config.schema.json');
  const method = doc.$defs.method;
  method.properties.init = { enum: inits.map((i) => i.id), description: describe(inits) };
  method.properties.optimizer = { enum: optimizers.map((o) => o.id), description: describe(optimizers) };
  // One rule per family whose optimizers cannot start from every init.
  method.allOf = Object.keys(catalogue.families)
    .map((f) => optimizers.filter((o) => o.family === f))
    .filter((group) => group.length && initsFor(group[0]).length < inits.length)
    .map((group) => ({
      if: { properties: { optimizer: { enum: group.map((o) => o.id) } }, required: ['optimizer'] },
      then: { properties: { init: { enum: initsFor(group[0]) } } },
    }));
  if (!method.allOf.length) delete method.allOf;
  const ratio = optimizers.find((o) => o.params.loraplus_ratio)?.params.loraplus_ratio;
  if (ratio) {
    const rest = { ...method.properties.loraplus_ratio };
    delete rest.exclusiveMinimum; // the catalogue's minimum (>= 1: B's rate is at least A's) replaces it
    method.properties.loraplus_ratio = { ...rest, minimum: ratio.minimum, default: ratio.default };
  }
  const factor = optimizers.filter((o) => family(o).parametrization === 'factors').map((o) => o.id);
  const zeroProduct = inits.filter((i) => i.zero_product).map((i) => i.id);
  doc.allOf = [
    {
      description: 'DoRA is a factor parametrization that starts from B·A = 0: Riemannian optimizers cannot train it, and a start away from zero needs a frozen offset that its norm does not support.',
      if: { properties: { adapter: { properties: { dora: { const: true } }, required: ['dora'] } }, required: ['adapter'] },
      then: { properties: { method: { properties: { optimizer: { enum: factor }, init: { enum: zeroProduct } } } } },
    },
  ];
  return doc;
}

function manifest() {
  const doc = read('package.json');
  const props = doc.contributes.configuration.properties;
  const init = props['riemannlora.defaults.init'];
  Object.assign(init, { enum: inits.map((i) => i.id), enumDescriptions: inits.map((i) => `${i.detail}.`) });
  const opt = props['riemannlora.defaults.optimizer'];
  Object.assign(opt, { enum: optimizers.map((o) => o.id), enumDescriptions: optimizers.map((o) => `${o.detail}.`) });
  return doc;
}

const targets = [
  ['schema/run-config.schema.json', schema()],
  ['package.json', manifest()],
];
const stale = [];
for (const [rel, doc] of targets) {
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  const path = join(ROOT, rel);
  if (readFileSync(path, 'utf8') === text) continue;
  if (check) stale.push(rel);
  else writeFileSync(path, text);
}
if (check && stale.length) {
  console.error(`gen-catalogue: out of date with schema/methods.json: ${stale.join(', ')}\nrun: node scripts/gen-catalogue.mjs && node scripts/gen-types.mjs`);
  process.exit(1);
}
console.log(check ? 'gen-catalogue: schema and package.json match schema/methods.json' : 'gen-catalogue: schema and package.json written from schema/methods.json');
