"""The run directory (docs/architecture.md, "Run directory") and its status.json.

    <run-dir>/config.json     resolved config (defaults applied), immutable once the run started
    <run-dir>/events.jsonl    append-only event stream
    <run-dir>/status.json     state, pid, host, times, step, exit code, last error (atomic rewrites)
    <run-dir>/worker.log      the worker's stderr and Python logging (tracebacks go here, not to stdout)
    <run-dir>/checkpoints/    step-NNNNNNNN/ folders, newest `keep_checkpoints` kept
    <run-dir>/adapter/        the final adapter in PEFT format

status.json is rewritten atomically (temp file in the same folder, fsync, rename), so a reader sees the old
or the new document, never half of one. A worker killed with SIGKILL leaves `state: running` with its pid:
the engine notices that the pid is gone and reports the run as failed.

One writer per run directory: before writing anything, a worker takes an exclusive `flock` on the
directory itself (no lock file to leave behind) and holds it for its whole life; the kernel drops it when
the process dies, even under kill -9. A second worker aimed at the same directory is refused and writes
nothing there. The same open directory tells the worker when its folder was deleted or replaced under it
(`check_present`): it fails instead of silently re-creating the folder.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from riemannlora.config import apply_defaults, config_differences
from riemannlora.errors import WorkerError
from riemannlora.tasks.registry import task_default_overrides

STATUS_VERSION = 1


def atomic_write_json(path: Path, document: Any) -> None:
    """Never creates the folder: a run directory deleted under a running worker must stay deleted."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


try:  # POSIX; elsewhere the recorded-pid check below is the only guard
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunDirError(Exception):
    """The run directory cannot be used as asked (in use, already started, or a different config on
    --resume)."""


class RunDirBusy(RunDirError):
    """Another live worker holds the run directory's lock (exit code EXIT_BUSY)."""


class RunDirGone(WorkerError):
    """The run directory was deleted or replaced while this worker was writing it."""

    def __init__(self, path: Path, why: str):
        super().__init__(
            "missing-path",
            f"the run directory {path} {why} while the run was going; nothing more was written",
            "start the run again in a new run directory (a deleted folder is not re-created)",
        )
        self.path = path


class RunDir:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().absolute()
        self._fd: int | None = None  # the open, flock-ed directory while this process owns it

    # one writer
    def try_lock(self) -> bool:
        """Take the directory's exclusive lock (kept until release() or exit); False when another
        process holds it. The directory must exist."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def check_present(self) -> None:
        """Raise RunDirGone when the directory this worker locked was deleted, moved or replaced."""
        if self._fd is None:
            return
        held = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise RunDirGone(self.path, "was deleted") from None
        if held.st_nlink == 0 or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise RunDirGone(self.path, "was deleted or replaced")

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "worker.log"

    @property
    def checkpoints_path(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_path(self) -> Path:
        return self.path / "adapter"

    def read_status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def has_started(self) -> bool:
        """True when a worker already ran here (events written, or a state beyond `queued`)."""
        if self.events_path.exists() and self.events_path.stat().st_size > 0:
            return True
        status = self.read_status()
        return bool(status) and status.get("state") not in (None, "queued")

    def _refuse_if_live(self) -> None:
        """Two workers must never write one run directory: refuse while the recorded worker is alive."""
        status = self.read_status() or {}
        pid = status.get("pid")
        if status.get("state") != "running" or not isinstance(pid, int) or pid == os.getpid():
            return
        if status.get("host") not in (None, socket.gethostname()):
            return  # a pid on another host says nothing here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # the recorded worker is gone (killed): resuming is fine
        except PermissionError:
            pass  # exists, owned by someone else
        raise RunDirError(
            f"run directory {self.path} is in use by a running worker (pid {pid}); stop it first "
            "(SIGINT makes it checkpoint and exit), then --resume"
        )

    def prepare(self, resolved_config: dict[str, Any], *, resume: bool) -> None:
        """Create the folder, lock it and pin config.json, refusing to mix two different configs in one
        run. Every refusal happens before anything is written into the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.try_lock():
            raise RunDirBusy(
                f"run directory {self.path} is in use by another worker (it holds the directory's lock); "
                "wait for it to end or stop it, then --resume"
            )
        if fcntl is None:  # without the lock, the recorded pid is the guard (with it, the lock is)
            self._refuse_if_live()
        started = self.has_started()
        existing = None
        if self.config_path.exists():
            try:
                existing = json.loads(self.config_path.read_text(encoding="utf-8"))
            except ValueError:
                existing = None
        if started and not resume:
            raise RunDirError(
                f"run directory {self.path} already holds a run; pass --resume to continue it, or choose "
                "a new run directory"
            )
        if started and existing is not None:
            # A field that a newer worker added has its default in a config written before it existed
            # (e.g. task.heldout): resolve the stored config the same way before comparing.
            diffs = config_differences(_resolved(existing), resolved_config)
            if diffs:
                raise RunDirError(
                    f"--resume with a config that differs from {self.config_path} at "
                    f"{', '.join(diffs[:8])}{' ...' if len(diffs) > 8 else ''}; a run's config is immutable "
                    "once started: resume with the same config, or start a new run directory"
                )
        if started and resume and (self.read_status() or {}).get("state") == "completed":
            raise RunDirError(
                f"run directory {self.path} holds a completed run: there is nothing to resume; start a new "
                "run directory to train again"
            )
        self.checkpoints_path.mkdir(exist_ok=True)
        if existing != resolved_config:
            atomic_write_json(self.config_path, resolved_config)


class StatusFile:
    """status.json writer (schema/run-status.schema.json); every call rewrites the whole document."""

    def __init__(self, path: Path, *, enabled: bool = True, guard: Callable[[], None] | None = None):
        self.path = path
        self.enabled = enabled
        self.guard = guard  # called before every write (RunDir.check_present)
        self.doc: dict[str, Any] = {
            "version": STATUS_VERSION,
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.time(),
            "ended_at": None,
            "updated_at": time.time(),
            "step": 0,
            "exit_code": None,
            "last_error": None,
        }

    def update(self, **fields: Any) -> None:
        self.doc.update(fields)
        self.doc["updated_at"] = time.time()
        if self.enabled:
            if self.guard is not None:
                self.guard()
            atomic_write_json(self.path, self.doc)

    def finish(self, state: str, exit_code: int, last_error: dict[str, Any] | None = None) -> None:
        self.update(state=state, exit_code=exit_code, ended_at=time.time(), last_error=last_error)


def _resolved(config: Any) -> Any:
    """The stored config with today's defaults filled in; as stored when it cannot be resolved."""
    try:
        return apply_defaults(config, task_default_overrides(config["task"]["kind"]))
    except Exception:  # noqa: BLE001 - a stored config this worker cannot read is compared as it is
        return config
