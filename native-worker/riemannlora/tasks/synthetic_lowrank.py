"""`synthetic-lowrank`: recover a hidden low-rank change of a frozen random network.

A stack of `depth` square linear layers (width `width`, tanh between them) is drawn from the seed and
frozen. The target network is the same stack with a hidden rank-`target_rank` change Δᵢ added to the
layers the adapter targets, so an adapter of rank ≥ target_rank can fit the target exactly; the task then
measures how far the learned adapter deltas are from the hidden ones (relative Frobenius distance, summed
over layers), a direct check that an optimizer finds the right low-rank point and not just a low loss.

Everything (weights, hidden change, inputs, noise) comes from one `torch.Generator` seeded with
`train.seed`, so two runs with the same config see the same problem (and runs that differ only in
`task.heldout` train on the same data and evaluate on disjoint halves of the same eval points). It runs in
seconds on a CPU: the end-to-end tests of the worker and the extension use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from riemannlora.heldout import SYNTHETIC_HELDOUT_HINT, heldout_part

from .base import Task


class MLPStack(nn.Module):
    """x -> L_{d-1}(tanh(... tanh(L_0 x))); layers are named layers.0 ... layers.{d-1}."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
        return x


def matches_target(name: str, target_modules: Any) -> bool:
    """PEFT suffix semantics (an entry matches a module named exactly so, or ending in '.' + entry)."""
    if target_modules == "all-linear":
        return True
    return any(name == t or name.endswith("." + t) for t in target_modules)


class SyntheticLowRankTask(Task):
    kind = "synthetic-lowrank"
    token_unit = "samples"

    def __init__(self, config: dict[str, Any]):
        syn = config["task"]["synthetic"]
        self.width = int(syn["width"])
        self.depth = int(syn["depth"])
        self.target_rank = int(syn["target_rank"])
        seed = int(config["train"]["seed"])
        gen = torch.Generator().manual_seed(seed)

        self.model = MLPStack(self.width, self.depth)
        with torch.no_grad():
            for layer in self.model.layers:
                # Variance 1/width keeps activations O(1) through the tanh stack at any depth.
                layer.weight.copy_(torch.randn(self.width, self.width, generator=gen) / math.sqrt(self.width))
                layer.bias.copy_(0.1 * torch.randn(self.width, generator=gen))
        self.model.requires_grad_(False)

        names = [f"layers.{i}" for i in range(self.depth)]
        self.changed = [
            n for n in names if matches_target(n, config["adapter"].get("target_modules", "all-linear"))
        ]
        # Hidden change: U diag(s) Vᵀ with orthonormal U, V and distinct singular values from
        # target_scale down to target_scale/2 (well separated, so the best rank-r fit is unique).
        self.hidden: dict[str, torch.Tensor] = {}
        k = self.target_rank
        s = float(syn["target_scale"]) * torch.linspace(1.0, 0.5, k)
        for name in self.changed:
            u = torch.linalg.qr(torch.randn(self.width, k, generator=gen, dtype=torch.float64)).Q
            v = torch.linalg.qr(torch.randn(self.width, k, generator=gen, dtype=torch.float64)).Q
            self.hidden[name] = (u * s.double()) @ v.T

        n_train, n_eval = int(syn["n_train"]), int(syn["n_eval"])
        self.x_train = torch.randn(n_train, self.width, generator=gen)
        self.x_eval = torch.randn(n_eval, self.width, generator=gen)
        noise = float(syn["noise"])
        self.y_train = self._target(self.x_train) + noise * torch.randn(n_train, self.width, generator=gen)
        self.y_eval = self._target(self.x_eval)  # eval targets are noise-free: the loss floor is 0
        # task.heldout: all the eval points, or the even- or odd-numbered half, cut after every draw so that
        # the weights, the hidden change and the training data are the same whichever part is evaluated.
        self.heldout = config["task"].get("heldout", "all")
        self.x_eval, self.y_eval = (
            heldout_part(t, self.heldout, what="evaluation points", hint=SYNTHETIC_HELDOUT_HINT)
            for t in (self.x_eval, self.y_eval)
        )
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        """The target network's output, computed in float64 from the frozen weights plus Δ."""
        h = x.double()
        for i, layer in enumerate(self.model.layers):
            w = layer.weight.double() + self.hidden.get(f"layers.{i}", 0.0)
            h = h @ w.T + layer.bias.double()
            if i < self.depth - 1:
                h = torch.tanh(h)
        return h.float()

    def num_train(self) -> int:
        return self.x_train.shape[0]

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        super().to(device, dtype)
        self.device, self.dtype = device, dtype
        for name in ("x_train", "y_train", "x_eval", "y_eval"):
            setattr(self, name, getattr(self, name).to(device=device, dtype=dtype))

    def train_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(list(indices), device=self.device)
        return self.x_train[idx], self.y_train[idx]

    def batch_tokens(self, batch: Any) -> int:
        return int(batch[0].shape[0])

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x).float(), y.float())

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, *, batch_size: int, max_batches: int, autocast: Any
    ) -> dict[str, float]:
        # The eval set is small: evaluate all of it (chunked; the task.heldout part of it) so numbers are
        # comparable across configs.
        total, count = 0.0, 0
        for start in range(0, self.x_eval.shape[0], 1024):
            x, y = self.x_eval[start : start + 1024], self.y_eval[start : start + 1024]
            with autocast():
                out = model(x)
            total += float(nn.functional.mse_loss(out.float(), y.float(), reduction="sum"))
            count += y.numel()
        metrics = {"loss": total / count}
        metrics.update(self.train_extra(model))
        return metrics

    @torch.no_grad()
    def train_extra(self, model: nn.Module) -> dict[str, float]:
        """Distance of the learned adapter deltas to the hidden change (absolute and relative)."""
        deltas = _adapter_deltas(model)
        if not deltas:
            return {}
        num, den = 0.0, 0.0
        for name, hidden in self.hidden.items():
            learned = deltas.get(name)
            learned = learned.double().cpu() if learned is not None else torch.zeros_like(hidden)
            num += float(torch.linalg.matrix_norm(learned - hidden) ** 2)
            den += float(torch.linalg.matrix_norm(hidden) ** 2)
        return {"delta_distance": math.sqrt(num), "delta_rel_error": math.sqrt(num / den) if den else 0.0}

    def describe(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "depth": self.depth,
            "target_rank": self.target_rank,
            "changed_layers": list(self.changed),
            "n_train": self.num_train(),
            "n_eval": int(self.x_eval.shape[0]),
            "heldout": self.heldout,
        }


def _adapter_deltas(model: nn.Module) -> dict[str, torch.Tensor]:
    """{module path: dense delta} for every adapter layer of `model` (uses the adapters' delta_weight())."""
    out = {}
    for name, module in model.named_modules():
        delta = getattr(module, "delta_weight", None)
        if callable(delta) and hasattr(module, "base"):
            out[name] = delta()
    return out
