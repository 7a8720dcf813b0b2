"""What the training loop needs from a task: a model, batches by index, a loss, and an evaluation.

A task owns its data; the loop owns the order (a seeded sampler whose position is checkpointed), so that a
batch is a pure function of the indices it is given and a resumed run sees exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class Task:
    """Base class; subclasses set `kind`, build `self.model` in `__init__` and implement the methods."""

    kind: str = ""
    #: what `tokens_per_s` counts for this task ("tokens" for language models, "samples" otherwise)
    token_unit: str = "tokens"

    model: nn.Module

    def num_train(self) -> int:
        raise NotImplementedError

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        """Move the model and any stored tensors. `dtype` is the parameter dtype (fp32 unless fp64)."""
        self.model.to(device=device, dtype=dtype)

    def train_batch(self, indices: Sequence[int]) -> Any:
        """The batch made of training examples `indices`, on the task's device."""
        raise NotImplementedError

    def batch_tokens(self, batch: Any) -> int:
        """How many tokens (or samples) a batch trains on, for tokens/s."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar mean loss of `model` on `batch` (called under autocast by the loop)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, *, batch_size: int, max_batches: int, autocast: Any
    ) -> dict[str, float]:
        """Held-out metrics; must contain "loss"."""
        raise NotImplementedError

    def train_extra(self, model: nn.Module) -> dict[str, float]:
        """Extra per-step metrics for `metric` events (cheap)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """A few facts for the `init` event details and the log."""
        return {}
