// What the editor underlines in a *.rlora.json beyond the JSON Schema: the document rules
// (jsonDocument.ts: nesting, size, finite numbers, NaN/Infinity) and the rules between fields
// (rules.ts, schema/rules.json), each with the text range of the value it names. The JSON language
// service already checks the syntax and the schema (package.json jsonValidation), so those are not
// repeated; together they give the verdict of `validate` (machine checks aside: paths, device, memory).
import { findNodeAtLocation, parseTree, type Node } from 'jsonc-parser';
import { DocumentError, documentLimits, parseText } from './jsonDocument';
import { ruleErrors } from './rules';
import { validate } from './schemas';

export interface ConfigProblem {
  /** JSON pointer of the field ('' for the document). */
  pointer: string;
  message: string;
  /** Text range to underline: the value at the pointer, else its nearest existing parent. */
  offset: number;
  length: number;
}

const unescape = (segment: string) => segment.replace(/~1/g, '/').replace(/~0/g, '~');

function rangeOf(root: Node | undefined, pointer: string, text: string): { offset: number; length: number } {
  if (!root) return { offset: 0, length: Math.min(text.length, 1) };
  const segments = pointer ? pointer.replace(/^\//, '').split('/').map(unescape) : [];
  for (let n = segments.length; n >= 0; n--) {
    const path = segments.slice(0, n).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const node = findNodeAtLocation(root, path);
    if (node) return n === segments.length || node.type !== 'object' ? { offset: node.offset, length: node.length } : { offset: node.offset, length: 1 };
  }
  return { offset: root.offset, length: 1 };
}

/** The problems of a config document's text that the schema alone does not report. */
export function configProblems(text: string): ConfigProblem[] {
  let doc: unknown;
  try {
    doc = parseText(text, documentLimits(), 'this file');
  } catch (err) {
    if (!(err instanceof DocumentError)) throw err;
    if (err.pointer) return [{ pointer: err.pointer, message: `${err.pointer}: ${err.detail}`, ...rangeOf(parseTree(text), err.pointer, text) }];
    if (err.offset !== undefined) return [{ pointer: '', message: err.detail, offset: err.offset, length: 1 }]; // the scan's find
    return []; // any other syntax error: the JSON language service reports it where it is
  }
  if (validate('config', doc).length) return []; // schema problems: the JSON language service shows them
  const root = parseTree(text);
  return ruleErrors(doc).map((e) => ({ pointer: e.path, message: `${e.path}: ${e.message}`, ...rangeOf(root, e.path, text) }));
}
