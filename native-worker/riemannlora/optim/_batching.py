"""Shared machinery of the Riemannian optimizers: finding the manifold layers, batching same-shape layers.

The optimizers are thin ``torch.optim.Optimizer`` subclasses (geoopt style). A step gathers every
:class:`~riemannlora.adapters.ManifoldLoRALayer` of the param groups, buckets them by
``(out, in, rank, dtype, device)``, stacks each bucket into ``b×…`` tensors and runs the geometry ONCE per
bucket (one batched QR / SVD call per building block instead of one per layer: at LoRA sizes a step costs
solver-call latency, not arithmetic). Per-layer hyperparameters (lr, momentum, weight decay of the layer's
param group) enter as ``b×1×1`` tensors, so param groups and schedulers do not break the batching.

Optimizer state is keyed by the layer's ``B`` Parameter: ``momentum_A`` (out×r) and ``momentum_B`` (in×r),
the momentum tangent vector already transported to the layer's current point, ``point_probe`` (the first
and last rows of the ``A_L`` and ``B`` it belongs to, 4×r) and ``step``. The point itself lives in the
layer (buffers ``A_L``, ``B_R`` and Parameter ``B`` are in the model's ``state_dict``), so a checkpoint is
the pair (model state_dict, optimizer state_dict). The momentum is only valid at the point it was
transported to: when the point was replaced behind the optimizer's back (``set_point``, ``load_factors``,
``model.load_state_dict`` alone, an optimizer state from another run), the probe no longer matches and
that layer's momentum restarts from zero, with a warning (docs/method.md §4).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..adapters import ManifoldLoRALayer, owner_of
from ..geometry import FixedRankManifold, TangentBasis, geometry_dtype

__all__ = ["ManifoldOptimizerBase", "Bucket"]


def _expand(params) -> list:
    """Turn a model / layer / iterable of params / param-group dicts into what torch.optim expects."""
    if isinstance(params, nn.Module):
        layers = [m for m in params.modules() if isinstance(m, ManifoldLoRALayer)]
        if not layers:
            raise ValueError(
                "no ManifoldLoRALayer found in the module: call inject_adapters(model, ..., "
                "parametrization='manifold') first (Riemannian optimizers train manifold adapters only)"
            )
        return [p for layer in layers for p in (layer.B, layer.Z1)]
    if isinstance(params, Tensor):
        raise TypeError(
            "params must be a model, an iterable of parameters or of param-group dicts, not a Tensor"
        )
    out = []
    for item in params:
        if isinstance(item, dict):
            group = dict(item)
            group["params"] = (
                _expand(group["params"]) if not isinstance(group["params"], Tensor) else [group["params"]]
            )
            out.append(group)
        elif isinstance(item, nn.Module):
            out.extend(_expand(item))
        else:
            out.append(item)
    return out


class Bucket:
    """Same-shape layers stacked for one batched step, with their per-layer hyperparameters."""

    def __init__(self, entries: list[tuple[ManifoldLoRALayer, dict]]):
        self.layers = [layer for layer, _ in entries]
        self.groups = [group for _, group in entries]
        first = self.layers[0]
        self.dtype = geometry_dtype(first.B.dtype)
        self.rank = first.rank
        # the manifold the bucket's points live on; the optimizers step through its coordinate form
        self.manifold = FixedRankManifold(first.out_features, first.in_features, first.rank)

        def stack(tensors: list[Tensor]) -> Tensor:  # a lone layer is viewed, not copied
            out = tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)
            return out.to(self.dtype)

        self.A_L = stack([layer.A_L for layer in self.layers])
        self.B = stack([layer.B.detach() for layer in self.layers])
        self.B_R = stack([layer.B_R for layer in self.layers])
        # Z1.grad = G B_R and B.grad = Gᵀ A_L from the doubled-rank forward (docs/method.md §2); a layer that
        # took no part in the loss has no grad: treat it as zero.
        self.grad_A = stack([_grad_or_zero(layer.Z1) for layer in self.layers])
        self.grad_B = stack([_grad_or_zero(layer.B) for layer in self.layers])

    def hyper(self, key: str) -> Tensor:
        """Per-layer hyperparameter ``key`` as a ``b×1×1`` tensor."""
        return torch.tensor(
            [float(g[key]) for g in self.groups], dtype=self.dtype, device=self.B.device
        ).view(-1, 1, 1)

    def write_point(self, A_L: Tensor, B: Tensor, B_R: Tensor) -> None:
        for i, layer in enumerate(self.layers):
            layer.set_point(A_L[i], B[i], B_R=B_R[i])


def _common_base(states: list) -> Tensor | None:
    """The batched tensor whose consecutive ``[i]`` views ``states`` are, or None."""
    first = states[0]
    if first is None or first._base is None:
        return None
    base = first._base
    if base.dim() == 0 or base.shape[0] != len(states) or not base.is_contiguous():
        return None
    step = base.stride(0) * base.element_size()
    for i, s in enumerate(states):
        if s is None or s._base is not base or s.data_ptr() != base.data_ptr() + i * step:
            return None
    return base


def _mT(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


def _point_probe(A_L: Tensor, B: Tensor) -> Tensor:
    """First and last rows of ``A_L`` and ``B`` (…×4×r): which point a stored momentum belongs to.

    Every entry of the factors moves in a step, so rows suffice to tell two points apart; indexing, unlike
    a reduction, is bitwise the same in every process whatever its thread count.
    """
    return torch.cat([A_L[..., [0, -1], :], B[..., [0, -1], :]], dim=-2)


def _grad_or_zero(p: Tensor) -> Tensor:
    return p.grad.detach() if p.grad is not None else torch.zeros_like(p)


class ManifoldOptimizerBase(torch.optim.Optimizer):
    """Common base of :class:`Riemannion` and :class:`RiemannianSGD` (not public)."""

    def __init__(self, params, defaults: dict):
        for key in ("lr", "momentum", "weight_decay"):
            if key in defaults and not float(defaults[key]) >= 0:
                raise ValueError(f"{key} must be >= 0, got {defaults[key]}")
        super().__init__(_expand(params), defaults)
        self._entries()  # validate ownership up front: errors at construction, not at the first step
        # id(layer) -> layer.point_version when the stored momentum was last known to belong to the layer's
        # point (it wrote the point, or the probe matched); a layer whose version moved on is re-checked
        self._written: dict[int, int] = {}

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._written.clear()  # the loaded momentum is checked against the layers' points at the next step

    def _entries(self) -> list[tuple[ManifoldLoRALayer, dict]]:
        """``(layer, param group)`` for every manifold layer, in param-group order."""
        seen: dict[int, int] = {}
        entries: list[tuple[ManifoldLoRALayer, dict]] = []
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                layer = owner_of(p)
                if not isinstance(layer, ManifoldLoRALayer):
                    raise ValueError(
                        f"{type(self).__name__}: a parameter of shape {tuple(p.shape)} does not belong to a "
                        "ManifoldLoRALayer. Pass the model (or the layers' B and Z1 parameters); train other "
                        "parameters with a separate optimizer"
                    )
                if id(layer) in seen:
                    if seen[id(layer)] != gi:
                        raise ValueError(
                            f"{type(self).__name__}: the parameters of one layer are split across "
                            "param groups; keep a layer's B and Z1 in the same group"
                        )
                    continue
                if not any(q is layer.B for q in group["params"]):
                    raise ValueError(
                        f"{type(self).__name__}: param group holds Z1 of a layer but not its B; "
                        "pass both (or the model)"
                    )
                seen[id(layer)] = gi
                entries.append((layer, group))
        return entries

    def _buckets(self) -> list[Bucket]:
        by_key: dict[tuple, list] = {}
        for layer, group in self._entries():
            key = (layer.out_features, layer.in_features, layer.rank, layer.B.dtype, layer.B.device)
            by_key.setdefault(key, []).append((layer, group))
        return [Bucket(entries) for entries in by_key.values()]

    def _stack_state(self, bucket: Bucket, key: str, shape: tuple[int, ...]) -> Tensor | None:
        """Stack ``state[layer.B][key]`` over a bucket (zeros where a layer has none); None if none has it.

        State written by :meth:`_save_state` consists of consecutive views of one batched tensor; when that
        is still so (same bucket as last step), the batched tensor is returned as is, without a copy.
        """
        states = [self.state.get(layer.B, {}).get(key) for layer in bucket.layers]
        if all(s is None for s in states):
            return None
        kw = {"dtype": bucket.dtype, "device": bucket.B.device}  # "step" lives on the CPU, as in torch
        base = _common_base(states)
        if base is not None and base.dtype == bucket.dtype and base.device == bucket.B.device:
            return base
        if len(states) == 1:
            return states[0].to(**kw).unsqueeze(0)
        zeros = torch.zeros(shape, **kw)
        return torch.stack([zeros if s is None else s.to(**kw) for s in states])

    def _save_state(self, bucket: Bucket, **tensors: Tensor) -> None:
        """Store per-layer state as views ``value[i]`` of one fresh contiguous batched tensor per key (so
        the next step can use it without re-stacking; see :meth:`_stack_state`)."""
        batched = {
            key: value.contiguous() if value._base is None else value.clone()
            for key, value in tensors.items()
        }
        for i, layer in enumerate(bucket.layers):
            st = self.state[layer.B]
            for key, value in batched.items():
                st[key] = value[i]
            st["step"] = st.get("step", torch.zeros((), dtype=torch.float32)) + 1

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for bucket in self._buckets():
            self._step_bucket(bucket)
        return loss

    def _momentum(self, bucket: Bucket) -> tuple[Tensor, Tensor] | None:
        """The stored momentum ``(Ȧ, Ḃ)``: already transported to the current point at the end of the
        previous step (transport = projection onto the new tangent space, docs/method.md §3)."""
        b, m, r = bucket.A_L.shape
        n = bucket.B.shape[1]
        for layer in bucket.layers:
            state = self.state[layer.B]
            if "momentum_A" not in state or self._written.get(id(layer)) == layer.point_version:
                continue  # nothing stored, or this optimizer wrote the point itself: no check, no sync
            # The point was replaced since (set_point, load_factors, load_state_dict) or the state was
            # loaded: the momentum is valid only if the point is still the one it was transported to.
            probe = state.get("point_probe")
            if probe is None or torch.equal(probe, _point_probe(layer.A_L, layer.B.detach())):
                self._written[id(layer)] = layer.point_version  # (no probe: state of an older version)
                continue
            warnings.warn(
                f"{type(self).__name__}: a layer's point ({layer.out_features}×{layer.in_features}, rank "
                f"{layer.rank}) is not the one its momentum belongs to (it was set or loaded without this "
                "optimizer's state); its momentum is reset. Restore the model and optimizer state_dicts "
                "together to continue a run exactly",
                stacklevel=4,
            )
            for key in ("momentum_A", "momentum_B", "point_probe"):
                state.pop(key)
        mA = self._stack_state(bucket, "momentum_A", (m, r))
        mB = self._stack_state(bucket, "momentum_B", (n, r))
        if mA is None or mB is None:
            return None
        return mA, mB

    @staticmethod
    def _riemannian_grad(bucket: Bucket) -> tuple[Tensor, Tensor]:
        """``P_T(G)`` as ``(Ȧ, Ḃ)`` from the layers' ``Z1.grad`` and ``B.grad`` (docs/method.md §2)."""
        return bucket.manifold.rgrad_from_probes(bucket.A_L, bucket.grad_A, bucket.grad_B)

    def _retract_and_transport(
        self,
        bucket: Bucket,
        basis: TangentBasis,
        direction_core: Tensor,
        point_factor: Tensor | float,
        momentum_core: Tensor,
        extra_state: dict | None = None,
    ) -> None:
        """Retract ``point_factor · X + Q_L direction_core Q_Rᵀ`` (the caller folds −η into the core), write
        the new point, and store the momentum ``Q_L momentum_core Q_Rᵀ`` transported to it
        (:meth:`FixedRankManifold.retract_and_transport`)."""
        A_new, B_new, V, mom_A, mom_B = bucket.manifold.retract_and_transport(
            basis, bucket.B, direction_core, point_factor, momentum_core
        )
        # everything is computed before the write: a lone layer's bucket tensors are views of its buffers
        bucket.write_point(A_new, B_new, V)
        for layer in bucket.layers:
            self._written[id(layer)] = layer.point_version
        probe = _point_probe(A_new, B_new)
        self._save_state(bucket, momentum_A=mom_A, momentum_B=mom_B, point_probe=probe, **(extra_state or {}))

    def _step_bucket(self, bucket: Bucket) -> None:
        raise NotImplementedError
