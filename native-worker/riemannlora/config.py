"""Run configuration: load, validate against the shared JSON Schema, apply defaults.

The schema `schema/run-config.schema.json` is the one contract between the extension, the headless CLI
and the worker (docs/architecture.md, "Run config"). Schema validation is `riemannlora.schemas.validate`
(jsonschema Draft 2020-12; the schema is found in the repository / VSIX layout `<package>/../../schema/`
or in $RIEMANNLORA_SCHEMA_DIR). This module adds what a schema cannot say (the relations between fields
of schema/rules.json, what this machine has: local paths, the device, memory), applies the defaults, and
returns `ConfigProblem`s that name the JSON pointer of the field, what is wrong and what is allowed, so
that `validate` and `run` say exactly what to fix.

Importing this module does not import torch, and neither does validating a config that runs on the CPU:
only an explicit accelerator device (`train.device` cuda or mps) is checked through torch.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riemannlora.run_config import RunConfig


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
    kind: str = "config"  # "config" for schema or rule problems, "missing-path" for absent files

    def text(self) -> str:
        return f"{self.field or '/'}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "kind": self.kind}


# ----------------------------------------------------------------------------------------------------
# The schema: located and validated by riemannlora.schemas (the one validator shared with the fixtures
# and, in spirit, with the TypeScript engine), so both sides name the same fields the same way.


def load_schema() -> dict[str, Any]:
    from riemannlora.schemas import load_schema as _load

    return _load("config")


def _semantic_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Rules the schema cannot say, relations between fields (schema/rules.json, riemannlora.rules: the
    same table the TypeScript side evaluates). Run on a schema-valid config only."""
    from riemannlora import rules

    return [ConfigProblem(field, message) for field, message in rules.problems(config)]


def path_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Local model/data paths that do not exist or are not what the task reads (a model is a folder with
    a config.json, data is a file); hub ids are checked only when the run loads them."""
    from riemannlora.jsondoc import preview
    from riemannlora.paths import looks_like_local_path

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
        if not isinstance(value, str):
            continue
        path = os.path.expanduser(value)
        shown = preview(value, 200)
        if looks_like_local_path(value) and not os.path.exists(path):
            problems.append(
                ConfigProblem(
                    f"/task/{key}", f"path not found: {shown}; expected {what} there", kind="missing-path"
                )
            )
        elif (
            key == "model" and os.path.exists(path) and not os.path.isfile(os.path.join(path, "config.json"))
        ):
            problems.append(
                ConfigProblem(
                    f"/task/{key}",
                    f"{shown} is not a model folder (no config.json in it); expected {what}",
                    kind="missing-path",
                )
            )
        elif key != "model" and os.path.isdir(path):
            problems.append(
                ConfigProblem(f"/task/{key}", f"{shown} is a folder; expected {what}", kind="missing-path")
            )
    return problems


def method_arguments(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments of `riemannlora.methods.setup_method`'s keyword form for a resolved config, and
    the warnings of `riemannlora.run_config.for_optimizer` (fields the optimizer does not take, dropped).

    The worker passes the objects instead (`RunConfig.from_resolved`, `for_optimizer`); this flat form is
    for callers of the keyword API. Missing fields take the objects' defaults.
    """
    from riemannlora.run_config import AdapterConfig, LoiConfig, MethodConfig, for_optimizer

    method, adapter, warnings = for_optimizer(
        MethodConfig.from_resolved(config["method"]), AdapterConfig.from_resolved(config["adapter"])
    )
    loi = method.loi or LoiConfig()
    targets = adapter.target_modules
    kwargs: dict[str, Any] = {
        "rank": adapter.rank,
        "alpha": adapter.alpha,
        "target_modules": targets if isinstance(targets, str) else list(targets),
        "dropout": adapter.dropout,
        "rslora": adapter.rslora,
        "dora": adapter.dora,
        "init": method.init,
        "optimizer": method.optimizer,
        "lr": method.lr,
        "momentum": method.momentum,
        "weight_decay": method.weight_decay,
        "loraplus_ratio": method.loraplus_ratio,
        "loi_oversample": loi.oversample,
        "loi_power_iters": loi.power_iters,
        "loi_scale": loi.scale,
        "seed": config["train"].get("seed", 0),
        "riemannion_momentum_store": method.momentum_store,
    }
    if method.betas is not None:
        kwargs["betas"] = tuple(method.betas)
    return kwargs, warnings


