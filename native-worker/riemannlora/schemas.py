"""The shared JSON Schemas (repository `schema/`) and readable validation errors.

The schemas are the single source of truth for the run config, the worker's events and status.json;
the TypeScript engine validates against the same files (src/core/schemas.ts) and both sides format
errors the same way: a JSON pointer that names the field itself (also for a missing required field or
an unknown key), and a message that says what is allowed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILES = {
    "config": "run-config.schema.json",
    "event": "worker-event.schema.json",
    "status": "run-status.schema.json",
}


def schema_dir() -> Path:
    """Where the schemas live: $RIEMANNLORA_SCHEMA_DIR, the repo/VSIX layout, or the installed copy."""
    env = os.environ.get("RIEMANNLORA_SCHEMA_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here.parent.parent / "schema", here / "_schema"]
    for c in candidates:
        if (c / SCHEMA_FILES["config"]).is_file():
            return c
    raise FileNotFoundError(
        "RiemannLoRA schemas not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "): set RIEMANNLORA_SCHEMA_DIR to the folder holding run-config.schema.json"
    )


@cache
def load_schema(name: str) -> dict[str, Any]:
    if name not in SCHEMA_FILES:
        raise KeyError(f"unknown schema {name!r}; known: {sorted(SCHEMA_FILES)}")
    return json.loads((schema_dir() / SCHEMA_FILES[name]).read_text(encoding="utf-8"))


@cache
def _validator(name: str):
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@dataclass(frozen=True)
class SchemaError:
    path: str  # JSON pointer of the field, "/" for the document itself
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _pointer(parts) -> str:
    from riemannlora.jsondoc import pointer_segment

    return "/" + "/".join(pointer_segment(p) for p in parts) if parts else "/"


def _describe(err) -> list[SchemaError]:
    """Turn one jsonschema error into messages that name the field itself."""
    from riemannlora.jsondoc import preview

    parts = list(err.absolute_path)
    kind = err.validator
    inst = err.instance
    shown = preview(inst)
    if kind == "required" and isinstance(inst, dict):
        return [
            SchemaError(_pointer(parts + [p]), "is required") for p in err.validator_value if p not in inst
        ]
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(inst, dict):
        known = set(err.schema.get("properties", {}))
        extras = [k for k in inst if k not in known]
        allowed = ", ".join(sorted(known)) or "none"
        return [SchemaError(_pointer(parts + [k]), f"unknown key; allowed keys: {allowed}") for k in extras]
    if kind in ("enum", "const"):
        allowed = err.validator_value if kind == "enum" else [err.validator_value]
        allowed_text = ", ".join(json.dumps(a) for a in allowed)
        return [SchemaError(_pointer(parts), f"{shown} is not allowed; allowed values: {allowed_text}")]
    if kind is None:  # a `false` schema: the field may not appear in this context
        return [SchemaError(_pointer(parts), "is not allowed here")]
    if kind == "pattern" and "description" in err.schema:
        return [SchemaError(_pointer(parts), f"{shown} is not valid: expected {err.schema['description']}")]
    if kind in ("oneOf", "anyOf") and "description" in err.schema:
        return [SchemaError(_pointer(parts), f"{shown} is not valid: expected {err.schema['description']}")]
    # jsonschema's own messages quote the whole value (a 10 MB name): quote a preview instead
    return [
        SchemaError(
            _pointer(parts),
            err.message.replace(repr(inst), shown) if len(repr(inst)) > len(shown) else err.message,
        )
    ]


def validate(name: str, instance: Any) -> list[SchemaError]:
    """All problems of `instance` against schema `name` ("config", "event", "status"), sorted by path."""
    errors: list[SchemaError] = []
    for err in _validator(name).iter_errors(instance):
        # an `if` that matched and a failing `then` are reported by their inner errors
        if err.validator in ("if", "allOf") and err.context:
            continue
        errors.extend(_describe(err))
    return _most_specific(errors)


def _most_specific(errors: list[SchemaError]) -> list[SchemaError]:
    """One enum message per field: a conditional enum (e.g. inits allowed with a Riemannian optimizer)
    is narrower than the field's own enum and says more."""
    best: dict[str, SchemaError] = {}
    rest: set[SchemaError] = set()
    for e in errors:
        if "allowed values:" in e.message:
            old = best.get(e.path)
            if old is None or e.message.count(",") < old.message.count(","):
                best[e.path] = e
        else:
            rest.add(e)
    return sorted(rest | set(best.values()), key=lambda e: (e.path, e.message))
