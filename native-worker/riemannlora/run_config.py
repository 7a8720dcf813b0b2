"""The run config as typed, frozen objects: `RunConfig` and its groups, built once from the resolved JSON.

`riemannlora.config.load_config` validates a config file and applies the schema's defaults
(`apply_defaults`); `RunConfig.from_resolved(resolved)` turns that dict into objects, and `to_dict()` gives
the same dict back, key order included, so that a config written from the objects is byte-for-byte the
config.json written from the dict. The objects travel config -> method -> layer as PEFT's `LoraConfig`
does: `riemannlora.methods.setup_method(model, method, adapter)` and
`riemannlora.adapters.inject_adapters(model, adapter)` take them.

The field defaults below are the library's keyword defaults; they equal the schema's
(schema/run-config.schema.json; tests/test_run_config.py checks that), and a config from a file gets the
schema's values from `apply_defaults`, never these. A field that is `None` and not nullable in the schema
(`method.lr`, `task.model`, ...) is absent from the JSON.

`for_optimizer(method, adapter)` is what the optimizer takes of them: the fields the chosen optimizer does
not use (per the method catalogue, schema/methods.json) are dropped, each with a warning.

A bottom module: it imports nothing from the package but the catalogue, and not torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "TaskConfig",
    "SyntheticConfig",
    "AdapterConfig",
    "LoiConfig",
    "MethodConfig",
    "TrainConfig",
    "OutputConfig",
    "RunConfig",
    "for_optimizer",
]

# field metadata: "json": False for a field that is not in the run config (a library-only option);
# "nullable": True for a field whose null is a value (always written); "group": the class of a nested group;
# "sequence": True for a JSON array kept as a tuple.
_LIBRARY_ONLY = {"json": False}
_NULLABLE = {"nullable": True}


def _keys_field() -> Any:
    # The keys of the dict an object was read from, in its order (None: built in code). Not compared.
    return field(default=None, repr=False, compare=False)


class _Group:
    """from_resolved / to_dict for one group of the run config (a frozen dataclass)."""

    _name: ClassVar[str] = ""
    _keys: tuple[str, ...] | None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("sequence") and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    @classmethod
    def _json_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "_keys" and f.metadata.get("json", True)]  # type: ignore[arg-type]

    @classmethod
    def from_resolved(cls, doc: dict[str, Any]):
        """The object of a resolved (validated, defaults applied) group; missing fields take the field
        defaults. Raises ValueError on a field the run config does not have."""
        if not isinstance(doc, dict):
            raise ValueError(f"{cls._name or 'config'}: expected an object, got {type(doc).__name__}")
        fields = {f.name: f for f in cls._json_fields()}
        unknown = [k for k in doc if k not in fields]
        if unknown:
            raise ValueError(f"{cls._name or 'config'}: unknown field(s) {', '.join(map(repr, unknown))}")
        values = {}
        for key, value in doc.items():
            group = fields[key].metadata.get("group")
            values[key] = group.from_resolved(value) if group is not None and value is not None else value
        return cls(**values, _keys=tuple(doc))

    def to_dict(self) -> dict[str, Any]:
        """The group as run-config JSON: the keys it was read from, in their order; then any other field
        that is set (a field changed with dataclasses.replace, or, for an object built in code, every
        field that is not None, nullable ones included)."""
        fields = self._json_fields()
        order = list(self._keys or ()) + [f.name for f in fields if f.name not in (self._keys or ())]
        by_name = {f.name: f for f in fields}
        out: dict[str, Any] = {}
        for name in order:
            f = by_name[name]
            value = getattr(self, name)
            if self._keys is not None and name not in self._keys:
                keep = value != f.default and value is not None
            else:
                keep = value is not None or bool(f.metadata.get("nullable"))
            if not keep:
                continue
            if isinstance(value, _Group):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class SyntheticConfig(_Group):
    """`task.synthetic`: the synthetic low-rank regression task's sizes."""

    _name: ClassVar[str] = "task.synthetic"
    width: int = 64
    depth: int = 3
    target_rank: int = 4
    target_scale: float = 1.0
    noise: float = 0.0
    n_train: int = 4096
    n_eval: int = 512
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class TaskConfig(_Group):
    """`task`: what is trained. Which fields apply depends on `kind` (apply_defaults fills only those), so
    none has a default here: None is "not given"; except `heldout`, which every kind has (the schema's
    default: the whole held-out set)."""

    _name: ClassVar[str] = "task"
    kind: str
    model: str | None = None
    data: str | None = None
    eval_data: str | None = None
    text_field: str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    seq_len: int | None = None
    eval_fraction: float | None = None
    eval_generate: bool | None = None
    heldout: str = "all"
    synthetic: SyntheticConfig | None = field(default=None, metadata={"group": SyntheticConfig})
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class AdapterConfig(_Group):
    """`adapter`: the LoRA layers (rank, targets, scale, dropout, variants), as PEFT's `LoraConfig`.

    `target_modules` is a tuple of module-name suffixes or "all-linear". The last three fields are library
    options, not in the run config: `parametrization` ("manifold" or "factors"; None: the optimizer's, in
    setup_method, and "manifold" in inject_adapters), the adapter `dtype` (None: fp32, fp64 for fp64
    models) and `init_scale`, the manifold layers' tiny start (docs/method.md §5).
    """

    _name: ClassVar[str] = "adapter"
    rank: int
    target_modules: tuple[str, ...] | str = field(default="all-linear", metadata={"sequence": True})
    alpha: float | None = field(default=None, metadata=_NULLABLE)
    dropout: float = 0.0
    rslora: bool = False
    dora: bool = False
    parametrization: str | None = field(default=None, metadata=_LIBRARY_ONLY)
    dtype: Any = field(default=None, metadata=_LIBRARY_ONLY)
    init_scale: float = field(default=1e-6, metadata=_LIBRARY_ONLY)
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class LoiConfig(_Group):
    """`method.loi`: the locally optimal initialization's sketch (docs/method.md §5)."""

    _name: ClassVar[str] = "method.loi"
    oversample: int = 16
    power_iters: int = 1
    scale: float | None = field(default=None, metadata=_NULLABLE)
    batches: int = 1
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class MethodConfig(_Group):
    """`method`: init x optimizer and the optimizer's hyper-parameters.

    None means "the optimizer's default" for `lr` (the catalogue's default learning rate), `momentum`
    (its default momentum, if it takes one) and `betas` ((0.9, 0.999)); `loi` None is LoiConfig()."""

    _name: ClassVar[str] = "method"
    init: str = "lora"
    optimizer: str = "adamw"
    lr: float | None = None
    momentum: float | None = None
    betas: tuple[float, float] | None = field(default=None, metadata={"sequence": True})
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = field(default=None, metadata=_NULLABLE)
    loraplus_ratio: float = 16.0
    momentum_store: str = "raw"
    loi: LoiConfig | None = field(default=None, metadata={"group": LoiConfig})
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class TrainConfig(_Group):
    """`train`: the loop (steps, global batch, evaluation, seed, precision, device)."""

    _name: ClassVar[str] = "train"
    steps: int
    batch_size: int = 8
    grad_accum: int = 1
    eval_interval: int = 0
    eval_batches: int = 8
    log_interval: int = 1
    seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    threads: int = 0
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class OutputConfig(_Group):
    """`output`: checkpoints and the exported adapter."""

    _name: ClassVar[str] = "output"
    checkpoint_interval: int = 0
    keep_checkpoints: int = 2
    export_adapter: bool = True
    _keys: tuple[str, ...] | None = _keys_field()


