// Text from run folders and configs (labels, names, messages) printed to a terminal or a log: control
// characters become visible escapes, so a name cannot carry an escape sequence (colours, cursor moves,
// title changes, hyperlinks) to the user's terminal.

/** Default length limit of printable(): long values are cut, not echoed whole. */
export const PRINTABLE_MAX = 200;

function escapeOf(cp: number): string | null {
  if (cp <= 0x1f || cp === 0x7f || (cp >= 0x80 && cp <= 0x9f)) return `\\u${cp.toString(16).padStart(4, '0')}`;
  // lone surrogates (not valid text) and the bidirectional overrides/isolates, which reorder what is shown
  if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
    return `\\u${cp.toString(16).padStart(4, '0')}`;
  }
  return null;
}

/**
 * `text` with every C0 control (U+0000–U+001F, newline and tab included), DEL, C1 control
 * (U+0080–U+009F), lone surrogate and bidirectional override replaced by a visible `\uXXXX`; at most
 * `max` characters (code points) in all: a longer result is cut at a character boundary, never inside an
 * escape, and ends with '…'. `max` ≤ 0 or not finite: no limit.
 */
export function printable(text: string, max: number = PRINTABLE_MAX): string {
  const limit = Number.isFinite(max) && max > 0 ? Math.floor(max) : Infinity;
  let out = '';
  let width = 0; // code points in out
  let cut: string | null = null; // the longest prefix that leaves room for '…'
  for (const ch of String(text)) {
    const piece = escapeOf(ch.codePointAt(0) ?? 0) ?? ch;
    const w = piece === ch ? 1 : piece.length;
    if (cut === null && width + w > limit - 1) cut = out;
    if (width + w > limit) return `${cut ?? out}…`;
    out += piece;
    width += w;
  }
  return out;
}
