"""Export adapters in the PEFT LoRA format; import any PEFT LoRA adapter (to continue on M_r or on factors).

Format (docs/baselines.md; what `peft.PeftModel.save_pretrained` writes and `from_pretrained` reads):

- `adapter_model.safetensors` with metadata {"format": "pt"} and, per adapted module path `p`,
  `base_model.model.<p>.lora_A.weight` (r×in), `base_model.model.<p>.lora_B.weight` (out×r) and, for DoRA,
  `base_model.model.<p>.lora_magnitude_vector` (out,).
- `adapter_config.json` with peft_type "LORA", r, lora_alpha, target_modules, use_rslora, use_dora,
  rank_pattern / alpha_pattern (per-module exceptions), base_model_name_or_path, task_type,
  init_lora_weights true, inference_mode true.

PEFT's scaling is `lora_alpha / r` (or `lora_alpha / √r` with use_rslora); the export chooses each module's
alpha so that PEFT's scaling reproduces the layer's exact delta relative to the ORIGINAL base weight,
including the frozen offset of starts away from zero (LOI, PiSSA, LoRA-GA), which `peft_factors()` returns
as the rank-2r conversion [s·B | −B₀]·[A ; A₀] (PEFT's `path_initial_model_for_weight_conversion`;
docs/method.md §6). When
modules end up with different ranks (some have an offset, some not) the most common (r, alpha) goes to the
top level and the others to rank_pattern / alpha_pattern, keyed by full module path.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from .adapters import PARAMETRIZATIONS, FactorLoRALayer, ManifoldLoRALayer, adapter_layers
from .adapters.base import supported_base

CONFIG_NAME = "adapter_config.json"
SAFETENSORS_NAME = "adapter_model.safetensors"
BIN_NAME = "adapter_model.bin"
PREFIX = "base_model.model."

# adapter_config.json fields that describe features riemannlora cannot reproduce, and what they are
_UNSUPPORTED_FIELDS = {
    "lora_bias": "LoRA biases (lora_bias=true)",
    "modules_to_save": "fully trained extra modules (modules_to_save)",
    "trainable_token_indices": "trainable tokens (trainable_token_indices)",
    "target_parameters": "LoRA on nn.Parameter targets (target_parameters)",
    "layer_replication": "layer replication (layer_replication)",
    "use_qalora": "QA-LoRA (use_qalora)",
    "use_bdlora": "BD-LoRA (use_bdlora)",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
}


# ================================================================================================== export
def _round_alpha(value: float) -> float | int:
    """Alpha as written to JSON: an int when it is one (as PEFT users expect), else the exact float."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= 1e-9 * max(1.0, abs(value)) else float(value)


def _fresh_module_names(model: nn.Module, adapted: set[str]) -> list[str]:
    """Module names of the model as PEFT will see them on a fresh base: adapter internals left out."""
    names = []
    for name, _ in model.named_modules():
        if name and not any(name.startswith(p + ".") for p in adapted):
            names.append(name)
    return names


def _target_modules(model: nn.Module, adapted: list[str]) -> list[str]:
    """Short suffixes (["q_proj", ...]) when they select exactly the adapted modules, else full paths."""
    adapted_set = set(adapted)
    suffixes = sorted({p.rsplit(".", 1)[-1] for p in adapted})
    matched = {n for n in _fresh_module_names(model, adapted_set) if n.rsplit(".", 1)[-1] in suffixes}
    return suffixes if matched == adapted_set else sorted(adapted)


