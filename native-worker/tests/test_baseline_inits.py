"""Property tests of the baseline initializations (LoRA, gaussian, PiSSA, LoRA-GA) on the real adapter layers.

Math in float64 against dense references (torch.linalg.svd of W or of an autograd gradient), several seeds.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from riemannlora.adapters import inject_adapters
from riemannlora.init import gaussian_init, lora_ga_factors, lora_ga_init, lora_init, pissa_init
from riemannlora.init.lora_ga import dense_weight_gradients
from riemannlora.init.pissa import top_singular_triplets

SEEDS = [0, 1, 2]


class TinyMLP(nn.Module):
    def __init__(self, d_in=12, d_hidden=10, d_out=8):
        super().__init__()
        self.up = nn.Linear(d_in, d_hidden)
        self.down = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x)))


def make_model(seed: int, dtype=torch.float64) -> TinyMLP:
    torch.manual_seed(seed)
    return TinyMLP().to(dtype)


def mse_loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def make_batches(seed: int, n_batches=2, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1000 + seed)
    return [
        (torch.randn(5, 12, generator=gen, dtype=dtype), torch.randn(5, 8, generator=gen, dtype=dtype))
        for _ in range(n_batches)
    ]


def subspace_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖P_a − P_b‖₂ for the column spaces of a and b = sin of the largest principal angle."""
    qa, qb = torch.linalg.qr(a).Q, torch.linalg.qr(b).Q
    return float(torch.linalg.matrix_norm(qa @ qa.T - qb @ qb.T, ord=2))


# ------------------------------------------------------------------------------------------------ LoRA / gaus
@pytest.mark.parametrize("seed", SEEDS)
def test_lora_init_kaiming_a_zero_b_deterministic(seed):
    model = make_model(seed)
    layers = inject_adapters(model, rank=3, target_modules=["up", "down"], alpha=6, parametrization="factors")
    lora_init(model, seed=seed)
    first = {n: layer.lora_A.detach().clone() for n, layer in layers.items()}
    for layer in layers.values():
        bound = 1.0 / math.sqrt(layer.in_features)  # kaiming-uniform with a=√5: gain √(1/3) · √(3/fan_in)
        assert torch.all(layer.lora_B == 0)
        assert float(layer.lora_A.detach().abs().max()) <= bound
        assert (
            float(layer.lora_A.detach().abs().max()) > 0.5 * bound
        )  # really uniform on the interval, not tiny
        assert float(layer.delta_weight().abs().max()) == 0.0
    lora_init(model, seed=seed)
    assert all(torch.equal(first[n], layer.lora_A) for n, layer in layers.items())
    lora_init(model, seed=seed + 17)
    assert not all(torch.equal(first[n], layer.lora_A) for n, layer in layers.items())


def test_gaussian_init_std_one_over_r():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4000, 8).double())
    layers = inject_adapters(model, rank=4, target_modules=["0"], parametrization="factors")
    gaussian_init(model, seed=3)
    a = layers["0"].lora_A.detach()
    assert torch.all(layers["0"].lora_B == 0)
    assert abs(float(a.std()) - 1 / 4) < 0.01  # 16000 samples: std error ~0.0014
    assert abs(float(a.mean())) < 0.01


def test_lora_init_on_manifold_gives_the_tiny_orthonormal_start():
    model = make_model(0)
    layers = inject_adapters(model, rank=3, target_modules=["up"], parametrization="manifold")
    lora_init(model, seed=5)
    layer = layers["up"]
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(layer.A_L.T @ layer.A_L, eye, atol=1e-12)
    s = torch.linalg.svdvals(layer.adapter_weight())[:3]
    assert torch.allclose(s, torch.full_like(s, layer.init_scale), rtol=1e-8)
    before = layer.A_L.clone()
    lora_init(model, seed=5)
    assert torch.equal(before, layer.A_L)


def test_gaussian_init_rejects_manifold_layers():
    model = make_model(0)
    inject_adapters(model, rank=2, target_modules=["up"], parametrization="manifold")
    with pytest.raises(ValueError, match="init='lora'"):
        gaussian_init(model)


