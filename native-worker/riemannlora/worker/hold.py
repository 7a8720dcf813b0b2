"""A hold point for tests: `RIEMANNLORA_HOLD="STEP:FILE"` keeps a run at step STEP until FILE exists.

End-to-end tests need a run that is still going when something else happens (a window reload, a stop),
whatever the speed of the machine. Sleeping or pacing would make the test depend on time; a hold point
makes it depend on a condition: the worker finishes step STEP (its metric, eval and checkpoint are
written), then waits before step STEP + 1 until the test creates FILE. A stop request ends the wait, and
the run then stops as usual. The variable is read once at start; unset, the loop's hook does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from riemannlora.worker.signals import StopRequest

ENV = "RIEMANNLORA_HOLD"
POLL_S = 0.05


class HoldSpecError(ValueError):
    pass


@dataclass(frozen=True)
class HoldPoint:
    step: int
    release_file: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HoldPoint | None:
        text = (os.environ if environ is None else environ).get(ENV, "").strip()
        if not text:
            return None
        step, sep, path = text.partition(":")
        if not sep or not step.strip().isdigit() or not path.strip():
            raise HoldSpecError(
                f"{ENV}={text!r} is not STEP:FILE (e.g. 100:/tmp/release): unset it, or give a step "
                "number and the file whose creation releases the run"
            )
        return cls(int(step), Path(path.strip()))

    def wait(self, step: int, *, stop: StopRequest, log: Callable[[str, str], None]) -> None:
        """Before the step after `step`: hold while this is the hold step and the file is missing."""
        if step != self.step or self.release_file.exists():
            return
        log("info", f"holding after step {step} until {self.release_file} exists ({ENV})")
        while not self.release_file.exists() and not stop.requested:
            time.sleep(POLL_S)
        log("info", f"released at step {step}")
