"""`validate --config FILE`: every problem of a run config with its field; exit 0 only when valid.

Prints one JSON object on stdout: {"valid": bool, "problems": [{"field", "message", "kind"}...],
"config": <resolved config when valid>}, and a human-readable line per problem on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import IO

from riemannlora.config import ConfigError, apply_defaults, load_config_file, validate_config
from riemannlora.errors import EXIT_CONFIG, EXIT_OK
from riemannlora.jsondoc import printable


def validate_command(config_path: str, stdout: IO[str] | None = None) -> int:
    stdout = stdout if stdout is not None else sys.stdout
    try:
        raw = load_config_file(config_path)
        problems = validate_config(raw, deep=True)
    except ConfigError as exc:
        problems = exc.problems
        raw = None
    result: dict = {"valid": not problems, "problems": [p.as_dict() for p in problems]}
    if not problems:
        from riemannlora.tasks.registry import task_default_overrides

        result["config"] = apply_defaults(raw, task_default_overrides(raw["task"]["kind"]))
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    for p in problems:
        print(f"{printable(str(config_path), 500)}: {printable(p.text(), 1000)}", file=sys.stderr)
    return EXIT_OK if not problems else EXIT_CONFIG
