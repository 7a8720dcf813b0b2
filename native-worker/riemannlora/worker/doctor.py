"""`doctor`: what this Python environment can run, as one JSON object.

Reports Python, torch (version, CUDA/MPS builds), each CUDA/MPS device with its name and memory, the
optional packages (transformers, peft, tokenizers, datasets) with versions, and for each missing one the
pip command that installs it. Nothing here loads a model or touches the network.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

from riemannlora.errors import PIP_NAMES, pip_command

OPTIONAL = {
    "transformers": "causal-lm and builtin-default tasks (Hugging Face models)",
    "peft": "loading exported adapters with PeftModel.from_pretrained (export itself needs only safetensors)",
    "tokenizers": "fast tokenizers of Hugging Face models",
    "datasets": "task.data given as a datasets hub id (local .jsonl/.json/.txt files need nothing)",
}
REQUIRED = ("torch", "numpy", "jsonschema", "safetensors")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor() -> dict[str, Any]:
    report: dict[str, Any] = {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "riemannlora": _version("riemannlora"),
        "required": {name: _version(name) for name in REQUIRED},
        "optional": {},
        "devices": [],
        "install_hints": [],
    }
    for name, needed_for in OPTIONAL.items():
        version = _version(name)
        report["optional"][name] = {
            "installed": version is not None,
            "version": version,
            "needed_for": needed_for,
        }
        if version is None:
            report["install_hints"].append(f"{pip_command(name)}  # {needed_for}")
    for name in REQUIRED:
        if report["required"][name] is None:
            report["install_hints"].insert(0, f'pip install "{PIP_NAMES.get(name, name)}"  # required')
    try:
        import torch
    except ImportError as exc:
        report["torch"] = {"installed": False, "error": str(exc)}
        report["install_hints"].insert(
            0, "pip install torch  # required (https://pytorch.org for CUDA builds)"
        )
        report["ok"] = False
        return report
    report["torch"] = {
        "installed": True,
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            report["devices"].append(
                {
                    "type": "cuda",
                    "index": i,
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                    "capability": f"{props.major}.{props.minor}",
                    "bf16": bool(torch.cuda.is_bf16_supported()),
                }
            )
    if report["torch"]["mps_available"]:
        mem = None
        try:
            mem = int(torch.mps.recommended_max_memory())
        except (AttributeError, RuntimeError):
            pass
        report["devices"].append({"type": "mps", "index": 0, "name": "Apple MPS", "memory_bytes": mem})
    report["devices"].append(
        {
            "type": "cpu",
            "index": 0,
            "name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        }
    )
    if not torch.cuda.is_available() and torch.version.cuda is None:
        report["install_hints"].append(
            "this torch build is CPU-only; for an NVIDIA GPU install a CUDA build (see https://pytorch.org)"
        )
    report["ok"] = all(report["required"].values())
    return report
