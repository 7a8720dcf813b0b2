"""Common machinery of the adapter layers: the wrapped frozen module, the frozen low-rank offset, probes.

An adapted layer computes ``y = base(x) + Σ_j (x_d @ R_j) @ L_jᵀ`` where every ``(R_j, L_j)`` pair is an
``in×k`` / ``out×k`` factor pair (adapter, frozen offset, LOI probe) and ``x_d`` is the adapter input after
dropout. All pairs are concatenated into ONE ``in×K`` and ONE ``out×K`` matrix, so an adapted layer costs
two thin matmuls on top of the base, and no ``out×in`` matrix is ever formed in forward or backward.
"""

from __future__ import annotations

import sys
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import geometry_dtype

__all__ = ["AdapterLayerBase", "owner_of", "supported_base", "base_features"]

_HALF = (torch.float16, torch.bfloat16)

# id(Parameter) -> (weakref(param), weakref(layer)). Lets optimizers given a plain iterable of parameters find
# the layer that owns them (geoopt-style optimizers are handed params, but a manifold step needs the layer's
# buffers). Keyed by id because tensors do not support the == a WeakKeyDictionary needs; the param weakref
# guards against a recycled id.
_OWNERS: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def owner_of(param: Tensor) -> AdapterLayerBase | None:
    """The adapter layer that owns ``param``, or None."""
    entry = _OWNERS.get(id(param))
    if entry is None or entry[0]() is not param:
        return None
    return entry[1]()


def _conv1d_class():
    # A Conv1D module can only exist if transformers is already imported: importing it here just to
    # check would cost every plain-torch model (the synthetic task) one to two seconds of start-up.
    if "transformers" not in sys.modules:
        return None
    try:
        from transformers.pytorch_utils import Conv1D
    except Exception:  # transformers is optional
        return None
    return Conv1D


