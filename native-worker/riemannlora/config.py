"""Run configuration: load, validate against the shared JSON Schema, apply defaults.

The schema `schema/run-config.schema.json` is the one contract between the extension, the headless CLI
and the worker (DESIGN.md, "Run config"). This module validates with `jsonschema`'s Draft 2020-12
validator and turns each failure into a `ConfigProblem` whose message names the JSON path of the field,
what is wrong, and the allowed values, so that `validate` and `run` can both say exactly what to fix.

Import cost matters: `validate` and `doctor` must answer quickly, so nothing here imports torch.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_ENV = "RIEMANNLORA_SCHEMA_DIR"
SCHEMA_NAME = "run-config.schema.json"

RIEMANNIAN_OPTIMIZERS = ("riemannion", "riemannian-sgd", "riemannian-adam")


class ConfigError(Exception):
    """A run config that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("; ".join(p.text() for p in problems) or "invalid run config")


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: `field` is a JSON pointer ("/train/steps", "" for the root)."""

    field: str
    message: str
    kind: str = "config"  # "config" for schema/semantic problems, "missing-path" for absent files

    def text(self) -> str:
        return f"{self.field or '/'}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "kind": self.kind}


# ----------------------------------------------------------------------------------------------------
# Locating and loading the schema


def schema_dir_candidates() -> list[Path]:
    """Where the schemas are looked for: the repository / VSIX layout first, then $RIEMANNLORA_SCHEMA_DIR."""
    package_dir = Path(__file__).resolve().parent  # .../native-worker/riemannlora
    candidates = [package_dir.parent.parent / "schema"]
    env = os.environ.get(SCHEMA_ENV)
    if env:
        candidates.append(Path(env).expanduser())
    return candidates


def schema_path(name: str = SCHEMA_NAME) -> Path:
    """Path of a shared schema file; a clear error naming every place looked at when it is missing."""
    candidates = schema_dir_candidates()
    for directory in candidates:
        if (directory / name).is_file():
            return directory / name
    looked = ", ".join(str(d / name) for d in candidates)
    raise FileNotFoundError(
        f"cannot find the schema {name}; looked at {looked}. Set {SCHEMA_ENV} to the folder that holds "
        "the project's schema/ files."
    )


@lru_cache(maxsize=8)
def _load_schema_cached(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_schema(name: str = SCHEMA_NAME) -> dict[str, Any]:
    return _load_schema_cached(str(schema_path(name)))


# ----------------------------------------------------------------------------------------------------
# Turning jsonschema errors into messages a person can act on


def _pointer(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _choices(values: Iterable[Any]) -> str:
    return ", ".join(_show(v) for v in values)


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _type_text(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
    return _TYPE_NAMES.get(expected, str(expected))


def _resolve_ref(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema and schema["$ref"].startswith("#/"):
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _subschema_at(root: dict[str, Any], path: list[Any]) -> dict[str, Any] | None:
    """The schema node that describes the instance at `path` (following properties/items/$ref)."""
    node: Any = _resolve_ref(root, root)
    for part in path:
        if not isinstance(node, dict):
            return None
        if isinstance(part, int):
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(part)
        if node is None:
            return None
        node = _resolve_ref(root, node)
    return node if isinstance(node, dict) else None


def _allof_reason(root: dict[str, Any], error: Any) -> str:
    """If the error comes from an if/then rule with a description, return that description (the why)."""
    path = list(error.absolute_schema_path)
    node: Any = root
    reason = ""
    for part in path:
        if isinstance(node, dict) and "$ref" in node and part not in node:
            node = _resolve_ref(root, node)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "if" in node and "then" in node and node.get("description"):
            reason = node["description"]
    return reason


def _problems_from_error(root: dict[str, Any], error: Any, instance: Any) -> list[ConfigProblem]:
    path = list(error.absolute_path)
    field = _pointer(path)
    v = error.validator
    val = error.validator_value
    here = _subschema_at(root, path) or {}
    described = here.get("description", "")
    reason = _allof_reason(root, error)
    got = f" (got {_show(error.instance)})"

    if v == "required":
        missing = [name for name in val if isinstance(error.instance, dict) and name not in error.instance]
        out = []
        for name in missing:
            why = f"; {reason}" if reason else ""
            if field == "/task" and name in ("model", "data"):
                why = "; kind causal-lm needs a local path or hub id for both model and data"
            out.append(ConfigProblem(_pointer([*path, name]), f"required field is missing{why}"))
        return out
    if v == "additionalProperties":
        allowed = sorted((here.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in (here.get("properties") or {})]
        return [
            ConfigProblem(_pointer([*path, k]), f"unknown field {k!r}; allowed fields here: {', '.join(allowed)}")
            for k in extra
        ]
    if v == "enum":
        msg = f"must be one of: {_choices(val)}{got}"
        if reason:
            msg += f". {reason}"
        return [ConfigProblem(field, msg)]
    if v == "const":
        return [ConfigProblem(field, f"must be {_show(val)}{got}")]
    if v == "type":
        return [ConfigProblem(field, f"must be {_type_text(val)}{got}")]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        bounds = []
        for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
            if key in here:
                bounds.append(f"{sym} {here[key]}")
        allowed = f"; allowed: {' and '.join(bounds)}" if len(bounds) > 1 else ""
        return [ConfigProblem(field, f"must be {op} {val}{got}{allowed}")]
    if v == "pattern":
        hint = f"; {described}" if described else f"; must match {val}"
        return [ConfigProblem(field, f"invalid value{got}{hint}")]
    if v == "minLength":
        return [ConfigProblem(field, "must not be empty" if val == 1 else f"must have at least {val} characters")]
    if v == "maxLength":
        return [ConfigProblem(field, f"must have at most {val} characters")]
    if v == "minItems":
        return [ConfigProblem(field, f"must have at least {val} item(s){got}")]
    if v == "maxItems":
        return [ConfigProblem(field, f"must have at most {val} item(s){got}")]
    if v == "uniqueItems":
        return [ConfigProblem(field, f"items must be unique{got}")]
    if v in ("oneOf", "anyOf"):
        if field == "/adapter/target_modules":
            return [
                ConfigProblem(
                    field,
                    f'must be "all-linear" or a non-empty list of distinct module-name suffixes{got}',
                )
            ]
        return [ConfigProblem(field, f"does not match any allowed form{got}; {described}".rstrip("; "))]
    if v == "not":
        if field == "/task" and isinstance(error.instance, dict):
            kind = error.instance.get("kind")
            return [
                ConfigProblem(
                    _pointer([*path, key]),
                    f"only kind causal-lm takes {key}; kind {kind!r} brings its own model and data "
                    "(remove this field or use kind causal-lm)",
                )
                for key in ("model", "data")
                if key in error.instance
            ]
        return [ConfigProblem(field, f"value not allowed here{got}")]
    return [ConfigProblem(field, error.message)]


def _semantic_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Rules the schema cannot say: relations between fields. Run on a schema-valid config only."""
    problems: list[ConfigProblem] = []
    task = config["task"]
    adapter = config["adapter"]
    train = config["train"]
    method = config["method"]
    if task["kind"] == "synthetic-lowrank":
        syn = task.get("synthetic", {})
        width = syn.get("width", 64)
        if syn.get("target_rank", 4) > width:
            problems.append(
                ConfigProblem(
                    "/task/synthetic/target_rank",
                    f"must be <= width ({width}) (got {syn.get('target_rank')})",
                )
            )
        if adapter["rank"] > width:
            problems.append(
                ConfigProblem("/adapter/rank", f"must be <= the synthetic width ({width}) (got {adapter['rank']})")
            )
        if isinstance(adapter.get("target_modules"), list):
            names = [f"layers.{i}" for i in range(syn.get("depth", 3))]
            bad = [t for t in adapter["target_modules"] if not any(n == t or n.endswith("." + t) for n in names)]
            if bad:
                problems.append(
                    ConfigProblem(
                        "/adapter/target_modules",
                        f"no layer of the synthetic network matches {_choices(bad)}; its layers are "
                        f'{", ".join(names)} (or use "all-linear")',
                    )
                )
    warmup = method.get("warmup_steps", 0)
    if warmup > train["steps"]:
        problems.append(
            ConfigProblem("/method/warmup_steps", f"must be <= train.steps ({train['steps']}) (got {warmup})")
        )
    return problems


