"""The worker's event stream (schema/worker-event.schema.json, protocol version 1).

Every event is one JSON object on one line, appended and flushed to `<run-dir>/events.jsonl` and mirrored
on stdout. JSON has no NaN or infinity: non-finite floats are written as null (a diverged loss reads
`"loss": null`). Flushing each line (no fsync) is what makes a `kill -9` lose nothing already emitted: the
bytes are in the kernel's page cache, which outlives the process.

Only the main process writes (`is_main`); under a future torchrun launch every other rank gets a
writer that drops events, so the training code never needs to ask which rank it is.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

PROTOCOL_VERSION = 1

# JSON escapes C0 controls itself; with ensure_ascii=False, DEL, C1 controls and bidi overrides would
# reach a terminal that shows the stream raw: escaped too (still the same JSON strings).
_UNSAFE = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}

EVENT_TYPES = ("started", "init", "metric", "eval", "checkpoint", "log", "error", "finished")


def json_safe(value: Any) -> Any:
    """Recursively turn NaN/inf into None and tensors/numpy scalars into plain Python numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)  # torch / numpy scalars
    if callable(item):
        return json_safe(item())
    return str(value)


class EventWriter:
    """Appends events to a file and mirrors them on a stream; both flushed per line.

    `path` may be None (config errors before a run directory exists: stdout only). A broken stdout pipe
    (the extension that launched a detached worker went away) stops the mirroring, never the run.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        stream: IO[str] | None = None,
        is_main: bool = True,
        rank: int = 0,
        guard: Callable[[], None] | None = None,
    ):
        self.is_main = is_main
        self.guard = guard  # called before every write to the file (RunDir.check_present)
        self.rank = rank
        self._stream = stream if stream is not None else sys.stdout
        self._file = open(path, "a", encoding="utf-8") if (path is not None and is_main) else None  # noqa: SIM115
        if self._file is not None:
            _end_cut_line(self._file)
        self.counts: dict[str, int] = {}

    def emit(self, type: str, **fields: Any) -> dict[str, Any] | None:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; allowed: {', '.join(EVENT_TYPES)}")
        if not self.is_main:
            return None
        event: dict[str, Any] = {"type": type, "version": PROTOCOL_VERSION, "time": time.time()}
        if self.rank:
            event["rank"] = self.rank
        event.update({k: v for k, v in fields.items() if v is not None or k in ("loss", "grad_norm")})
        event = json_safe(event)
        line = (
            json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":")).translate(_UNSAFE)
            + "\n"
        )
        failure: BaseException | None = None
        if self._file is not None:
            try:
                if self.guard is not None:
                    self.guard()
                self._file.write(line)
                self._file.flush()
            except Exception as exc:  # noqa: BLE001 - mirrored first, raised below
                failure = exc
        if self._stream is not None:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._stream = None
        self.counts[type] = self.counts.get(type, 0) + 1
        if failure is not None:  # the stream has the event even when the file could not take it
            raise failure
        return event

    def log(self, level: str, message: str) -> None:
        self.emit("log", level=level, message=message)

    def detach_file(self) -> None:
        """Stop writing the file (it cannot take more: disk full, folder deleted); the stream goes on."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the buffered bytes it could not flush are already mirrored on the stream
            self._file = None

    def close(self) -> None:
        self.detach_file()


def _end_cut_line(f: IO[str]) -> None:
    """A worker killed mid-write (kill -9) leaves a cut last line: end it, so that the first event this
    process appends starts on a line of its own and every reader skips only the cut fragment."""
    if f.tell() == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(-1, os.SEEK_END)
        if r.read(1) != b"\n":
            f.write("\n")
            f.flush()
