"""The rules between fields (schema/rules.json), evaluated on a schema-valid config.

The twin of src/core/rules.ts: the same file, the same reading (an absent field is the schema's default),
the same pointers and messages, so that every entry point refuses the same configs the same way.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

_MISSING = object()


@cache
def rules() -> list[dict[str, Any]]:
    from riemannlora.schemas import schema_dir

    return json.loads((schema_dir() / "rules.json").read_text(encoding="utf-8"))["rules"]


def _schema_default(pointer: str) -> Any:
    """The schema's default for the field at `pointer` (through $refs), or _MISSING."""
    from riemannlora.schemas import load_schema

    root = load_schema("config")
    node: Any = root
    for part in pointer.strip("/").split("/"):
        node = _deref(root, node)
        node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return _MISSING
    node = _deref(root, node)
    return node.get("default", _MISSING) if isinstance(node, dict) else _MISSING


def _deref(root: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def value_at(config: Any, pointer: str) -> Any:
    node = config
    for part in pointer.strip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return _schema_default(pointer)
        node = node[part]
    return node


def _fill(message: str, **values: Any) -> str:
    for key, value in values.items():
        message = message.replace("{" + key + "}", str(value))
    return message


def problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(pointer, message) for every rule the config breaks."""
    out = []
    for rule in rules():
        if any(value_at(config, p) != v for p, v in rule.get("when", {}).items()):
            continue
        value = value_at(config, rule["field"])
        if value is _MISSING:
            continue
        if "at_most" in rule:
            limit = value_at(config, rule["at_most"])
            if limit is not _MISSING and value > limit:
                out.append((rule["field"], _fill(rule["message"], value=value, limit=limit)))
        if "layer_suffixes" in rule and isinstance(value, list):
            spec = rule["layer_suffixes"]
            names = [f"{spec['prefix']}{i}" for i in range(value_at(config, spec["count"]))]
            unmatched = [t for t in value if not any(n == t or n.endswith("." + t) for n in names)]
            if unmatched:
                shown = ", ".join(json.dumps(t) for t in unmatched)
                out.append((rule["field"], _fill(rule["message"], unmatched=shown, layers=", ".join(names))))
    return out