_LOCAL_HINT_SUFFIXES = (".jsonl", ".json", ".txt")


def looks_like_local_path(value: str) -> bool:
    """True when a model/data string is clearly meant as a local path rather than a hub id."""
    if value.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in value:
        return True
    if len(value) > 1 and value[1] == ":":  # Windows drive letter
        return True
    if value.lower().endswith(_LOCAL_HINT_SUFFIXES):
        return True
    return value.count("/") > 1  # hub ids are "name" or "owner/name"


def path_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Local model/data paths that do not exist (hub ids are checked only when the run loads them)."""
    task = config.get("task")
    if not isinstance(task, dict):
        return []
    problems = []
    expected = {
        "model": "a Hugging Face model directory (config.json, weights, tokenizer files)",
        "data": "a .jsonl, .json or .txt file (or a datasets hub id)",
        "eval_data": "a .jsonl, .json or .txt file",
    }
    for key, what in expected.items():
        value = task.get(key)
        if isinstance(value, str) and looks_like_local_path(value) and not os.path.exists(os.path.expanduser(value)):
            problems.append(
                ConfigProblem(f"/task/{key}", f"path not found: {value}; expected {what} there", kind="missing-path")
            )
    return problems


def validate_config(config: Any, *, check_paths: bool = True) -> list[ConfigProblem]:
    """Every problem of `config` (schema, then field relations, then local paths); [] when valid."""
    from jsonschema import Draft202012Validator

    schema = load_schema()
    validator = Draft202012Validator(schema)
    problems: list[ConfigProblem] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.validator)):
        problems.extend(_problems_from_error(schema, error, config))
    # An if/then rule and a plain enum can report the same field twice; keep the more specific message.
    seen: dict[str, ConfigProblem] = {}
    for p in problems:
        prev = seen.get(p.field)
        if prev is None or len(p.message) > len(prev.message):
            seen[p.field] = p
    problems = [p for p in problems if seen.get(p.field) is p]
    if not problems:
        problems = _semantic_problems(config)
    if check_paths and isinstance(config, dict):
        problems += path_problems(config)
    return problems


# ----------------------------------------------------------------------------------------------------
# Defaults


def _defaults_of(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    props = _resolve_ref(root, schema).get("properties") or {}
    return {k: copy.deepcopy(_resolve_ref(root, s)["default"]) for k, s in props.items() if "default" in s}


# task fields that mean something only for some kinds: defaults are applied only where they apply
_CAUSAL_TASK_FIELDS = ("text_field", "prompt_field", "completion_field", "seq_len", "eval_fraction", "eval_generate")


def apply_defaults(config: dict[str, Any], task_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config: a deep copy with the schema's defaults filled in (call on a valid config).

    `task_defaults` (from the task registry) overrides schema defaults for the task group, so that the
    built-in default can carry its own recommended sequence length etc.; user values always win.
    """
    schema = load_schema()
    defs = schema["$defs"]
    out = copy.deepcopy(config)
    task = out["task"]
    kind = task["kind"]
    task_schema_defaults = _defaults_of(schema, defs["task"])
    if kind in ("causal-lm", "builtin-default"):
        for key in _CAUSAL_TASK_FIELDS:
            task.setdefault(key, task_schema_defaults[key])
    if kind == "synthetic-lowrank":
        syn = task.setdefault("synthetic", {})
        for key, value in _defaults_of(schema, defs["synthetic"]).items():
            syn.setdefault(key, value)
    for key, value in (task_defaults or {}).items():
        if key not in config["task"]:
            task[key] = copy.deepcopy(value)
    for group in ("adapter", "method", "train"):
        for key, value in _defaults_of(schema, defs[group]).items():
            out[group].setdefault(key, value)
    out["adapter"].setdefault("alpha", None)
    method = out["method"]
    if "loi" in method or method["init"] == "loi":
        loi = method.setdefault("loi", {})
        for key, value in _defaults_of(schema, defs["method"]["properties"]["loi"]).items():
            loi.setdefault(key, value)
        loi.setdefault("scale", None)
    method.setdefault("grad_clip", None)
    output = out.setdefault("output", {})
    for key, value in _defaults_of(schema, defs["output"]).items():
        output.setdefault(key, value)
    # Local paths are stored absolute so that the resolved config means the same thing from any folder.
    for key in ("model", "data", "eval_data"):
        value = task.get(key)
        if isinstance(value, str) and os.path.exists(os.path.expanduser(value)):
            task[key] = os.path.abspath(os.path.expanduser(value))
    out.pop("$schema", None)
    return out


def load_config_file(path: str | os.PathLike[str]) -> Any:
    """Parse a config file; a ConfigError (not a traceback) for unreadable or non-JSON files."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([ConfigProblem("", f"config file not found: {p}", kind="missing-path")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem("", f"cannot read config file {p}: {exc}")]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [ConfigProblem("", f"{p} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")]
        ) from exc


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> dict[str, Any]:
    """Load, validate and resolve a run config; raises ConfigError listing every problem."""
    raw = load_config_file(path)
    problems = validate_config(raw, check_paths=check_paths)
    if problems:
        raise ConfigError(problems)
    from riemannlora.tasks.registry import task_default_overrides

    return apply_defaults(raw, task_default_overrides(raw["task"]["kind"]))


def config_differences(a: Any, b: Any, path: str = "") -> list[str]:
    """JSON pointers where two resolved configs differ (for the --resume consistency check)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            sub = f"{path}/{key}"
            if key not in a or key not in b:
                out.append(sub)
            else:
                out += config_differences(a[key], b[key], sub)
        return out
    if a != b or type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return [path or "/"]
    return []
