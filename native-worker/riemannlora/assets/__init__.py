"""The built-in default: a tiny pretrained causal LM and a fine-tuning dataset shipped with the package.

`default/model/` is a Hugging Face directory (a 4-layer Llama, character-level tokenizer) pretrained on a
synthetic language of templated tasks (copy, add, find, next, len, toy-grammar sentences);
`default/data/{train,eval}.jsonl` hold `{"completion": ..., "prompt": ...}` records of a task it never saw:
a letter code (`"encode qwerty ="` -> `" qqklxy"`: two fixed swap tables, one for even and one for odd
positions). The base model scores 0% exact match on the eval split; a LoRA fine-tune learns the code
gradually over a few hundred CPU steps. All of it is made by
`native-worker/tools/make_default_assets.py` (see `default/README.md`); synthetic, MIT like the project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent / "default"

DEFAULT_DATA_FILES = {"train": "train.jsonl", "eval": "eval.jsonl"}
DEFAULT_PROMPT_FIELD = "prompt"
DEFAULT_COMPLETION_FIELD = "completion"

DESCRIPTION = (
    "built-in default: a 0.6M-parameter character-level Llama pretrained on a synthetic task language "
    "(copy, add, lookup, next letter, length, toy grammar), fine-tuned on a skill it never saw: a "
    "position-dependent letter code; metrics: token accuracy (teacher-forced) and exact-match accuracy of "
    "greedy completions on 1000 held-out words"
)


def default_dir() -> Path:
    """The folder with `model/`, `data/` and `README.md` of the built-in default."""
    return _ROOT


def default_model_dir() -> Path:
    """The Hugging Face model directory (config.json, model.safetensors, tokenizer files)."""
    return _ROOT / "model"


def default_data_dir() -> Path:
    """The folder with `train.jsonl` and `eval.jsonl` (prompt/completion records)."""
    return _ROOT / "data"


def default_data_file(split: str) -> Path:
    """The `.jsonl` file of `split` ("train" or "eval")."""
    if split not in DEFAULT_DATA_FILES:
        raise ValueError(f"split must be one of {sorted(DEFAULT_DATA_FILES)}, got {split!r}")
    return default_data_dir() / DEFAULT_DATA_FILES[split]


__all__ = [
    "DEFAULT_COMPLETION_FIELD",
    "DEFAULT_DATA_FILES",
    "DEFAULT_PROMPT_FIELD",
    "DESCRIPTION",
    "default_data_dir",
    "default_data_file",
    "default_dir",
    "default_model_dir",
]


# Used when recommended.json does not say otherwise (it may override any task field).
_FALLBACK_TASK_FIELDS: dict[str, Any] = {"seq_len": 64}


def recommended_task_fields() -> dict[str, Any]:
    """Task defaults of the built-in default, read while a config is resolved: here (no torch), not in
    tasks/builtin_default.py, whose import pulls in torch through the causal-LM task."""
    fields = dict(_FALLBACK_TASK_FIELDS)
    try:
        path = default_data_dir() / "recommended.json"
        if path.is_file():
            fields.update(json.loads(path.read_text(encoding="utf-8")).get("task", {}))
    except (OSError, ValueError):
        pass
    return fields