def _method_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """The trainer's own init x optimizer rules (riemannlora.method_rules.validate_method; no torch)."""
    try:
        from riemannlora.method_rules import validate_method
    except ImportError:  # the trainer is not importable: `run` will say why
        return []
    from riemannlora.run_config import AdapterConfig, MethodConfig, for_optimizer

    method, adapter, _ = for_optimizer(
        MethodConfig.from_resolved(config["method"]), AdapterConfig.from_resolved(config["adapter"])
    )
    problems = []
    try:
        validate_method(
            init=method.init,
            optimizer=method.optimizer,
            dora=adapter.dora,
            rslora=adapter.rslora,
            momentum=method.momentum,
            init_batches=[],  # the worker always provides the batches and the loss of gradient-based starts
            loss_fn=lambda model, batch: None,
            riemannion_momentum_store=method.momentum_store,
        )
    except ValueError as exc:
        text = str(exc)
        head = text.split("=", 1)[0].split(" ", 1)[0]
        field = {
            "init": "/method/init",
            "optimizer": "/method/optimizer",
            "dora": "/adapter/dora",
            "rslora": "/adapter/rslora",
            "momentum": "/method/momentum",
            "riemannion_momentum_store": "/method/momentum_store",
        }.get(head, "/method")
        problems.append(ConfigProblem(field, text))
    return problems


# ----------------------------------------------------------------------------------------------------
def _heldout_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """An empty half of a held-out set whose size the config says (synthetic-lowrank: n_eval); the size of a
    causal-lm hold-out is known once the data is read, so `run` says it then (the task, same message)."""
    task = config["task"]
    heldout = task.get("heldout", "all")
    if task["kind"] != "synthetic-lowrank" or heldout == "all":
        return []
    from riemannlora import rules
    from riemannlora.heldout import SYNTHETIC_HELDOUT_HINT, heldout_message, heldout_size

    n = rules.value_at(config, "/task/synthetic/n_eval")
    if heldout_size(n, heldout) > 0:
        return []
    return [
        ConfigProblem(
            "/task/heldout", f"{heldout_message(heldout, n, 'evaluation points')}; {SYNTHETIC_HELDOUT_HINT}"
        )
    ]


