"""Checkpoints: everything a resumed run needs to continue exactly where the last one stopped.

A checkpoint is `<run-dir>/checkpoints/step-NNNNNNNN/state.pt` holding the adapter state (trainable
parameters and the adapter layers' buffers, e.g. the manifold point's A_L and B_R and any frozen LOI
offset; never the frozen base weights), the optimizer and LR-scheduler states, the sampler position (data
order), the RNG states (torch, CUDA, Python, NumPy) and the loop's counters. With all of that restored, a
resumed CPU run computes bit-identical losses to an uninterrupted one (tests/test_worker_faults.py).

Writes are atomic: the folder is written under a temporary name and renamed into place, so a kill during
a save leaves the previous checkpoint intact. Only the newest `keep_checkpoints` folders are kept.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

STATE_FILE = "state.pt"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        m = _NAME.match(child.name)
        if m and (child / STATE_FILE).is_file():
            out.append((int(m.group(1)), child))
    return sorted(out)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


_PARTIAL = re.compile(r"^\.(tmp|old)-step-\d{8,}-\d+$")
DAMAGED_PREFIX = ".damaged-"


def remove_partial(root: Path) -> list[str]:
    """Delete the half-written folders a killed save leaves (`.tmp-step-*`, `.old-step-*`); call only
    while holding the run directory's lock (no other writer can be saving). Returns their names."""
    if not root.is_dir():
        return []
    removed = [child.name for child in root.iterdir() if _PARTIAL.match(child.name)]
    for name in removed:
        shutil.rmtree(root / name, ignore_errors=True)
    return removed


def load_newest_readable(root: Path, warn) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, newest first. One that does not (truncated, garbage, another
    format) is renamed `.damaged-step-N` (kept for inspection, never tried or counted again) and `warn`
    is told why; None when none loads."""
    for _, path in reversed(list_checkpoints(root)):
        try:
            return path, load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: try the older one
            aside = root / f"{DAMAGED_PREFIX}{path.name}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            warn(f"checkpoint {path.name} cannot be read ({why}); moved to {aside.name}, trying an older one")
    return None


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    root.mkdir(exist_ok=True)  # never its parents: a deleted run directory is not re-created
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with open(tmp / STATE_FILE, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # same step saved twice (e.g. stop right after an interval save): replace it
        old = root / f".old-{checkpoint_name(step)}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only: a checkpoint is plain tensors and containers, never arbitrary pickled objects.
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {state.get('format')!r}, this worker reads {FORMAT_VERSION}"
        )
    return state


# ------------------------------------------------------------------------------------------------------
# What goes into a checkpoint


def _adapter_layer_paths(model: nn.Module) -> dict[str, nn.Module]:
    try:
        from riemannlora.adapters import adapter_layers

        return dict(adapter_layers(model))
    except ImportError:  # pragma: no cover - adapters are part of the package
        return {}


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and adapter-layer buffers, keyed like model.state_dict(); no base weights."""
    out: dict[str, torch.Tensor] = {}
    for path, layer in _adapter_layer_paths(model).items():
        prefix = f"{path}." if path else ""
        for key, value in layer.state_dict().items():
            if not key.startswith("base."):
                out[prefix + key] = value.detach().cpu().clone()
    for name, param in model.named_parameters():
        if param.requires_grad and name not in out:
            out[name] = param.detach().cpu().clone()
    return out


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(
            "the checkpoint has adapter tensors this model does not: "
            f"{', '.join(result.unexpected_keys[:5])}; was the config changed since it was written?"
        )
    missing = set(state) & set(result.missing_keys)
    if missing:
        raise ValueError(f"checkpoint tensors not restored: {', '.join(sorted(missing)[:5])}")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _plain_python_rng(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - saving the legacy global RNG
        state["numpy"] = {
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
            "name": str(name),
        }
    except ImportError:
        pass
    return state


def _plain_python_rng(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        try:
            import numpy as np

            np_state = state["numpy"]
            np.random.set_state(  # noqa: NPY002
                (
                    np_state["name"],
                    np_state["keys"].numpy().astype("uint32"),
                    np_state["pos"],
                    np_state["has_gauss"],
                    np_state["cached"],
                )
            )
        except ImportError:
            pass
