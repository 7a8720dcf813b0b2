"""PEFT-like LoRA factors for the Euclidean baselines (LoRA, rsLoRA, LoRA+, PiSSA, LoRA-GA, DoRA, ...)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AdapterLayerBase

__all__ = ["FactorLoRALayer"]


class FactorLoRALayer(AdapterLayerBase):
    """``ΔW = s · lora_B @ lora_A − B0 A0`` with Parameters ``lora_A`` (r×in) and ``lora_B`` (out×r).

    LoRA: Hu et al. 2022 (kaiming-uniform ``lora_A`` with a=√5, zero ``lora_B``, as PEFT);
    ``s = alpha / r`` or ``alpha / √r`` with rsLoRA (Kalajdzievski 2023). Dropout acts on the adapter input
    only. Factors are kept in fp32 (fp64 for fp64 models) even for bf16 models, like PEFT's
    ``autocast_adapter_dtype``.

    DoRA (Liu et al. 2024, PEFT ``use_dora``): ``W' = m ⊙ (W + sBA) / ‖W + sBA‖_row`` with a trainable
    magnitude ``lora_magnitude`` (out,), initialised to the row norms of W, the norm detached in backward
    (DoRA §4.3). The row norms are computed as ``‖W_i‖² + 2s B_i·(A W_iᵀ) + s² B_i (A Aᵀ) B_iᵀ``, so DoRA
    too runs without forming an out×in matrix. DoRA does not combine with a frozen offset.
    """

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        alpha: float | None = None,
        dropout: float = 0.0,
        rslora: bool = False,
        dora: bool = False,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(base, rank, dropout=dropout, dtype=dtype)
        self.lora_alpha = float(rank if alpha is None else alpha)
        if not self.lora_alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.use_rslora = bool(rslora)
        self._scaling = self.lora_alpha / (math.sqrt(rank) if rslora else rank)
        kw = {"device": base.weight.device, "dtype": self.geometry_dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **kw))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.use_dora = bool(dora)
        if self.use_dora:
            with torch.no_grad():
                norms = torch.linalg.vector_norm(self.base_weight(), dim=1, dtype=self.geometry_dtype)
            self.lora_magnitude = nn.Parameter(norms.to(**kw))
        self._register_params()

    def _lowrank_pairs(self) -> list[tuple[Tensor, Tensor]]:
        return [(self.lora_A.t(), self.lora_B * self._scaling)]

    # ------------------------------------------------------------------ DoRA
    def dora_weight_norm(self) -> Tensor:
        """Row norms ``‖W + s B A‖`` (out,), detached, without an out×in matrix."""
        with torch.no_grad():
            W = self.base_weight()
            A, B, s = self.lora_A, self.lora_B, self._scaling
            w_sq = torch.linalg.vector_norm(W, dim=1, dtype=A.dtype) ** 2
            AWt = F.linear(A.to(W.dtype), W).to(A.dtype)  # r×out
            cross = (B * AWt.t()).sum(dim=1)
            quad = ((B @ (A @ A.t())) * B).sum(dim=1)
            return (w_sq + 2 * s * cross + s * s * quad).clamp_min(0).sqrt()

    def forward(self, x: Tensor) -> Tensor:
        result = self.base(x)
        x_d = self.dropout(x)
        if not self.use_dora:
            return result + self._lowrank_forward(x_d)
        if self.offset_rank:
            raise RuntimeError("DoRA does not combine with a frozen offset")
        scale = (self.lora_magnitude / self.dora_weight_norm()).to(x.dtype)
        lora = self._lowrank_forward(x_d)
        if isinstance(self.dropout, nn.Identity) or not self.training:
            bias = getattr(self.base, "bias", None)
            base_nb = result - bias if bias is not None else result
        else:  # as PEFT: with active dropout the base branch is recomputed from the dropped input
            base_nb = F.linear(x_d, self.base_weight().to(x.dtype))
        return result + (scale - 1) * base_nb + scale * lora

    # ------------------------------------------------------------------ analysis / export
    @torch.no_grad()
    def adapter_weight(self) -> Tensor:
        return self._scaling * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def delta_weight(self) -> Tensor:
        if not self.use_dora:
            return super().delta_weight()
        W = self.base_weight().to(self.geometry_dtype)
        merged = W + self.adapter_weight()
        return (self.lora_magnitude / self.dora_weight_norm())[:, None] * merged - W

    @torch.no_grad()
    def peft_factors(self) -> tuple[Tensor, Tensor, float, dict]:
        """``(lora_A, lora_B, lora_alpha, extras)``: ``(lora_alpha / r') lora_B @ lora_A == delta_weight()``.

        Without an offset these are the factors themselves and ``lora_alpha = s·r`` (so rsLoRA exports with
        ``use_rslora=False`` semantics); DoRA adds ``extras["lora_magnitude_vector"]``. With an offset
        (k > 0): ``[s·B, −B0] · [A; A0]`` with ``lora_alpha = r + k``.
        """
        extras = {}
        if self.use_dora:
            extras["lora_magnitude_vector"] = self.lora_magnitude.detach().clone()
        if not self.offset_rank:
            return (
                self.lora_A.detach().clone(),
                self.lora_B.detach().clone(),
                self._scaling * self.rank,
                extras,
            )
        lora_B = torch.cat([self._scaling * self.lora_B, -self.offset_B], dim=1)
        lora_A = torch.cat([self.lora_A, self.offset_A], dim=0)
        return lora_A.detach().clone(), lora_B.detach().clone(), float(lora_A.shape[0]), extras

    @torch.no_grad()
    def load_factors(self, lora_A: Tensor, lora_B: Tensor, scaling: float) -> None:
        """Set ``lora_A = lora_A``, ``lora_B = lora_B · scaling / s``: the delta is ``scaling·lora_B@lora_A``
        and the given split is kept. Clears any offset."""
        if tuple(lora_A.shape) != tuple(self.lora_A.shape) or tuple(lora_B.shape) != tuple(self.lora_B.shape):
            raise ValueError(
                f"load_factors: expected lora_A {tuple(self.lora_A.shape)} and lora_B "
                f"{tuple(self.lora_B.shape)}, "
                f"got {tuple(lora_A.shape)} and {tuple(lora_B.shape)}; inject with the adapter's rank"
            )
        self.clear_offset()
        self.lora_A.copy_(lora_A)
        self.lora_B.copy_(lora_B * (float(scaling) / self._scaling))

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + (", dora=True" if self.use_dora else "")
            + (", rslora=True" if self.use_rslora else "")
        )