def _mode(values: list) -> object:
    """The most common value; ties go to the value seen first."""
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def _base_model_name(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    return name or None


@torch.no_grad()
def export_peft(
    model: nn.Module,
    path: str | os.PathLike,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> Path:
    """Write the model's adapters as a PEFT LoRA adapter directory that loads on the ORIGINAL base.

    Args:
        model: a model with injected adapters (either parametrization; offsets and DoRA included).
        path: output directory (created if needed; existing adapter files are overwritten).
        base_model_name_or_path: recorded in the config (default: the model's `config._name_or_path`).
        task_type: PEFT task type recorded in the config (e.g. "CAUSAL_LM"); None loads as a plain PeftModel.

    Returns the directory. `PeftModel.from_pretrained(fresh_base, path)` then computes the same function as
    `model` (the tests check logits to 1e-5 in fp32 for every method).
    """
    from safetensors.torch import save_file

    layers = adapter_layers(model)
    if not layers:
        raise ValueError(
            "export_peft: the model has no adapter layers; call inject_adapters(model, ...) first"
        )
    rows = []
    tensors: dict[str, torch.Tensor] = {}
    dora_flags = set()
    rslora = all(getattr(layer, "use_rslora", False) for layer in layers.values())
    for name, layer in layers.items():
        lora_A, lora_B, lora_alpha, extras = layer.peft_factors()
        rank = int(lora_A.shape[0])
        scaling = float(lora_alpha) / rank  # the peft_factors() contract: (alpha / r') · B @ A == delta
        alpha = scaling * math.sqrt(rank) if rslora else scaling * rank
        rows.append((name, rank, _round_alpha(alpha)))
        tensors[f"{PREFIX}{name}.lora_A.weight"] = lora_A.detach().contiguous().cpu()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = lora_B.detach().contiguous().cpu()
        magnitude = extras.get("lora_magnitude_vector")
        dora_flags.add(magnitude is not None)
        if magnitude is not None:
            tensors[f"{PREFIX}{name}.lora_magnitude_vector"] = magnitude.detach().contiguous().cpu()
    if len(dora_flags) > 1:
        raise ValueError("export_peft: some layers use DoRA and others do not; PEFT's use_dora is global")

    r = _mode([row[1] for row in rows])
    alpha = _mode([row[2] for row in rows])
    rank_pattern = {name: rk for name, rk, _ in rows if rk != r}
    alpha_pattern = {name: a for name, _, a in rows if a != alpha}
    conv1d = [bool(getattr(layer, "is_conv1d", False)) for layer in layers.values()]
    dropouts = {float(getattr(layer.dropout, "p", 0.0)) for layer in layers.values()}
    config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path or _base_model_name(model),
        "r": r,
        "lora_alpha": alpha,
        "target_modules": _target_modules(model, list(layers)),
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "use_rslora": rslora,
        "use_dora": dora_flags == {True},
        "lora_dropout": max(dropouts),
        "fan_in_fan_out": all(conv1d),
        "bias": "none",
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    }
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / SAFETENSORS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


# ================================================================================================== import
def _read_adapter(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not path.is_dir():
        raise FileNotFoundError(
            f"import_peft: {str(path)!r} is not a directory (expected a PEFT adapter folder)"
        )
    config_file = path / CONFIG_NAME
    if not config_file.exists():
        raise FileNotFoundError(
            f"import_peft: {str(config_file)!r} not found; is {str(path)!r} a PEFT adapter folder?"
        )
    config = json.loads(config_file.read_text())
    if (path / SAFETENSORS_NAME).exists():
        from safetensors.torch import load_file

        weights = load_file(str(path / SAFETENSORS_NAME))
    elif (path / BIN_NAME).exists():
        weights = torch.load(path / BIN_NAME, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"import_peft: neither {SAFETENSORS_NAME} nor {BIN_NAME} in {str(path)!r}")
    return config, weights


def _check_config(config: dict, parametrization: str) -> None:
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise ValueError(
            f"import_peft: unsupported PEFT type {config.get('peft_type')!r}; only LoRA adapters "
            "(peft_type 'LORA') can be imported"
        )
    for field, what in _UNSUPPORTED_FIELDS.items():
        value = config.get(field)
        if value not in (None, False, [], {}, "", "none"):
            raise ValueError(
                f"import_peft: the adapter uses {what} = {value!r}, which riemannlora does not support"
            )
    if config.get("bias", "none") != "none":
        raise ValueError(f"import_peft: bias={config['bias']!r} is not supported (only 'none')")
    if config.get("use_dora") and parametrization != "factors":
        raise ValueError(
            "import_peft: this is a DoRA adapter (use_dora=true); import it with "
            "parametrization='factors' (DoRA's magnitude has no manifold counterpart)"
        )


def _group_weights(weights: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{module path: {"lora_A": .., "lora_B": .., "magnitude": ..}}; clear errors for other keys."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    suffixes = {".lora_A.weight": "lora_A", ".lora_B.weight": "lora_B", ".lora_magnitude_vector": "magnitude"}
    for key, value in weights.items():
        if not key.startswith(PREFIX):
            raise ValueError(f"import_peft: unexpected key {key!r} (PEFT keys start with {PREFIX!r})")
        for suffix, kind in suffixes.items():
            if key.endswith(suffix):
                modules.setdefault(key[len(PREFIX) : -len(suffix)], {})[kind] = value
                break
        else:
            hint = " (LoRA on embeddings is not supported)" if "lora_embedding" in key else ""
            raise ValueError(f"import_peft: unsupported adapter weight {key!r}{hint}")
    for name, parts in modules.items():
        if "lora_A" not in parts or "lora_B" not in parts:
            raise ValueError(f"import_peft: module {name!r} lacks lora_A or lora_B weights")
    if not modules:
        raise ValueError("import_peft: the adapter file contains no LoRA weights")
    return modules


def _pattern_value(pattern: dict, name: str, default):
    """PEFT's `get_pattern_key` rule: the first key k with re.match(rf"(.*\\.)?({k})$", name) wins."""
    import re

    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def _make_layer(base: nn.Module, parametrization: str, rank: int, alpha: float, config: dict, dropout, dtype):
    if parametrization == "manifold":
        return ManifoldLoRALayer(base, rank, dropout=dropout, dtype=dtype)
    return FactorLoRALayer(
        base,
        rank,
        alpha=alpha,
        dropout=dropout,
        rslora=bool(config.get("use_rslora", False)),
        dora=bool(config.get("use_dora", False)),
        dtype=dtype,
    )


@torch.no_grad()
def import_peft(
    model: nn.Module,
    path: str | os.PathLike,
    parametrization: str = "manifold",
    *,
    rank: int | None = None,
    dropout: float | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, nn.Module]:
    """Load a PEFT LoRA adapter (safetensors or .bin) into `model`, injecting adapters where needed.

    Args:
        model: the ORIGINAL base model the adapter was trained on, or one already injected with matching
            adapters (then the factors are loaded into the existing layers).
        path: the adapter directory (`adapter_config.json` + `adapter_model.safetensors` or `.bin`).
        parametrization: "manifold" (continue on M_r with a Riemannian optimizer; the point is the adapter's
            product, whatever its factorization) or "factors" (continue as plain LoRA factors).
        rank: manifold only: the rank of the new points (default: each module's PEFT rank). A smaller rank
            keeps the best rank-r approximation, with a warning.
        dropout: adapter dropout for continued training (default: the adapter's `lora_dropout`).
        dtype: adapter dtype (default: fp32, fp64 for fp64 models).

    Returns {module path: layer}. The model's delta on each module equals PEFT's
    `scaling · lora_B @ lora_A` (DoRA: PEFT's magnitude semantics), so outputs match `PeftModel`.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"import_peft: parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}"
        )
    if rank is not None and parametrization != "manifold":
        raise ValueError(
            "import_peft: rank= applies to parametrization='manifold' only (factors keep PEFT's rank)"
        )
    config, weights = _read_adapter(Path(path))
    _check_config(config, parametrization)
    modules = _group_weights(weights)
    rslora = bool(config.get("use_rslora", False))
    dropout = float(config.get("lora_dropout", 0.0) or 0.0) if dropout is None else float(dropout)

    existing = adapter_layers(model)
    if existing and set(existing) != set(modules):
        missing = sorted(set(modules) - set(existing))[:5]
        extra = sorted(set(existing) - set(modules))[:5]
        raise ValueError(
            "import_peft: the model already has adapters on other modules than the adapter file (in the "
            f"file only: {missing}; in the model only: {extra}); import into a fresh base model instead"
        )

    plan = []  # (name, module, lora_A, lora_B, layer_rank, alpha, scaling, magnitude)
    for name, parts in modules.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(
                f"import_peft: the adapter targets {name!r}, which the model does not have"
            ) from None
        lora_A, lora_B = parts["lora_A"], parts["lora_B"]
        if lora_A.dim() != 2 or lora_B.dim() != 2 or lora_A.shape[0] != lora_B.shape[1]:
            raise ValueError(
                f"import_peft: {name}: lora_A {tuple(lora_A.shape)} and lora_B {tuple(lora_B.shape)} are "
                "not an r×in / out×r pair"
            )
        r = int(lora_A.shape[0])
        declared = int(_pattern_value(config.get("rank_pattern"), name, config.get("r", r)))
        if declared != r:
            raise ValueError(f"import_peft: {name}: the config says rank {declared} but lora_A has {r} rows")
        alpha = float(_pattern_value(config.get("alpha_pattern"), name, config.get("lora_alpha", r)))
        scaling = alpha / (math.sqrt(r) if rslora else r)
        base = module.base if name in existing else module
        if name not in existing and not supported_base(module):
            raise ValueError(
                f"import_peft: {name} is a {type(module).__name__}; only nn.Linear and transformers Conv1D "
                "modules are supported"
            )
        in_f, out_f = (
            (base.in_features, base.out_features) if isinstance(base, nn.Linear) else tuple(base.weight.shape)
        )
        if lora_A.shape[1] != in_f or lora_B.shape[0] != out_f:
            raise ValueError(
                f"import_peft: {name}: the adapter's delta is {lora_B.shape[0]}×{lora_A.shape[1]} (out×in) "
                f"but the module is {out_f}×{in_f}; was the adapter trained on a different base model?"
            )
        layer_rank = r if parametrization == "factors" or rank is None else int(rank)
        magnitude = parts.get("magnitude")
        if magnitude is not None and not config.get("use_dora"):
            raise ValueError(
                f"import_peft: {name} has a lora_magnitude_vector but the config has use_dora=false"
            )
        if config.get("use_dora") and (magnitude is None or tuple(magnitude.shape) != (out_f,)):
            raise ValueError(
                f"import_peft: {name}: DoRA adapter without a valid ({out_f},) lora_magnitude_vector"
            )
        plan.append((name, module, lora_A, lora_B, layer_rank, alpha, scaling, magnitude))

    if existing:
        for name, _, _, _, layer_rank, _, _, _ in plan:
            layer = existing[name]
            kind = "factors" if isinstance(getattr(layer, "lora_A", None), nn.Parameter) else "manifold"
            dora = bool(getattr(layer, "use_dora", False))
            if dora != bool(config.get("use_dora", False)):
                raise ValueError(
                    f"import_peft: {name}: use_dora={config.get('use_dora')} in the adapter but {dora} in "
                    "the model's layer; import into a fresh base model instead"
                )
            if kind != parametrization or layer.rank != layer_rank:
                raise ValueError(
                    f"import_peft: {name} is already a {kind} adapter of rank {layer.rank}, but the import "
                    f"asks for {parametrization} of rank {layer_rank}; import into a fresh base model "
                    "instead"
                )
        layers = existing
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        layers = {}
        for name, module, _, _, layer_rank, alpha, _, _ in plan:
            layer = _make_layer(module, parametrization, layer_rank, alpha, config, dropout, dtype)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
            layers[name] = layer
        layers = {name: layers[name] for name in adapter_layers(model)}  # module order

    for name, _, lora_A, lora_B, _, _, scaling, magnitude in plan:
        layer = layers[name]
        layer.load_factors(lora_A, lora_B, scaling)
        if magnitude is not None:
            layer.lora_magnitude.copy_(magnitude)
    return layers
