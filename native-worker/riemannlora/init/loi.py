"""Locally optimal initialization (LOI) via BackPropRSVD (Bogachev et al., arXiv 2507.12142).

Mathematics: docs/method.md §5.

LOI picks the rank-r start whose tangent space captures the most of the first full-weight gradient G:
with ``G = U Σ Vᵀ``, ``X₀ = α U[:, :r] V[:, r:2r]ᵀ`` makes the first Riemannian gradient ``P_{T_X₀}(G)``
the best rank-2r approximation of G. G (out×in per layer) is never formed: a randomized SVD (Halko,
Martinsson & Tropp 2011) of target rank 2r gets its products ``G M`` and ``Gᵀ M`` from ordinary backward
passes through zero-valued probe adapters (``x ↦ (x M) Pᵀ`` with ``P = 0`` gives ``∂L/∂P = G M``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..adapters import AdapterLayerBase, FactorLoRALayer, ManifoldLoRALayer, adapter_layers
from ..geometry import orthonormal_basis

__all__ = ["loi_init", "LOIReport", "default_loi_scale"]


def default_loi_scale(rank: int) -> float:
    """The paper's LLM default ``α = −0.01/√r`` (``−1/√r`` was used for diffusion models; small is better)."""
    return -0.01 / math.sqrt(rank)


@dataclass
class LOIReport:
    """What :func:`loi_init` did.

    ``captured_energy``: per layer, the fraction of ``‖G‖²_F`` that the start's tangent space captures,
    ``Σ_{i≤2r} σ_i² / ‖G‖²_F`` (docs/method.md §5). The numerator and the part of ‖G‖² inside the sketch's
    range Y (``‖Yᵀ G‖²_F``) are exact; only the remainder ``‖(I − YYᵀ) G‖²_F`` is estimated, from an
    independent Gaussian probe Ω' (``‖(I − YYᵀ) G Ω'‖²_F / k``). ``captured_energy_stderr`` is that
    estimate's standard error, carried into the ratio: small when the sketch holds most of ‖G‖², and
    small when the remainder's spectrum is flat.
    """

    seconds: float
    backward_passes: int
    scale: dict[str, float] = field(default_factory=dict)
    captured_energy: dict[str, float] = field(default_factory=dict)
    captured_energy_stderr: dict[str, float] = field(default_factory=dict)


def _bucketed(
    fn: Callable[[Tensor], tuple[Tensor, ...]], mats: dict[str, Tensor]
) -> dict[str, tuple[Tensor, ...]]:
    """Apply a batched ``fn`` once per group of same-shape matrices (one QR/SVD call per shape)."""
    groups: dict[tuple, list[str]] = {}
    for name, M in mats.items():
        groups.setdefault((tuple(M.shape), M.dtype, M.device), []).append(name)
    out: dict[str, tuple[Tensor, ...]] = {}
    for names in groups.values():
        results = fn(torch.stack([mats[n] for n in names]))
        for i, n in enumerate(names):
            out[n] = tuple(t[i] for t in results)
    return out


def _orth(mats: dict[str, Tensor]) -> dict[str, Tensor]:
    return {n: t[0] for n, t in _bucketed(lambda M: (orthonormal_basis(M),), mats).items()}


