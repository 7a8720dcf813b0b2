"""Ambiguity-freeness (issue 3, requirement 5): two factorizations (B S, S⁻¹ A) of the same ΔW train to the
same ΔW on the manifold (Riemannion, RiemannianSGD), but not with AdamW on the factors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from riemannlora.adapters import adapter_layers, inject_adapters
from riemannlora.optim.riemannian_sgd import RiemannianSGD
from riemannlora.optim.riemannion import Riemannion

F64 = torch.float64
R = 3
STEPS = 20


def make_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 30), nn.Tanh(), nn.Linear(30, 24), nn.Tanh(), nn.Linear(24, 4)
    ).double()


def peft_like_factors(seed):
    """One PEFT-style adapter per layer (lora_A r×in, lora_B out×r) and an invertible S per layer."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, (in_f, out_f) in {"0": (20, 30), "2": (30, 24)}.items():
        A = torch.randn(R, in_f, dtype=F64, generator=g)
        B = torch.randn(out_f, R, dtype=F64, generator=g)
        S = torch.randn(R, R, dtype=F64, generator=g) + 3 * torch.eye(R, dtype=F64)  # invertible, far from I
        out[name] = (A, B, S)
    return out


def batches():
    g = torch.Generator().manual_seed(42)
    return [
        (torch.randn(16, 20, dtype=F64, generator=g), torch.randn(16, 4, dtype=F64, generator=g))
        for _ in range(STEPS)
    ]


def train(parametrization, split, make_opt, seed=0):
    net = make_net()
    layers = inject_adapters(net, R, ["0", "2"], parametrization=parametrization, alpha=R)
    for name, (A, B, S) in peft_like_factors(seed).items():
        if split == "original":
            layers[name].load_factors(A, B, 0.1)
        else:  # the same ΔW = 0.1 · (B S)(S⁻¹ A)
            layers[name].load_factors(torch.linalg.solve(S, A), B @ S, 0.1)
    opt = make_opt(net)
    start = {n: layer.delta_weight().clone() for n, layer in adapter_layers(net).items()}
    for x, y in batches():
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
    return start, {n: layer.delta_weight() for n, layer in adapter_layers(net).items()}


def rel(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(a))


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda net: Riemannion(net, lr=0.02, momentum=0.9, weight_decay=0.01),
        lambda net: RiemannianSGD(net, lr=0.2, momentum=0.9),
        lambda net: RiemannianSGD(net, lr=0.02, momentum=0.9, adam_like=True),
    ],
    ids=["riemannion", "riemannian-sgd", "riemannian-sgd-adam-like"],
)
def test_manifold_training_depends_only_on_the_product(make_opt):
    start_1, end_1 = train("manifold", "original", make_opt)
    start_2, end_2 = train("manifold", "rescaled", make_opt)
    for name in end_1:
        assert rel(start_1[name], start_2[name]) < 1e-12
        assert rel(end_1[name], start_1[name]) > 1e-2  # training moved the adapter
        assert rel(end_1[name], end_2[name]) < 1e-8


def test_adamw_on_factors_depends_on_the_split():
    def adamw(net):
        return torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)

    start_1, end_1 = train("factors", "original", adamw)
    start_2, end_2 = train("factors", "rescaled", adamw)
    for name in end_1:
        assert rel(start_1[name], start_2[name]) < 1e-12  # same ΔW at the start ...
        assert rel(end_1[name], end_2[name]) > 1e-2  # ... different ΔW after training: ambiguous


def _write_peft_adapter(path, split):
    """Write a real PEFT adapter (peft's own save_pretrained) with the given split of the same ΔW."""
    peft = pytest.importorskip("peft")
    cfg = peft.LoraConfig(r=R, lora_alpha=0.3, target_modules=["0", "2"], init_lora_weights=True)
    pm = peft.get_peft_model(make_net(), cfg)  # scaling 0.1
    with torch.no_grad():
        for name, (A, B, S) in peft_like_factors(0).items():
            mod = pm.base_model.model.get_submodule(name)
            if split == "rescaled":
                A, B = torch.linalg.solve(S, A), B @ S
            mod.lora_A["default"].weight.copy_(A)
            mod.lora_B["default"].weight.copy_(B)
    pm.save_pretrained(str(path))


@pytest.mark.parametrize("opt_cls,lr", [(Riemannion, 0.02), (RiemannianSGD, 0.2)])
def test_imported_peft_adapters_train_identically(tmp_path, opt_cls, lr):
    from riemannlora.peft_io import import_peft

    ends = []
    for split in ("original", "rescaled"):
        _write_peft_adapter(tmp_path / split, split)
        net = make_net()
        import_peft(net, tmp_path / split, parametrization="manifold")
        opt = opt_cls(net, lr=lr, momentum=0.9)
        for x, y in batches():
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()
        ends.append({n: layer.delta_weight() for n, layer in adapter_layers(net).items()})
    for name in ends[0]:
        assert rel(ends[0][name], ends[1][name]) < 1e-8