def test_inits_need_adapters():
    with pytest.raises(ValueError, match="inject_adapters"):
        pissa_init(make_model(0))


# ------------------------------------------------------------------------------------------------ PiSSA
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("parametrization", ["factors", "manifold"])
def test_pissa_is_the_top_r_svd_part_and_keeps_the_function(seed, parametrization):
    model = make_model(seed)
    reference = copy.deepcopy(model)
    x = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    rank = 3
    layers = inject_adapters(
        model, rank=rank, target_modules=["up", "down"], alpha=5.0, parametrization=parametrization
    )
    pissa_init(model)
    for name, layer in layers.items():
        w = reference.get_submodule(name).weight.detach()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        top = u[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]
        assert torch.allclose(layer.adapter_weight(), top, atol=1e-12)
        assert torch.allclose(layer.offset_B @ layer.offset_A, top, atol=1e-12)
        assert float(layer.delta_weight().abs().max()) < 1e-12
        assert torch.equal(layer.base_weight(), w)  # the base is never mutated
        if parametrization == "factors":
            # PEFT's split: B = U_r √(S_r/s), A = √(S_r/s) V_rᵀ, hence BᵀB = AAᵀ = diag(S_r/s)
            target = torch.diag(s[:rank] / layer.scaling)
            assert torch.allclose(layer.lora_B.T @ layer.lora_B, target, atol=1e-12)
            assert torch.allclose(layer.lora_A @ layer.lora_A.T, target, atol=1e-12)
    assert torch.allclose(model(x), reference(x), atol=1e-12)


def test_pissa_on_conv1d_uses_the_out_by_in_weight():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    model = nn.Sequential(Conv1D(9, 6)).double()  # Conv1D(nf=out, nx=in): weight stored in×out (6×9)
    reference = copy.deepcopy(model)
    layers = inject_adapters(model, rank=2, target_modules=["0"], parametrization="factors")
    pissa_init(model)
    w = reference[0].weight.detach().T  # out×in
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    assert torch.allclose(layers["0"].adapter_weight(), u[:, :2] * s[:2] @ vh[:2], atol=1e-12)
    x = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(model(x), reference(x), atol=1e-12)


def test_randomized_svd_matches_exact_on_a_decaying_spectrum():
    gen = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(300, 300, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=torch.float64)).Q
    s = 0.7 ** torch.arange(200, dtype=torch.float64)
    m = (u[:, :200] * s) @ v.T
    ur, sr, vr = top_singular_triplets(m, 5, niter=2, oversample=10, seed=1)
    assert torch.allclose(sr, s[:5], rtol=1e-8)
    assert subspace_distance(ur, u[:, :5]) < 1e-7
    assert subspace_distance(vr, v[:, :5]) < 1e-7


# ------------------------------------------------------------------------------------------------ LoRA-GA
def dense_reference_gradient(model: nn.Module, name: str, batches) -> torch.Tensor:
    """∂L/∂W of one Linear of an un-injected copy, by plain autograd, averaged over the batches."""
    model = copy.deepcopy(model)
    weight = model.get_submodule(name).weight
    weight.requires_grad_(True)
    total = torch.zeros_like(weight)
    for batch in batches:
        (g,) = torch.autograd.grad(mse_loss(model, batch), weight)
        total += g
    return total / len(batches)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("variant", ["stable", "peft"])