def supported_base(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and Hugging Face ``Conv1D`` (GPT-2; weight stored in×out)."""
    if isinstance(module, nn.Linear):
        return True
    conv1d = _conv1d_class()
    return conv1d is not None and isinstance(module, conv1d)


def base_features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a supported base module."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if supported_base(module):
        in_f, out_f = module.weight.shape
        return int(in_f), int(out_f)
    raise TypeError(
        f"{type(module).__name__} is not supported: adapters wrap nn.Linear or transformers Conv1D modules"
    )


class AdapterLayerBase(nn.Module):
    """Base class of :class:`ManifoldLoRALayer` and :class:`FactorLoRALayer`.

    Attributes: ``base`` (the wrapped, frozen module), ``in_features``, ``out_features``, ``rank``,
    ``scaling`` and the frozen low-rank offset buffers ``offset_B`` (out×k), ``offset_A`` (k×in), k ≥ 0.
    The offset is subtracted in the forward so that a start away from zero (LOI, PiSSA, LoRA-GA) leaves the
    model function unchanged without touching the base weight: exact in any precision and it works on
    quantized bases (docs/method.md §5).
    """

    def __init__(self, base: nn.Module, rank: int, dropout: float = 0.0, dtype: torch.dtype | None = None):
        super().__init__()
        in_f, out_f = base_features(base)
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if rank > min(in_f, out_f):
            raise ValueError(
                f"rank {rank} exceeds min(in_features={in_f}, out_features={out_f}); choose rank <= "
                f"{min(in_f, out_f)} or leave this module out of target_modules"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base = base
        self.in_features, self.out_features, self.rank = in_f, out_f, rank
        self.is_conv1d = not isinstance(base, nn.Linear)
        weight = base.weight
        self.geometry_dtype = dtype if dtype is not None else geometry_dtype(weight.dtype)
        if self.geometry_dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"adapter dtype must be torch.float32 or torch.float64, got {self.geometry_dtype}"
            )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        factory = {"device": weight.device, "dtype": self.geometry_dtype}
        self.register_buffer("offset_B", torch.zeros(out_f, 0, **factory))
        self.register_buffer("offset_A", torch.zeros(0, in_f, **factory))
        # LOI probe: a list of (R in×k, L out×k) pairs added to the forward, None outside of loi_init.
        self._probes: list[tuple[Tensor, Tensor]] | None = None

    # ------------------------------------------------------------------ ownership registry
    def _register_params(self) -> None:
        for key in [k for k, (p, layer) in _OWNERS.items() if p() is None or layer() is None]:
            del _OWNERS[key]
        for p in self.parameters(recurse=False):
            _OWNERS[id(p)] = (weakref.ref(p), weakref.ref(self))

    def __setstate__(self, state):  # deepcopy / pickle: re-register the copied parameters
        super().__setstate__(state)
        self._register_params()

    # ------------------------------------------------------------------ dtype and device moves
    def _apply(self, fn, recurse=True):
        """``model.to(...)``, ``.half()``, ``.bfloat16()``, ``.cuda()`` and friends, with one exception: a
        cast to half precision (bf16/fp16) moves the adapter's own state (factors, point, frozen offset,
        grads) to the new device but keeps its dtype (docs/method.md §7). In bf16 the point would be
        rounded to 3 significant digits, ``A_L`` would lose its orthonormality (8e-4 at 30×3) and a small
        step would drown in rounding. The base module is cast as asked; the forward casts the factors to
        the input's dtype. Casts between fp32 and fp64 apply, and the geometry dtype follows them."""
        if recurse:
            for module in self.children():
                module._apply(fn)
        own = [t for t in (*self._parameters.values(), *self._buffers.values()) if t is not None]
        own += [p.grad for p in self._parameters.values() if p is not None and p.grad is not None]
        own_ids = {id(t) for t in own}

        def keep_precision(t):
            out = fn(t)
            if id(t) in own_ids and out.dtype in _HALF and out.dtype != t.dtype and t.is_floating_point():
                return t.to(device=out.device)
            return out

        super()._apply(keep_precision, recurse=False)
        self.geometry_dtype = self.offset_B.dtype
        return self

    # ------------------------------------------------------------------ base weight
    def base_weight(self) -> Tensor:
        """The frozen out×in weight (a transposed view for Conv1D; no copy)."""
        w = self.base.weight
        return w.t() if self.is_conv1d else w

    @property
    def scaling(self) -> float:
        return self._scaling

    # ------------------------------------------------------------------ frozen offset
    @property
    def offset_rank(self) -> int:
        return int(self.offset_A.shape[0])

    @torch.no_grad()
    def set_offset(self, B0: Tensor, A0: Tensor) -> None:
        """Set the frozen offset ``B0 @ A0`` (out×k, k×in), copied in the geometry dtype."""
        if B0.dim() != 2 or A0.dim() != 2 or B0.shape[1] != A0.shape[0]:
            raise ValueError(
                f"set_offset expects B0 (out×k) and A0 (k×in), got {tuple(B0.shape)}, {tuple(A0.shape)}"
            )
        if B0.shape[0] != self.out_features or A0.shape[1] != self.in_features:
            raise ValueError(
                f"set_offset: shapes {tuple(B0.shape)} @ {tuple(A0.shape)} do not match the layer "
                f"({self.out_features}×{self.in_features})"
            )
        kw = {"device": self.offset_B.device, "dtype": self.geometry_dtype}
        self.offset_B = B0.detach().to(**kw).clone()
        self.offset_A = A0.detach().to(**kw).clone()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint may carry an offset of another rank k than this fresh layer (e.g. saved after LOI):
        # resize the buffers first so that load_state_dict restores it instead of failing on the shape.
        for name in ("offset_B", "offset_A"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None and incoming.shape != getattr(self, name).shape:
                setattr(self, name, getattr(self, name).new_zeros(incoming.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def clear_offset(self) -> None:
        self.set_offset(
            self.offset_B.new_zeros(self.out_features, 0), self.offset_A.new_zeros(0, self.in_features)
        )

    # ------------------------------------------------------------------ forward
    def _lowrank_pairs(self) -> list[tuple[Tensor, Tensor]]:
        """The adapter's ``(R in×k, L out×k)`` pairs; the layer adds ``x_d R Lᵀ`` for each."""
        raise NotImplementedError

    def _all_pairs(self) -> list[tuple[Tensor, Tensor]]:
        pairs = list(self._lowrank_pairs())
        if self.offset_rank:
            pairs.append((self.offset_A.t(), -self.offset_B))
        if self._probes:
            pairs.extend(self._probes)
        return pairs

    def _lowrank_forward(self, x_d: Tensor) -> Tensor:
        pairs = self._all_pairs()
        R = torch.cat([r for r, _ in pairs], dim=1).to(x_d.dtype)
        L = torch.cat([l for _, l in pairs], dim=1).to(x_d.dtype)
        # (x R) Lᵀ: tokens×K then tokens×out; never an out×in product.
        return F.linear(F.linear(x_d, R.t()), L)

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self._lowrank_forward(self.dropout(x))

    # ------------------------------------------------------------------ analysis / export
    def adapter_weight(self) -> Tensor:
        """Dense out×in adapter (offset not subtracted). Tests and analysis only."""
        raise NotImplementedError

    @torch.no_grad()
    def delta_weight(self) -> Tensor:
        """Dense out×in delta relative to the ORIGINAL base (adapter minus offset). Tests/analysis only."""
        return self.adapter_weight() - self.offset_B @ self.offset_A

    def peft_factors(self) -> tuple[Tensor, Tensor, float, dict]:
        raise NotImplementedError

    def load_factors(self, lora_A: Tensor, lora_B: Tensor, scaling: float) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        kind = "Conv1D" if self.is_conv1d else "Linear"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"scaling={self.scaling:g}, base={kind}, dtype={str(self.geometry_dtype).replace('torch.', '')}, "
            f"offset_rank={self.offset_rank}"
        )
