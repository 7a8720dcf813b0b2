"""Baseline optimizers on the real factor layers against hand-computed dense references (float64).

ScaledAdamW (Zhang & Pilanci), MuonFactors (per-factor Muon), LoRA+ (create_loraplus_optimizer).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from riemannlora.adapters import adapter_layers, inject_adapters
from riemannlora.optim import MuonFactors, ScaledAdamW, create_loraplus_optimizer, newton_schulz5

SEEDS = [0, 1, 2]


class TinyMLP(nn.Module):
    """up and mid have the same shape, so the optimizers' same-shape batching is exercised."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(12, 12)
        self.mid = nn.Linear(12, 12)
        self.down = nn.Linear(12, 8)

    def forward(self, x):
        return self.down(torch.tanh(self.mid(torch.tanh(self.up(x)))))


def factor_model(seed: int, dora: bool = False) -> nn.Module:
    """TinyMLP with rank-3 factor adapters whose B is nonzero (so preconditioners are not trivial)."""
    torch.manual_seed(seed)
    model = TinyMLP().double()
    inject_adapters(
        model, rank=3, target_modules=["up", "mid", "down"], alpha=6.0, parametrization="factors", dora=dora
    )
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            layer.lora_B.normal_(0, 0.3)
    return model


def loss_at(model: nn.Module, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + step)
    x = torch.randn(6, 12, generator=gen, dtype=torch.float64)
    y = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    return ((model(x) - y) ** 2).mean()


def trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def grads_at(model, step):
    params = trainable(model)
    g = torch.autograd.grad(loss_at(model, step), list(params.values()))
    return dict(zip(params, g, strict=True))


def adam_reference(p, g, state, lr, betas, eps, wd):
    """torch.optim.AdamW's update written out (decoupled weight decay, bias correction)."""
    b1, b2 = betas
    state["t"] = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
    state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1 ** state["t"])
    v_hat = state["v"] / (1 - b2 ** state["t"])
    return p * (1 - lr * wd) - lr * m_hat / (v_hat.sqrt() + eps)


# ------------------------------------------------------------------------------------------------ ScaledAdamW
@pytest.mark.parametrize("seed", SEEDS)
def test_scaled_adamw_matches_dense_reference_for_three_steps(seed):
    model = factor_model(seed, dora=True)  # DoRA's magnitude checks the plain-AdamW path for non-pair params
    ref = copy.deepcopy(model)
    lr, betas, eps, wd, reg = 1e-2, (0.9, 0.99), 1e-8, 0.1, 1e-2
    opt = ScaledAdamW(model, lr=lr, betas=betas, eps=eps, weight_decay=wd, reg=reg)
    states: dict[str, dict] = {}
    for step in range(3):
        opt.zero_grad()
        loss_at(model, step).backward()
        raw = {n: p.grad.clone() for n, p in trainable(model).items()}
        opt.step()
        # the caller's gradients are left as they were
        assert all(torch.equal(raw[n], p.grad) for n, p in trainable(model).items())

        ref_params = trainable(ref)
        g = grads_at(ref, step)
        eye = torch.eye(3, dtype=torch.float64)
        new = {}
        for n, p in ref_params.items():
            gn = g[n]
            prefix = n.rsplit(".", 1)[0]
            if n.endswith("lora_A"):
                b = ref_params[prefix + ".lora_B"]
                gn = torch.linalg.inv(b.T @ b + reg * eye) @ gn
            elif n.endswith("lora_B"):
                a = ref_params[prefix + ".lora_A"]
                gn = gn @ torch.linalg.inv(a @ a.T + reg * eye)
            new[n] = adam_reference(p.detach(), gn, states.setdefault(n, {}), lr, betas, eps, wd)
        with torch.no_grad():
            for n, p in ref_params.items():
                p.copy_(new[n])
        for n, p in trainable(model).items():
            assert torch.allclose(p, ref_params[n], rtol=1e-10, atol=1e-12), n


