"""`python -m riemannlora.worker` (also the `riemannlora-worker` console script).

SIGINT/SIGTERM are caught from the first moment, before anything heavy is imported (torch takes a
second or more): a stop that arrives while the worker is still loading becomes a clean stop once it can
checkpoint, with a final status, instead of a process that dies without a word.
"""

from __future__ import annotations

from riemannlora.worker.distributed import leave_process
from riemannlora.worker.signals import StopRequest

EARLY_STOP = StopRequest().install()


def main(argv: list[str] | None = None) -> int:
    from riemannlora.worker.cli import main as cli_main

    return cli_main(argv, stop=EARLY_STOP)


def console_main() -> None:
    """The `riemannlora-worker` console script: ends the way `python -m riemannlora.worker` does."""
    leave_process(main())


if __name__ == "__main__":
    console_main()
