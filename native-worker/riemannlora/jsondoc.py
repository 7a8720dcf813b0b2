"""Strict JSON documents: what a run config file may be before its schema is even looked at.

Python's `json` accepts `NaN`, `Infinity` and `1e999` (an infinite float) and recurses once per nesting
level (a 100,000-deep array is a RecursionError); JavaScript's JSON.parse refuses the first two and turns
the third into Infinity. Both sides therefore apply the same rules, from the same numbers
(`x-document-limits` of schema/run-config.schema.json; src/core/jsonDocument.ts is the TypeScript twin):

- at most `max_bytes` bytes, UTF-8 (an optional byte-order mark is allowed);
- no bare token other than true/false/null outside strings (so no NaN/Infinity), reported with its
  line and column;
- at most `max_depth` nested arrays/objects, checked by a scan before parsing (no recursion);
- every number finite (`1e999` is refused at its JSON pointer).

Problems come back as (pointer, message): the pointer names the field ("" for the document itself) and
messages never echo more than `preview()` of a value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

PREVIEW_CHARS = 60


class DocumentError(ValueError):
    def __init__(self, pointer: str, message: str):
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


def _escaped(code: int) -> bool:
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF  # lone surrogates
        or 0x202A <= code <= 0x202E  # bidirectional overrides and isolates reorder what is shown
        or 0x2066 <= code <= 0x2069
    )


def printable(text: str, max_chars: int = 200) -> str:
    """`text` safe for a terminal (the twin of src/core/text.ts): control characters (C0, DEL, C1), lone
    surrogates and bidi overrides become visible \\uXXXX escapes; cut to `max_chars` with '…'."""
    out = "".join(f"\\u{ord(ch):04x}" if _escaped(ord(ch)) else ch for ch in text[: max_chars + 1])
    return out if len(out) <= max_chars else out[: max_chars - 1] + "…"


def preview(value: Any, max_chars: int = PREVIEW_CHARS) -> str:
    """A value as JSON, cut to `max_chars` (a 10 MB name must not become 10 MB of error message)."""
    if isinstance(value, (dict, list)):
        text = "{…}" if isinstance(value, dict) else "[…]"
        if len(value) == 0:
            text = "{}" if isinstance(value, dict) else "[]"
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def pointer_segment(key: Any, max_chars: int = 64) -> str:
    text = str(key).replace("~", "~0").replace("/", "~1")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


_WORDS = ("true", "false", "null")
_TOKEN = re.compile(r"[^\s,:\[\]{}\"]+")
_PLAIN = set(" \t\r\n{}[],:0123456789-+.eE")


def scan(text: str, max_depth: int) -> tuple[int, str] | None:
    """The first position where `text` breaks the rules a parse would not catch as we want: a bare word
    that is not true/false/null (NaN, Infinity, undefined, a comment...) or nesting deeper than
    `max_depth`. None when neither occurs (the parser reports every other syntax error)."""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return i, f"nests deeper than {max_depth} levels"
        elif ch in "]}":
            depth -= 1
        elif ch not in _PLAIN:
            word = next((w for w in _WORDS if text.startswith(w, i)), None)
            if word is None:
                token = _TOKEN.match(text, i)
                shown = preview(token.group(0) if token else ch, 20)
                return i, f"unexpected {shown} (JSON has no NaN, Infinity or comments)"
            i += len(word) - 1
        i += 1
    return None


def _non_finite(doc: Any) -> str | None:
    """The pointer of the first non-finite number (iterative; depth is already bounded)."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return pointer
        if isinstance(value, dict):
            stack.extend((f"{pointer}/{pointer_segment(k)}", v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))
    return None


def _reject_constant(name: str) -> Any:
    raise _BareConstant(name)


class _BareConstant(Exception):
    pass


def parse(data: bytes, *, max_bytes: int, max_depth: int, source: str = "the document") -> Any:
    """Parse `data` under the rules above; raises DocumentError."""
    if len(data) > max_bytes:
        raise DocumentError(
            "", f"{source} is {len(data):,} bytes; a run config is at most {max_bytes:,} bytes"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", "replace")
        line, col = _line_col(before, len(before))
        raise DocumentError(
            "",
            f"{source} is not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {col} "
            "(save the file as UTF-8)",
        ) from None
    found = scan(text, max_depth)
    if found is not None:
        pos, why = found
        line, col = _line_col(text, pos)
        raise DocumentError("", f"{source} is not valid JSON at line {line}, column {col}: {why}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            "", f"{source} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except (_BareConstant, RecursionError):  # pragma: no cover - scan() finds both first
        raise DocumentError("", f"{source} is not valid JSON (NaN, Infinity or too deep)") from None
    pointer = _non_finite(doc)
    if pointer is not None:
        raise DocumentError(pointer, "is not a finite number (JSON numbers must be finite)")
    return doc