def test_scaled_adamw_differs_from_adamw_and_state_dict_resumes_bitwise():
    model, plain = factor_model(0), factor_model(0)
    opt, opt_plain = (
        ScaledAdamW(model, lr=1e-2),
        torch.optim.AdamW(trainable(plain).values(), lr=1e-2, weight_decay=0),
    )
    for m, o in ((model, opt), (plain, opt_plain)):
        o.zero_grad()
        loss_at(m, 0).backward()
        o.step()
    diff = max(
        float((p - q).detach().abs().max())
        for p, q in zip(trainable(model).values(), trainable(plain).values(), strict=True)
    )
    assert diff > 1e-4  # the preconditioner changes the direction (B ≠ 0)

    resumed_model = copy.deepcopy(model)
    resumed = ScaledAdamW(resumed_model, lr=1e-2)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (resumed_model, resumed)):
        o.zero_grad()
        loss_at(m, 1).backward()
        o.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True))


def test_scaled_adamw_works_with_params_and_explicit_pairs_and_schedulers():
    model = factor_model(1)
    layers = adapter_layers(model)
    pairs = [(layer.lora_A, layer.lora_B) for layer in layers.values()]
    opt = ScaledAdamW([{"params": [p for ab in pairs for p in ab]}], lr=1e-2, pairs=pairs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
    loss_at(model, 0).backward()
    opt.step()
    sched.step()
    with pytest.raises(ValueError, match="pairs="):
        ScaledAdamW(list(model.parameters()), lr=1e-3)


def test_factor_optimizers_reject_manifold_models():
    torch.manual_seed(0)
    model = TinyMLP().double()
    inject_adapters(model, rank=2, target_modules=["up"], parametrization="manifold")
    for build in (
        lambda: ScaledAdamW(model),
        lambda: MuonFactors(model),
        lambda: create_loraplus_optimizer(model, 1e-3),
    ):
        with pytest.raises(ValueError, match="parametrization='factors'"):
            build()


# ------------------------------------------------------------------------------------------------ Muon
def ns5_reference(m: torch.Tensor, steps=5) -> torch.Tensor:
    """Jordan's quintic iteration X ← aX + b(XXᵀ)X + c(XXᵀ)²X on the wide orientation, written out."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = m.T if m.shape[0] > m.shape[1] else m
    x = x / torch.linalg.matrix_norm(x)
    for _ in range(steps):
        g = x @ x.T
        x = a * x + b * g @ x + c * g @ g @ x
    return x.T if m.shape[0] > m.shape[1] else x


@pytest.mark.parametrize("seed", SEEDS)
def test_newton_schulz_keeps_singular_vectors_and_pushes_singular_values_towards_one(seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(20, 4, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(7, 4, generator=gen, dtype=torch.float64)).Q
    s = torch.tensor([3.0, 1.0, 0.5, 0.3], dtype=torch.float64)
    m = (u * s) @ v.T
    o = newton_schulz5(m)
    assert torch.allclose(o, ns5_reference(m), atol=1e-12)
    core = u.T @ o @ v  # diagonal iff O shares the singular vectors of m
    assert torch.allclose(core, torch.diag(torch.diagonal(core)), atol=1e-10)
    assert torch.all((torch.diagonal(core) > 0.5) & (torch.diagonal(core) < 1.5))
    assert torch.allclose(newton_schulz5(m.T), o.T, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("adjust", ["match_rms_adamw", "original"])
def test_muon_factors_matches_dense_reference(seed, adjust):
    model = factor_model(seed, dora=True)
    ref = copy.deepcopy(model)
    lr, mu, wd = 1e-2, 0.95, 0.05
    opt = MuonFactors(model, lr=lr, momentum=mu, weight_decay=wd, adjust_lr=adjust)
    bufs: dict[str, torch.Tensor] = {}
    adam_states: dict[str, dict] = {}
    for step in range(3):
        opt.zero_grad()
        loss_at(model, step).backward()
        opt.step()
        g = grads_at(ref, step)
        with torch.no_grad():
            for n, p in trainable(ref).items():
                if p.ndim == 2:
                    bufs[n] = mu * bufs.get(n, torch.zeros_like(p)) + (1 - mu) * g[n]
                    update = (1 - mu) * g[n] + mu * bufs[n]  # Nesterov
                    rows, cols = p.shape
                    k = (
                        0.2 * max(rows, cols) ** 0.5
                        if adjust == "match_rms_adamw"
                        else max(1.0, rows / cols) ** 0.5
                    )
                    p.copy_(p * (1 - lr * wd) - lr * k * ns5_reference(update))
                else:
                    p.copy_(
                        adam_reference(p, g[n], adam_states.setdefault(n, {}), lr, (0.9, 0.999), 1e-8, wd)
                    )
        for n, p in trainable(model).items():
            assert torch.allclose(p, trainable(ref)[n], rtol=1e-10, atol=1e-12), n


def test_muon_factors_agrees_with_torch_muon_up_to_its_bf16_newton_schulz():
    model, other = factor_model(3), factor_model(3)
    ours = MuonFactors(model, lr=1e-2, adjust_lr="original")
    theirs = torch.optim.Muon(trainable(other).values(), lr=1e-2, weight_decay=0.0, adjust_lr_fn="original")
    for m, o in ((model, ours), (other, theirs)):
        loss_at(m, 0).backward()
        o.step()
    for (n, p), q in zip(trainable(model).items(), trainable(other).values(), strict=True):
        start = trainable(factor_model(3))[n].detach()
        step_ours, step_theirs = (p - start).detach(), (q - start).detach()
        rel = float(torch.linalg.matrix_norm(step_ours - step_theirs) / torch.linalg.matrix_norm(step_ours))
        assert rel < 0.05, (n, rel)  # torch iterates in bf16 (~3 significant digits)


def test_muon_factors_state_dict_resumes_bitwise_and_follows_schedulers():
    model = factor_model(4, dora=True)
    opt = MuonFactors(model, lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loss_at(model, 0).backward()
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
    resumed_model = copy.deepcopy(model)
    resumed = MuonFactors(resumed_model, lr=1e-2, weight_decay=0.01)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (resumed_model, resumed)):
        o.zero_grad()
        loss_at(m, 1).backward()
        o.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True))


def test_muon_validates_arguments():
    model = factor_model(0)
    with pytest.raises(ValueError, match="adjust_lr"):
        MuonFactors(model, adjust_lr="sqrt")
    with pytest.raises(ValueError, match="momentum"):
        MuonFactors(model, momentum=1.0)


# ------------------------------------------------------------------------------------------------ LoRA+
def test_loraplus_groups_and_one_sgd_step():
    model = factor_model(2, dora=True)
    layers = adapter_layers(model)
    start = {n: p.detach().clone() for n, p in trainable(model).items()}
    opt = create_loraplus_optimizer(model, lr=1e-3, ratio=16.0, optimizer_cls=torch.optim.SGD)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["loraplus_A"]["lr"] == pytest.approx(1e-3)
    assert by_name["loraplus_B"]["lr"] == pytest.approx(16e-3)
    ids_b = {id(p) for p in by_name["loraplus_B"]["params"]}
    for layer in layers.values():
        assert (
            id(layer.lora_B) in ids_b and id(layer.lora_magnitude) in ids_b and id(layer.lora_A) not in ids_b
        )
    loss_at(model, 0).backward()
    grads = {n: p.grad.clone() for n, p in trainable(model).items()}
    opt.step()
    for n, p in trainable(model).items():
        lr = 1e-3 if n.endswith("lora_A") else 16e-3
        assert torch.allclose(p, start[n] - lr * grads[n], atol=1e-15), n


def test_loraplus_rejects_bad_ratio_and_params_lists():
    model = factor_model(0)
    with pytest.raises(ValueError, match="ratio"):
        create_loraplus_optimizer(model, lr=1e-3, ratio=0.5)
    with pytest.raises(TypeError, match="model"):
        create_loraplus_optimizer(list(model.parameters()), lr=1e-3)
