"""Graceful stop: SIGINT / SIGTERM ask the loop to finish the current step, checkpoint and exit 0.

The handler only sets a flag that the training loop reads between steps, so a step is never cut in half
(the checkpoint then holds a consistent model + optimizer + data position). A second signal while stopping
raises KeyboardInterrupt, for a user who really wants out now; the last checkpoint stays valid.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, name: str = "request") -> None:
        self.signal_name = self.signal_name or name
        self._event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)

    def install(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread (embedded use)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