def host_memory() -> tuple[int, int] | None:
    """(total, available) bytes of this machine's memory, from /proc/meminfo; None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["MemTotal"].split()[0]) * 1024, int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _machine_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """What this machine cannot do: an explicit accelerator that is not here (asked of torch, imported
    only then: "auto" and "cpu" always work), a task that needs more memory than the machine has. `run`
    refuses the same configs before it creates anything."""
    from riemannlora.errors import WorkerError

    problems = []
    device = config["train"].get("device", "auto")
    if device not in ("auto", "cpu"):
        try:
            from riemannlora.training.device import resolve_device
        except ImportError:  # the trainer is not importable: `run` will say why
            resolve_device = None
        try:
            if resolve_device is not None:
                resolve_device(device)
        except WorkerError as exc:
            problems.append(ConfigProblem(exc.field or "/train/device", f"{exc.message}; {exc.hint}"))
    from riemannlora.tasks.registry import task_memory_estimate

    need = task_memory_estimate(config)
    memory = host_memory()
    if need is not None and memory is not None and need > memory[0]:
        problems.append(
            ConfigProblem(
                "/task/synthetic",
                f"needs about {_gib(need)} of memory and this machine has {_gib(memory[0])} in all; "
                "lower width, depth or n_train",
            )
        )
    return problems


def validate_config(config: Any, *, check_paths: bool = True, deep: bool = True) -> list[ConfigProblem]:
    """Every problem of `config`; [] when valid.

    Schema first; on a schema-valid config also the relations between fields and, with `deep`, the
    trainer's own rules for init x optimizer (imports torch); with `check_paths`, what this machine must
    have: local paths that exist and (with `deep`) the device and the memory the task needs.
    """
    from riemannlora.schemas import validate

    problems = [ConfigProblem(e.path if e.path != "/" else "", e.message) for e in validate("config", config)]
    if not problems:
        problems = _semantic_problems(config) + _heldout_problems(config)
        if deep:
            problems += _method_problems(config)
        if deep and check_paths:
            problems += _machine_problems(config)
    if check_paths and isinstance(config, dict):
        problems += path_problems(config)
    return problems


# ----------------------------------------------------------------------------------------------------
# Defaults


def _resolve_ref(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and schema.get("$ref", "").startswith("#/"):
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _defaults_of(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    props = _resolve_ref(root, schema).get("properties") or {}
    return {k: copy.deepcopy(_resolve_ref(root, s)["default"]) for k, s in props.items() if "default" in s}


# task fields that mean something only for some kinds: defaults are applied only where they apply
_CAUSAL_TASK_FIELDS = (
    "text_field",
    "prompt_field",
    "completion_field",
    "seq_len",
    "eval_fraction",
    "eval_generate",
)


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
    task.setdefault("heldout", task_schema_defaults["heldout"])  # every kind has a held-out set
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
    for key in TASK_PATH_KEYS:
        value = task.get(key)
        if isinstance(value, str) and os.path.exists(os.path.expanduser(value)):
            task[key] = os.path.abspath(os.path.expanduser(value))
    out.pop("$schema", None)
    return out


TASK_PATH_KEYS = ("model", "data", "eval_data")


def resolve_task_paths(config: Any, base_dir: str | os.PathLike[str]) -> Any:
    """Local task paths made absolute against the folder of the config file that names them.

    The same rule as the engine's `resolveTaskPaths` (src/core/config.ts), so that a config means the same
    thing to `validate`, to `run` and to the editor, from any current folder: a relative value is resolved
    when it says it is a path (`./`, `../`) or names something that exists there; anything else (a hub id
    such as `org/model`) stays as it is.
    """
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(task, dict):
        return config
    for key in TASK_PATH_KEYS:
        value = task.get(key)
        if not isinstance(value, str) or not value or os.path.isabs(os.path.expanduser(value)):
            continue
        candidate = os.path.normpath(os.path.join(os.fspath(base_dir), value))
        if value.startswith(("./", "../", ".\\", "..\\")) or os.path.exists(candidate):
            task[key] = candidate
    return config


def document_limits() -> dict[str, int]:
    """`x-document-limits` of the config schema: the byte and nesting caps of a config file."""
    return load_schema()["x-document-limits"]


def load_config_file(path: str | os.PathLike[str]) -> Any:
    """Parse a config file; a ConfigError (not a traceback) for unreadable, oversized or non-JSON files
    (NaN, Infinity, non-finite numbers and deep nesting included: riemannlora.jsondoc).

    Relative local paths in the task are resolved against the file's folder (`resolve_task_paths`);
    integral floats in integer fields become ints (`integral_numbers`)."""
    from riemannlora.jsondoc import DocumentError, parse, printable

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            [ConfigProblem("", f"config file not found: {printable(str(p))}", kind="missing-path")]
        )
    limits = document_limits()
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # never read more than the cap (+1, so that parse() reports the file as too big)
            data = f.read(limits["max_bytes"] + 1) if size > limits["max_bytes"] else f.read()
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("", f"cannot read config file {printable(str(p))}: {exc.strerror}")]
        ) from exc
    if size > limits["max_bytes"]:
        raise ConfigError(
            [
                ConfigProblem(
                    "", f"the config file is {size:,} bytes; a run config is at most {limits['max_bytes']:,}"
                )
            ]
        )
    try:
        doc = parse(
            data, max_bytes=limits["max_bytes"], max_depth=limits["max_depth"], source="the config file"
        )
    except DocumentError as exc:
        raise ConfigError([ConfigProblem(exc.pointer, exc.message)]) from None
    return integral_numbers(resolve_task_paths(doc, p.resolve().parent))


def integral_numbers(config: Any) -> Any:
    """Integer fields given as integral floats (`"rank": 2.0`) become ints, in place.

    JSON Schema counts 2.0 as an integer, and JavaScript cannot tell 2.0 from 2, so the extension accepts
    it; the trainer needs a Python int (tensor shapes, range()). Only fields the schema types `integer`
    change; `"lr": 1.0` stays a float."""
    root = load_schema()

    def walk(value: Any, schema: dict[str, Any]) -> Any:
        schema = _resolve_ref(root, schema)
        if isinstance(value, float) and value.is_integer() and schema.get("type") == "integer":
            return int(value)
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            for key, sub in list(value.items()):
                if key in props:
                    value[key] = walk(sub, props[key])
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            value[:] = [walk(v, schema["items"]) for v in value]
        return value

    return walk(config, root)


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> dict[str, Any]:
    """Load, validate and resolve a run config; raises ConfigError listing every problem."""
    raw = load_config_file(path)
    problems = validate_config(raw, check_paths=check_paths)
    if problems:
        raise ConfigError(problems)
    from riemannlora.tasks.registry import task_default_overrides

    return apply_defaults(raw, task_default_overrides(raw["task"]["kind"]))


def load_run_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> RunConfig:
    """`load_config` as typed objects (riemannlora.run_config.RunConfig; `to_dict()` is the resolved dict)."""
    from riemannlora.run_config import RunConfig

    return RunConfig.from_resolved(load_config(path, check_paths=check_paths))


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
