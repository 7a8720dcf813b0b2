"""Device and precision choices of a run (`train.device`, `train.precision`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


def resolve_device(spec: str) -> torch.device:
    """`auto` -> cuda, then mps, then cpu. An explicit device that is not available is an error."""
    from riemannlora.errors import WorkerError

    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise WorkerError(
                "config",
                f"train.device is {spec!r} but this torch build has no usable CUDA device "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})",
                'use "auto" or "cpu", or install a CUDA build of torch '
                "(see `python -m riemannlora.worker doctor`)",
                field="/train/device",
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise WorkerError(
                "config",
                f"train.device is {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist",
                f"use cuda:0 ... cuda:{torch.cuda.device_count() - 1}",
                field="/train/device",
            )
    if device.type == "mps" and not mps_ok:
        raise WorkerError(
            "config",
            "train.device is 'mps' but MPS is not available here",
            'use "auto" or "cpu"',
            field="/train/device",
        )
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return platform.processor() or platform.machine() or "cpu"


@dataclass(frozen=True)
class Precision:
    """`label` is what the run really uses (bf16 may fall back to fp32 where autocast is unsupported)."""

    label: str  # fp32 | bf16 | fp64
    param_dtype: torch.dtype  # dtype the model's weights are kept in
    autocast: Callable[[], Any]  # context manager factory for forward passes
    note: str | None = None


def resolve_precision(requested: str, device: torch.device) -> Precision:
    none = contextlib.nullcontext
    if requested == "fp64":
        if device.type == "mps":
            return Precision("fp32", torch.float32, none, "MPS has no float64: running fp32")
        return Precision("fp64", torch.float64, none)
    if requested == "bf16":
        supported = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
        if device.type == "mps":
            supported = hasattr(torch, "autocast")
        if supported:
            # Weights stay fp32 (master copy); matmuls run in bf16 under autocast. Adapter geometry is fp32.
            return Precision(
                "bf16", torch.float32, lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            )
        return Precision(
            "fp32", torch.float32, none, f"bf16 autocast is not supported on {device}: running fp32"
        )
    return Precision("fp32", torch.float32, none)
