"""Command line of the worker (docs/architecture.md, "Worker command line").

    python -m riemannlora.worker run --config FILE --run-dir DIR [--resume]
    python -m riemannlora.worker validate --config FILE
    python -m riemannlora.worker doctor

    python -m riemannlora.worker validate --config A --config B ...   (one JSON line per config)

Exit codes: 0 completed or stopped (or valid); 1 failed; 2 bad config or command line, or a run directory
that already holds a run or was completed (nothing is written then); 3 diverged; 4 the disk is full,
read-only or over quota (error kind `disk`); 75 another worker holds the run directory (nothing is
written there, not even to its worker.log); 130 interrupted twice.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m riemannlora.worker",
        description="RiemannLoRA Lab worker: trains one run and streams JSON-lines events.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,validate,doctor}")
    run = sub.add_parser("run", help="train one run into a run directory")
    run.add_argument("--config", required=True, help="run config JSON (schema/run-config.schema.json)")
    run.add_argument("--run-dir", required=True, help="run directory (created if missing)")
    run.add_argument(
        "--resume", action="store_true", help="continue from the run directory's last checkpoint"
    )
    val = sub.add_parser("validate", help="check run configs; exit 0 only when all are valid")
    val.add_argument("--config", required=True, action="append", help="a run config (repeatable)")
    sub.add_parser("doctor", help="report Python, torch, devices and optional packages as JSON")
    return parser


def main(argv: list[str] | None = None, stop=None) -> int:
    """`stop`: the StopRequest already catching signals (__main__ installs it before heavy imports)."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from riemannlora.worker.run import run_command

        return run_command(args.config, args.run_dir, resume=args.resume, redirect_stderr=True, stop=stop)
    if args.command == "validate":
        from riemannlora.worker.validate import validate_command

        codes = [validate_command(path) for path in args.config]
        return max(codes)
    from riemannlora.worker.doctor import doctor

    sys.stdout.write(json.dumps(doctor(), indent=2) + "\n")
    return 0
