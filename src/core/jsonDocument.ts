// Strict JSON documents: what a run config file may be before its schema is even looked at. The twin of
// native-worker/riemannlora/jsondoc.py, with the same rules and the same numbers (`x-document-limits` of
// schema/run-config.schema.json), so that the editor, the CLI and the worker refuse the same files at the
// same place:
//
// - at most max_bytes bytes, UTF-8 (an optional byte-order mark is allowed; a latin-1 byte is refused,
//   never silently turned into U+FFFD);
// - no bare word other than true/false/null outside strings (NaN, Infinity, comments), reported with its
//   line and column;
// - at most max_depth nested arrays/objects, checked by a scan before parsing;
// - every number finite (`1e999` parses to Infinity here and to inf in Python: refused at its pointer).
//
// Messages never echo more than preview() of a value (a 10 MB name must not become 10 MB of output).
import runConfigSchema from '../../schema/run-config.schema.json';

export const PREVIEW_CHARS = 60;

export interface DocumentLimits {
  max_bytes: number;
  max_depth: number;
}

export const documentLimits = (): DocumentLimits => (runConfigSchema as unknown as { 'x-document-limits': DocumentLimits })['x-document-limits'];

export class DocumentError extends Error {
  constructor(
    /** JSON pointer of the offending value, '' for the document itself. */
    readonly pointer: string,
    readonly detail: string,
    /** Where in the text the scan stopped (a bare word, too deep a nesting), for the editor's range. */
    readonly offset?: number,
  ) {
    super(`${pointer || '/'}: ${detail}`);
    this.name = 'DocumentError';
  }
}

const cut = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** A value as JSON, cut to `max` characters; containers are shown as {…} / […]. */
export function preview(value: unknown, max = PREVIEW_CHARS): string {
  if (Array.isArray(value)) return value.length ? '[…]' : '[]';
  if (value && typeof value === 'object') return Object.keys(value).length ? '{…}' : '{}';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return cut(text, max);
}

/** One JSON-pointer segment (RFC 6901 escapes), cut to `max` characters. */
export const pointerSegment = (key: string | number, max = 64): string => cut(String(key).replace(/~/g, '~0').replace(/\//g, '~1'), max);

function lineCol(text: string, pos: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < pos; i = text.indexOf('\n', i + 1)) {
    line += 1;
    start = i + 1;
  }
  return { line, col: pos - start + 1 };
}

const WORDS = ['true', 'false', 'null'];
const PLAIN = new Set(' \t\r\n{}[],:0123456789-+.eE');
const TOKEN = /[^\s,:[\]{}"]+/y;

/** The first bare word that is not true/false/null, or nesting deeper than `maxDepth` (see header). */
export function scan(text: string, maxDepth: number): { pos: number; why: string } | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    } else if (ch === '[' || ch === '{') {
      depth += 1;
      if (depth > maxDepth) return { pos: i, why: `nests deeper than ${maxDepth} levels` };
    } else if (ch === ']' || ch === '}') {
      depth -= 1;
    } else if (!PLAIN.has(ch)) {
      const word = WORDS.find((w) => text.startsWith(w, i));
      if (!word) {
        TOKEN.lastIndex = i;
        const token = TOKEN.exec(text)?.[0] ?? ch;
        return { pos: i, why: `unexpected ${preview(token, 20)} (JSON has no NaN, Infinity or comments)` };
      }
      i += word.length - 1;
    }
  }
  return undefined;
}

/** The pointer of the first non-finite number (iterative; depth is already bounded). */
function nonFinite(doc: unknown): string | undefined {
  const stack: [string, unknown][] = [['', doc]];
  while (stack.length) {
    const [pointer, value] = stack.pop()!;
    if (typeof value === 'number' && !Number.isFinite(value)) return pointer;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([`${pointer}/${i}`, value[i]]);
    } else if (value && typeof value === 'object') {
      const entries = Object.entries(value);
      for (let i = entries.length - 1; i >= 0; i--) stack.push([`${pointer}/${pointerSegment(entries[i]![0])}`, entries[i]![1]]);
    }
  }
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Index of the first byte that starts an invalid UTF-8 sequence (the fatal decoder does not say). */
function firstBadByte(data: Uint8Array): number {
  for (let i = 0; i < data.length; ) {
    const b = data[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (!len || i + len > data.length) return i;
    for (let k = 1; k < len; k++) if ((data[i + k]! & 0xc0) !== 0x80) return i;
    i += len;
  }
  return data.length;
}

/** Bytes to text: UTF-8 or a DocumentError naming the first bad byte's line and column. */
export function decodeUtf8(data: Uint8Array, source = 'the document'): string {
  try {
    return utf8.decode(data);
  } catch {
    const at = firstBadByte(data);
    const before = new TextDecoder('utf-8').decode(data.subarray(0, at));
    const { line, col } = lineCol(before, before.length);
    const byte = (data[at] ?? 0).toString(16).padStart(2, '0');
    throw new DocumentError('', `${source} is not UTF-8: byte 0x${byte} at line ${line}, column ${col} (save the file as UTF-8)`);
  }
}

/** Parse JSON text under the rules above; throws DocumentError. */
export function parseText(text: string, limits: DocumentLimits = documentLimits(), source = 'the document'): unknown {
  const found = scan(text, limits.max_depth);
  if (found) {
    const { line, col } = lineCol(text, found.pos);
    throw new DocumentError('', `${source} is not valid JSON at line ${line}, column ${col}: ${found.why}`, found.pos);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const at = pos ? lineCol(text, Number(pos[1])) : undefined;
    const where = at ? ` at line ${at.line}, column ${at.col}` : '';
    throw new DocumentError('', `${source} is not valid JSON${where}: ${cut(msg.replace(/ in JSON at position \d+.*$/, ''), 200)}`);
  }
  const pointer = nonFinite(doc);
  if (pointer !== undefined) throw new DocumentError(pointer, 'is not a finite number (JSON numbers must be finite)');
  return doc;
}

/** Parse file bytes: size cap, strict UTF-8 (BOM allowed), then parseText. */
export function parseBytes(data: Uint8Array, limits: DocumentLimits = documentLimits(), source = 'the document'): unknown {
  if (data.length > limits.max_bytes) {
    throw new DocumentError('', `${source} is ${data.length.toLocaleString('en-US')} bytes; a run config is at most ${limits.max_bytes.toLocaleString('en-US')}`);
  }
  return parseText(decodeUtf8(data, source), limits, source);
}
