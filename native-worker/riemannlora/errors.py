"""Failures the worker explains: every exception becomes an `error` event with a kind, a message and a hint.

Kinds (schema/worker-event.schema.json): config, missing-path, missing-package, out-of-memory, disk,
diverged, network, interrupted, internal. The rule is that a user reading only the event (no traceback;
that goes to worker.log) knows what happened and what to change.
"""

from __future__ import annotations

import errno
from typing import Any

# optional package -> pip requirement (pyproject's optional dependencies)
PIP_NAMES = {
    "transformers": "transformers>=4.40",
    "peft": "peft>=0.11",
    "tokenizers": "tokenizers>=0.15",
    "datasets": "datasets>=2.18",
    "safetensors": "safetensors>=0.4",
    "psutil": "psutil",
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DIVERGED = 3
EXIT_DISK = 4  # the disk is full, read-only or over quota (kind `disk`)

# errno values that mean the disk, not the run, is the problem
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}
# how torch.save reports a failed write (its zip writer raises RuntimeError, not OSError)
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed", "file write failed", "unexpected pos")
EXIT_BUSY = 75  # another worker holds the run directory (sysexits' EX_TEMPFAIL: try again once it ends)
EXIT_INTERRUPTED = 130


def pip_command(package: str) -> str:
    return f'pip install "{PIP_NAMES.get(package, package)}"'


class WorkerError(Exception):
    """An error the worker already knows how to explain."""

    def __init__(self, kind: str, message: str, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint
        self.field = field

    def event_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.field is not None:
            out["field"] = self.field
        return out


class MissingPackage(WorkerError):
    def __init__(self, package: str, needed_for: str):
        super().__init__(
            "missing-package",
            f"the optional package '{package}' is not installed; it is needed for {needed_for}",
            f"install it into the worker's Python environment: {pip_command(package)}",
        )
        self.package = package


def require(package: str, needed_for: str):
    """Import an optional package or raise MissingPackage with the pip command."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        if exc.name not in (None, package) and not (exc.name or "").startswith(package):
            raise  # a broken install of something else: let it surface as internal with the traceback
        raise MissingPackage(package, needed_for) from exc


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # noqa: BLE001 - torch missing or a stripped build: fall back to the text
        pass
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or isinstance(exc, MemoryError) or "mps backend out of memory" in text
    )


def _disk_error(exc: BaseException) -> WorkerError | None:
    """ENOSPC / EROFS / EDQUOT anywhere in the exception's chain, or torch's failed zip write."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:
            where = f" ({seen.filename})" if seen.filename else ""
            return WorkerError(
                "disk",
                f"cannot write to disk{where}: {seen.strerror or seen}",
                "free space on (or make writable) the disk that holds the run directory, then --resume: "
                "the last complete checkpoint is intact",
            )
        if isinstance(seen, RuntimeError) and any(t in str(seen) for t in _TORCH_WRITE_FAILURES):
            return WorkerError(
                "disk",
                f"cannot write a checkpoint: {str(seen).splitlines()[0][:300]}",
                "the disk that holds the run directory is probably full or read-only; free space, then "
                "--resume: the last complete checkpoint is intact",
            )
        seen = seen.__cause__ or seen.__context__
    return None


def explain(exc: BaseException, config: dict[str, Any] | None = None) -> WorkerError:
    """Map any exception to a WorkerError with a hint."""
    if isinstance(exc, WorkerError):
        return exc
    train = (config or {}).get("train", {})
    if _is_oom(exc):
        batch = train.get("batch_size")
        accum = train.get("grad_accum", 1)
        hint = "lower train.batch_size"
        if batch:
            new_batch = max(1, batch // 2)
            hint = (
                f"lower train.batch_size (now {batch}, try {new_batch}) and raise train.grad_accum "
                f"(now {accum}, try {accum * max(1, batch // new_batch)}) to keep the same effective batch"
            )
        if (config or {}).get("task", {}).get("seq_len"):
            hint += f", or lower task.seq_len (now {config['task']['seq_len']})"
        return WorkerError("out-of-memory", f"out of memory: {str(exc).splitlines()[0][:300]}", hint)
    disk = _disk_error(exc)
    if disk is not None:
        return disk
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        return MissingPackage(top, "this run")
    if isinstance(exc, KeyboardInterrupt):
        return WorkerError(
            "interrupted",
            "interrupted a second time; stopped without a final checkpoint",
            "--resume continues from the last checkpoint",
        )
    if isinstance(exc, FileNotFoundError):
        return WorkerError(
            "missing-path", f"file not found: {exc.filename or exc}", "check the path in the run config"
        )
    message = f"{type(exc).__name__}: {exc}".strip()
    return WorkerError(
        "internal",
        message[:2000],
        "this is a bug or an unsupported setup; the traceback is in worker.log in the run directory",
    )
