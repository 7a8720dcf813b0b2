"""The training loop and its parts: device/precision, LR schedule, data order, memory figure."""

from .device import Precision, resolve_device, resolve_precision
from .loop import Loop, LoopResult, LoopState, evaluate, run_loop
from .sampler import EpochSampler
from .schedule import lr_factor, make_scheduler

__all__ = [
    "EpochSampler",
    "Loop",
    "LoopResult",
    "LoopState",
    "Precision",
    "evaluate",
    "lr_factor",
    "make_scheduler",
    "resolve_device",
    "resolve_precision",
    "run_loop",
]
