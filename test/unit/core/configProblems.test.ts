// What the editor underlines beyond the schema (src/core/configProblems.ts): rules between fields and the
// document rules, each at the text of the value it names.
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../../src/core/configProblems';

const base = {
  task: { kind: 'synthetic-lowrank', synthetic: { width: 8 } },
  adapter: { rank: 2 },
  method: { init: 'lora', optimizer: 'adamw' },
  train: { steps: 4 },
};
const at = (text: string, p: { offset: number; length: number }) => text.slice(p.offset, p.offset + p.length);

describe('config problems for the editor', () => {
  it('a rule between fields is underlined at its value, with the message of validate', () => {
    const text = JSON.stringify({ ...base, adapter: { rank: 16 } }, null, 2);
    const problems = configProblems(text);
    expect(problems.map((p) => p.pointer)).toEqual(['/adapter/rank']);
    expect(problems[0]!.message).toBe('/adapter/rank: must be <= the synthetic width (8) (got 16)');
    expect(at(text, problems[0]!)).toBe('16');
  });

  it('a list entry and a nested field are found; valid configs and schema errors give nothing', () => {
    const text = JSON.stringify({ ...base, adapter: { rank: 2, target_modules: ['layers.0', 'q_proj'] }, method: { ...base.method, warmup_steps: 9 } });
    expect(configProblems(text).map((p) => [p.pointer, at(text, p)])).toEqual([
      ['/adapter/target_modules', '["layers.0","q_proj"]'],
      ['/method/warmup_steps', '9'],
    ]);
    expect(configProblems(JSON.stringify(base))).toEqual([]);
    expect(configProblems(JSON.stringify({ ...base, adapter: { rank: 0 } }))).toEqual([]); // the JSON language service shows it
  });

  it('the document rules: deep nesting and a non-finite number (plain syntax errors are the JSON service\'s)', () => {
    const deep = `{"name": ${'['.repeat(20)}${']'.repeat(20)}}`;
    const [nest] = configProblems(deep);
    expect(nest!.message).toMatch(/nests deeper than 16 levels/);
    expect(nest!.offset).toBe(deep.indexOf('[') + 15); // the object is level 1: the 16th bracket opens level 17
    const inf = JSON.stringify(base).replace('"steps":4', '"steps":4,"x":1').replace('"width":8', '"width":1e999');
    expect(configProblems(inf).map((p) => [p.pointer, at(inf, p)])).toEqual([['/task/synthetic/width', '1e999']]);
    expect(configProblems('{"task": ')).toEqual([]);
  });
});