@dataclass(frozen=True)
class RunConfig(_Group):
    """A whole run config. `RunConfig.from_resolved(load_config(path))`; `to_dict()` is that dict again."""

    _name: ClassVar[str] = "run config"
    task: TaskConfig = field(metadata={"group": TaskConfig})
    adapter: AdapterConfig = field(metadata={"group": AdapterConfig})
    method: MethodConfig = field(metadata={"group": MethodConfig})
    train: TrainConfig = field(metadata={"group": TrainConfig})
    output: OutputConfig = field(default_factory=OutputConfig, metadata={"group": OutputConfig})
    name: str | None = None
    _keys: tuple[str, ...] | None = _keys_field()


def for_optimizer(
    method: MethodConfig, adapter: AdapterConfig
) -> tuple[MethodConfig, AdapterConfig, list[str]]:
    """The method and adapter as the chosen optimizer takes them, and a warning per field dropped.

    Fields the schema accepts but that mean nothing for the optimizer are dropped with a warning (not an
    error, so that every schema-valid config runs): `adapter.rslora` with a Riemannian optimizer (the scale
    lives in the point; `alpha` is kept, the manifold layers ignore it), and `method.momentum`, `betas` or
    `momentum_store` with an optimizer that does not take them (the catalogue's `params`).
    """
    from riemannlora import catalogue

    optimizer = method.optimizer
    riemannian = catalogue.parametrization(optimizer) == "manifold"
    warnings: list[str] = []
    method_changes: dict[str, Any] = {}
    if riemannian and adapter.rslora:
        warnings.append(
            f"adapter.rslora has no effect with optimizer {optimizer} (the scale lives in the point)"
        )
        adapter = dataclasses.replace(adapter, rslora=False)
    if riemannian and adapter.alpha is not None:
        warnings.append(f"adapter.alpha is ignored by optimizer {optimizer} (the scale lives in the point)")
    if method.momentum is not None and not catalogue.takes(optimizer, "momentum"):
        warnings.append(
            f"method.momentum does not apply to optimizer {optimizer} (set method.betas); ignored"
        )
        method_changes["momentum"] = None
    if method.betas is not None and not catalogue.takes(optimizer, "betas"):
        warnings.append(
            f"method.betas does not apply to optimizer {optimizer} (set method.momentum); ignored"
        )
        method_changes["betas"] = None
    if method.momentum_store != "raw" and not catalogue.takes(optimizer, "momentum_store"):
        warnings.append(
            f"method.momentum_store applies to optimizer riemannion only; ignored for {optimizer}"
        )
    if not catalogue.takes(optimizer, "momentum_store"):
        method_changes["momentum_store"] = "raw"
    if method_changes:
        method = dataclasses.replace(method, **method_changes)
    return method, adapter, warnings