@pytest.mark.parametrize("gradient", ["probe", "dense"])
def test_lora_ga_subspaces_match_the_dense_gradient_svd(seed, variant, gradient):
    model = make_model(seed)
    reference = copy.deepcopy(model)
    batches = make_batches(seed)
    rank = 2
    layers = inject_adapters(
        model, rank=rank, target_modules=["up", "down"], alpha=4.0, parametrization="factors"
    )
    lora_ga_init(model, batches, mse_loss, variant=variant, gradient=gradient)
    x = batches[0][0]
    assert torch.allclose(model(x), reference(x), atol=1e-12)
    for name, layer in layers.items():
        g = dense_reference_gradient(reference, name, batches)
        u, s, vh = torch.linalg.svd(g, full_matrices=False)
        # A spans the top-r right singular vectors, B the (r+1..2r)-th left ones (Wang et al. 2024)
        assert subspace_distance(layer.lora_A.detach().T, vh[:rank].T) < 1e-8
        assert subspace_distance(layer.lora_B.detach(), u[:, rank : 2 * rank]) < 1e-8
        zeta = layer.out_features**0.25 / math.sqrt(16.0)
        a_norms = torch.linalg.vector_norm(layer.lora_A, dim=1)
        b_norms = torch.linalg.vector_norm(layer.lora_B, dim=0)
        if variant == "stable":
            assert torch.allclose(a_norms, torch.full_like(a_norms, zeta), rtol=1e-10)
            assert torch.allclose(b_norms, torch.full_like(b_norms, zeta), rtol=1e-10)
        else:
            assert torch.allclose(a_norms, torch.ones_like(a_norms), rtol=1e-10)
            assert torch.allclose(b_norms, zeta * s[rank : 2 * rank], rtol=1e-8)
        assert float(layer.delta_weight().abs().max()) < 1e-12


def test_probe_svd_never_forms_g_and_matches_the_dense_svd_with_a_small_sketch():
    """k = 2r + oversample = 8 < min(out, in) = 50: a real randomized SVD, from backward passes only."""
    gen = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(50, 50, generator=gen, dtype=torch.float64)).Q
    x = torch.linalg.qr(torch.randn(60, 50, generator=gen, dtype=torch.float64)).Q.T  # orthonormal rows
    s = 0.5 ** torch.arange(50, dtype=torch.float64)
    t = u * s  # loss = Σ t ⊙ (x Wᵀ)  =>  G = tᵀ x = diag(s) uᵀ x, singular values s
    model = nn.Sequential(nn.Linear(60, 50)).double()
    layers = inject_adapters(model, rank=2, target_modules=["0"], parametrization="factors")
    g = t.T @ x
    lora_ga_init(
        model, [(x, t)], lambda m, b: (m(b[0]) * b[1]).sum(), gradient="probe", oversample=4, power_iters=3
    )
    assert layers["0"].base.weight.grad is None and not layers["0"].base.weight.requires_grad
    uu, ss, vh = torch.linalg.svd(g)
    assert subspace_distance(layers["0"].lora_A.detach().T, vh[:2].T) < 1e-6
    assert subspace_distance(layers["0"].lora_B.detach(), uu[:, 2:4]) < 1e-6


def test_lora_ga_gradients_restore_requires_grad_and_grads():
    model = make_model(0)
    layers = inject_adapters(model, rank=2, target_modules=["up"], parametrization="factors")
    marker = torch.ones_like(layers["up"].lora_A)
    layers["up"].lora_A.grad = marker
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    grads = dense_weight_gradients(model, layers, make_batches(0), mse_loss)
    assert grads["up"].shape == (10, 12)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert layers["up"].lora_A.grad is marker
    assert layers["up"].base.weight.grad is None


def test_lora_ga_on_manifold_layers_starts_at_the_same_product():
    model_f, model_m = make_model(4), make_model(4)
    batches = make_batches(4)
    lf = inject_adapters(model_f, rank=2, target_modules=["up", "down"], alpha=2.0, parametrization="factors")
    lm = inject_adapters(
        model_m, rank=2, target_modules=["up", "down"], parametrization="manifold", init_scale=1e-12
    )
    lora_ga_init(model_f, batches, mse_loss)
    lora_ga_init(model_m, batches, mse_loss)
    for name in lf:
        assert torch.allclose(lf[name].adapter_weight(), lm[name].adapter_weight(), atol=1e-9)


def test_lora_ga_errors():
    model = make_model(0)
    inject_adapters(model, rank=5, target_modules=["down"], parametrization="factors")
    with pytest.raises(ValueError, match="2·rank"):
        lora_ga_init(model, make_batches(0), mse_loss)
    with pytest.raises(ValueError, match="variant"):
        lora_ga_factors(torch.randn(8, 8), 2, variant="authors")
    model = make_model(0)
    inject_adapters(model, rank=2, target_modules=["down"], parametrization="factors")
    with pytest.raises(ValueError, match="at least one batch"):
        lora_ga_init(model, [], mse_loss)
