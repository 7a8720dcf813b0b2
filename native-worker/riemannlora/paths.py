"""Whether a model or data string names a local path or a Hugging Face hub id.

A bottom module (no imports from the package): the config checks (config.py) and the tasks that load
models (tasks/causal_lm.py) must agree, and tasks sit below config (tests/test_import_layers.py).
"""

from __future__ import annotations

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