def _probe_pass(
    model: nn.Module,
    layers: dict[str, AdapterLayerBase],
    batches: list,
    loss_fn: Callable,
    mats: dict[str, Tensor],
    side: str,
    reduce_fn: Callable[[Tensor], object] | None,
    extra_right: dict[str, Tensor] | None = None,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One backward pass per batch through zero probes; returns ``G M`` (side="right", M in×k) or
    ``Gᵀ M`` (side="left", M out×k) per layer, averaged over the batches. With ``extra_right`` the same
    pass also returns ``G M'`` for those matrices (a second zero probe: each probe's gradient is taken
    with all probes at zero, so they do not interact)."""
    requests = [(mats, side)] + ([(extra_right, "right")] if extra_right is not None else [])
    probes: list[tuple[str, int, Tensor]] = []  # (layer name, request index, probe)
    for name, layer in layers.items():
        pairs = []
        for i, (request, req_side) in enumerate(requests):
            M = request[name]
            rows = layer.out_features if req_side == "right" else layer.in_features
            probe = torch.zeros(rows, M.shape[1], dtype=M.dtype, device=M.device, requires_grad=True)
            probes.append((name, i, probe))
            # The layer adds x_d R Lᵀ: W-contribution L Rᵀ, so ∂L/∂L = G R and ∂L/∂R = Gᵀ L.
            pairs.append((M, probe) if req_side == "right" else (probe, M))
        layer._probes = pairs
    sums = [torch.zeros_like(p) for _, _, p in probes]
    try:
        for batch in batches:
            loss = loss_fn(model, batch)
            grads = torch.autograd.grad(loss, [p for _, _, p in probes], allow_unused=True)
            for s, g in zip(sums, grads, strict=True):
                if g is not None:
                    s.add_(g)
    finally:
        for layer in layers.values():
            layer._probes = None
    out: list[dict[str, Tensor]] = [{} for _ in requests]
    for (name, i, _), s in zip(probes, sums, strict=True):
        s /= len(batches)
        if reduce_fn is not None:  # data parallel: the products are linear in G, so sum/average them
            reduce_fn(s)
        out[i][name] = s
    return out[0] if extra_right is None else (out[0], out[1])


def _captured_energy(S: Tensor, rank: int, Y: Tensor, G_check: Tensor) -> tuple[float, float]:
    """``Σ_{i≤2r} σ_i² / ‖G‖²_F`` and its standard error (see :class:`LOIReport`).

    ``S``: singular values of ``Yᵀ G`` (so ``ΣS² = ‖Yᵀ G‖²_F``, exact); ``G_check = G Ω'`` with an
    independent Gaussian Ω' (in×k): ``E‖(I − YYᵀ) G ω‖² = ‖(I − YYᵀ) G‖²_F`` for each column ω.
    """
    S, Y, G_check = S.double(), Y.double(), G_check.double()
    inside = float(S.square().sum())
    per_column = (G_check - Y @ (Y.t() @ G_check)).square().sum(dim=0)  # k unbiased estimates
    k = per_column.numel()
    outside = float(per_column.mean())
    total = inside + outside
    if total <= 0:
        return 0.0, 0.0
    energy = float(S[: 2 * rank].square().sum()) / total
    spread = float(per_column.std()) / k**0.5 if k > 1 else outside
    return energy, energy * spread / total


def _right_vectors(V: Tensor, rank: int, gen: torch.Generator) -> Tensor:
    """``V[:, r:2r]``; when fewer than 2r right vectors exist (in < 2r), complete with random orthonormal
    directions orthogonal to ``V[:, r:]``."""
    chosen = V[:, rank : 2 * rank]
    missing = rank - chosen.shape[1]
    if missing == 0:
        return chosen
    warnings.warn(
        f"LOI: only {V.shape[1]} right singular vectors for rank {rank}; completing V[:, r:2r] with "
        f"{missing} random orthonormal directions",
        stacklevel=3,
    )
    extra = torch.randn(V.shape[0], missing, generator=gen, dtype=torch.float64).to(V)
    extra = extra - chosen @ (chosen.t() @ extra)
    full = orthonormal_basis(torch.cat([chosen, extra], dim=1))
    return torch.cat([chosen, full[:, chosen.shape[1] :]], dim=1)


@torch.no_grad()
def _cancel_adapter(layer: AdapterLayerBase) -> None:
    """Offset := adapter, so the layer computes its original base function."""
    if isinstance(layer, ManifoldLoRALayer):
        layer.set_offset(layer.A_L, layer.B.t())
    elif isinstance(layer, FactorLoRALayer):
        if layer.use_dora:
            raise ValueError("loi_init does not support DoRA layers (DoRA has no frozen-offset form)")
        layer.set_offset(layer.scaling * layer.lora_B, layer.lora_A)
    else:
        raise TypeError(f"loi_init: unsupported adapter layer {type(layer).__name__}")


@torch.no_grad()
def _set_start(layer: AdapterLayerBase, U_r: Tensor, V_sel: Tensor, alpha: float) -> None:
    """Make the adapter ``X₀ = α U_r V_selᵀ`` and freeze ``X₀`` as the offset, so the delta is zero."""
    if isinstance(layer, ManifoldLoRALayer):
        layer.set_point(U_r, alpha * V_sel, B_R=V_sel)
    elif isinstance(layer, FactorLoRALayer):
        root = math.sqrt(abs(alpha) / layer.scaling)
        layer.lora_B.copy_(math.copysign(root, alpha) * U_r)
        layer.lora_A.copy_(root * V_sel.t())
    layer.set_offset(alpha * U_r, V_sel.t())


def loi_init(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, object], Tensor],
    oversample: int = 16,
    power_iters: int = 1,
    scale: float | None = None,
    seed: int = 0,
    reduce_fn: Callable[[Tensor], object] | None = None,
) -> LOIReport:
    """Locally optimal initialization of every adapter layer of ``model`` (docs/method.md §5).

    BackPropRSVD with target rank ``2r``, sketch size ``k = min(2r + oversample, out, in)`` and
    ``power_iters = q``: ``Y = qr(G Ω).Q``; q times ``Z = qr(Gᵀ Y).Q``, ``Y = qr(G Z).Q``; finally
    ``svd(Yᵀ G) = Û S Vᵀ``, ``U = Y Û``. That is ``2(q + 1)`` passes over the SAME ``batches`` (a list is
    made of the iterable; G is their mean gradient), each pass one ordinary backward per batch; same-shape
    layers share one batched QR/SVD call. Passes run in eval mode (no dropout), so every pass sees the same
    G; the training flag is restored afterwards. G is taken at the ORIGINAL base function, where training
    will start (the current adapter, e.g. a manifold layer's tiny random start, is cancelled meanwhile).

    The start is ``X₀ = α U[:, :r] V[:, r:2r]ᵀ`` with ``α = scale`` (default ``−0.01/√r``, the paper's LLM
    value). It REPLACES the current adapter and is also stored as the frozen offset (``set_offset``), so
    after ``loi_init`` every layer's delta is exactly zero and the model computes the original base
    function, in any precision, with the base weights untouched (rather than ``W ← W − X₀``, which in bf16
    would lose a tiny X₀ below the mantissa and does not work on quantized bases). Manifold layers get
    ``A_L = U[:, :r]``, ``B = α V[:, r:2r]``; factor layers get ``s · lora_B @ lora_A = X₀`` (the
    "LoRA + LOI" baseline). Call it right after :func:`inject_adapters`.

    ``loss_fn(model, batch) -> scalar``. ``seed`` fixes Ω (generated on CPU in module order, so every
    data-parallel rank draws the same Ω). ``reduce_fn``: optional in-place reduction of each probe product
    across ranks (e.g. ``torch.distributed.all_reduce``); the products are linear in G.
    """
    t0 = time.perf_counter()
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("loi_init: the model has no adapter layers; call inject_adapters(model, ...) first")
    batches = list(batches)
    if not batches:
        raise ValueError("loi_init: batches is empty; pass at least one batch for the gradient sketch")
    if oversample < 0 or power_iters < 0:
        raise ValueError(f"oversample and power_iters must be >= 0, got {oversample}, {power_iters}")
    for name, layer in layers.items():  # validate before touching any layer
        if isinstance(layer, FactorLoRALayer) and layer.use_dora:
            raise ValueError(
                f"loi_init does not support DoRA layers ({name}): DoRA has no frozen-offset form"
            )
    gen = torch.Generator().manual_seed(int(seed))

    omega: dict[str, Tensor] = {}
    for name, layer in layers.items():
        m, n, r = layer.out_features, layer.in_features, layer.rank
        k = min(2 * r + oversample, m, n)
        dev = layer.offset_A.device
        omega[name] = torch.randn(n, k, generator=gen, dtype=torch.float64).to(dev, layer.geometry_dtype)
    # An independent probe for the part of ‖G‖² outside the sketch (the energy report only; its own
    # generator, so that the start is the same with or without it).
    check_gen = torch.Generator().manual_seed(int(seed) + 1_000_003)
    omega_check = {
        name: torch.randn(*omega[name].shape, generator=check_gen, dtype=torch.float64).to(omega[name])
        for name in layers
    }

    # G is taken where training will start: at the ORIGINAL base function (delta = 0). Cancel the current
    # adapter (e.g. the manifold layers' tiny random start) with the offset for the passes.
    saved = {name: (layer.offset_B, layer.offset_A) for name, layer in layers.items()}
    for layer in layers.values():
        _cancel_adapter(layer)
    was_training = model.training
    model.eval()
    passes = 0
    try:
        sketch = _probe_pass(model, layers, batches, loss_fn, omega, "right", reduce_fn)  # G Ω
        passes += 1
        Y = _orth(sketch)
        for _ in range(power_iters):
            Z = _orth(_probe_pass(model, layers, batches, loss_fn, Y, "left", reduce_fn))  # Gᵀ Y
            Y = _orth(_probe_pass(model, layers, batches, loss_fn, Z, "right", reduce_fn))  # G Z
            passes += 2
        GtY, G_check = _probe_pass(  # (Yᵀ G)ᵀ and, in the same pass, G Ω'
            model, layers, batches, loss_fn, Y, "left", reduce_fn, extra_right=omega_check
        )
        passes += 1
    except BaseException:
        for name, layer in layers.items():
            layer.set_offset(*saved[name])
        raise
    finally:
        model.train(was_training)

    svds = _bucketed(lambda M: torch.linalg.svd(M.transpose(-2, -1), full_matrices=False), GtY)
    report = LOIReport(seconds=0.0, backward_passes=passes)
    for name, layer in layers.items():
        U_hat, S, Vt = svds[name]
        r = layer.rank
        U = Y[name] @ U_hat
        alpha = default_loi_scale(r) if scale is None else float(scale)
        _set_start(layer, U[:, :r].contiguous(), _right_vectors(Vt.t(), r, gen), alpha)
        report.scale[name] = alpha
        energy, stderr = _captured_energy(S, r, Y[name], G_check[name])
        report.captured_energy[name] = energy
        report.captured_energy_stderr[name] = stderr
    report.seconds = time.perf_counter() - t0
    return report
