"""setup_method: every optimizer with every compatible init, the defaults, and the validation errors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from riemannlora.adapters import FactorLoRALayer, ManifoldLoRALayer
from riemannlora.methods import DEFAULT_LR, INITS, OPTIMIZERS, RIEMANNIAN, MethodSetup, setup_method
from riemannlora.optim import MuonFactors, RiemannianSGD, Riemannion, ScaledAdamW

EXPECTED_OPTIMIZER = {
    "riemannion": Riemannion,
    "riemannian-sgd": RiemannianSGD,
    "riemannian-adam": RiemannianSGD,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "scaled-adamw": ScaledAdamW,
    "muon": MuonFactors,
    "loraplus": torch.optim.AdamW,
}
COMBOS = [(i, o) for o in OPTIMIZERS for i in INITS if not (o in RIEMANNIAN and i == "gaussian")]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 24)
        self.fc2 = nn.Linear(24, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def make_net(seed=0):
    torch.manual_seed(seed)
    return Net().double()


def batch(seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(32, 16, generator=gen, dtype=torch.float64), torch.randn(
        32, 4, generator=gen, dtype=torch.float64
    )


def loss_fn(model, b):
    x, y = b
    return ((model(x) - y) ** 2).mean()


def build(init, optimizer, **kw):
    model = make_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setup = setup_method(
            model,
            rank=3,
            target_modules=["fc1", "fc2"],
            init=init,
            optimizer=optimizer,
            init_batches=[batch(1)],
            loss_fn=loss_fn,
            **kw,
        )
    return model, setup


@pytest.mark.parametrize(("init", "optimizer"), COMBOS)
def test_every_optimizer_with_every_compatible_init_trains(init, optimizer):
    reference = make_net()
    lr = DEFAULT_LR[optimizer] * (
        100 if optimizer in ("riemannion", "muon", "scaled-adamw", "adamw", "loraplus") else 10
    )
    model, setup = build(init, optimizer, lr=lr)
    assert isinstance(setup, MethodSetup)
    assert isinstance(setup.optimizer, EXPECTED_OPTIMIZER[optimizer])
    assert setup.lr == pytest.approx(lr)
    assert setup.parametrization == ("manifold" if optimizer in RIEMANNIAN else "factors")
    layer_cls = ManifoldLoRALayer if optimizer in RIEMANNIAN else FactorLoRALayer
    assert set(setup.adapters) == {"fc1", "fc2"} and all(
        isinstance(x, layer_cls) for x in setup.adapters.values()
    )
    assert setup.init_seconds >= 0 and setup.description
    x = batch(5)[0]
    # every start keeps the function; the §5 zero-B substitute on M_r moves it by tiny singular values only
    tiny_point = init == "lora" and optimizer in RIEMANNIAN
    assert torch.allclose(model(x), reference(x), atol=1e-5 if tiny_point else 1e-10)
    fixed = batch(2)
    start = float(loss_fn(model, fixed).detach())
    for _ in range(8):
        setup.optimizer.zero_grad()
        loss_fn(model, fixed).backward()
        setup.optimizer.step()
    assert float(loss_fn(model, fixed).detach()) < start


def test_defaults_lr_momentum_and_description():
    assert set(DEFAULT_LR) == set(OPTIMIZERS)
    _, s = build("lora", "riemannion")
    assert s.lr == DEFAULT_LR["riemannion"] and s.optimizer.param_groups[0]["momentum"] == 0.9
    assert "Riemannion" in s.description and "manifold" in s.description
    assert s.init_report is None
    _, s = build("loi", "riemannion")
    assert set(s.init_report.captured_energy) == {"fc1", "fc2"}
    _, s = build("lora", "muon")
    assert s.optimizer.param_groups[0]["momentum"] == 0.95
    _, s = build("pissa", "loraplus", lr=1e-3, loraplus_ratio=8)
    assert sorted(g["lr"] for g in s.optimizer.param_groups) == pytest.approx([1e-3, 8e-3])
    _, s = build("lora", "riemannian-adam")
    assert s.optimizer.adam_like
    _, s = build("lora", "riemannion", riemannion_momentum_store="orthogonalized")
    assert s.optimizer.momentum_store == "orthogonalized"
    _, s = build("lora", "sgd", momentum=0.5)
    assert s.optimizer.param_groups[0]["momentum"] == 0.5 and s.optimizer.param_groups[0]["dampening"] == 0.5


def test_seed_makes_the_start_reproducible():
    for init, optimizer in [("lora", "adamw"), ("loi", "riemannion"), ("lora", "riemannion")]:
        (m1, _), (m2, _) = build(init, optimizer, seed=4), build(init, optimizer, seed=4)
        (m3, _) = build(init, optimizer, seed=5)
        s1, s2, s3 = (dict(m.state_dict()) for m in (m1, m2, m3))
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
        assert any(not torch.equal(s1[k], s3[k]) for k in s1)


def test_rslora_and_dora_reach_the_layers():
    _, s = build("lora", "adamw", rslora=True, alpha=6)
    assert all(x.scaling == pytest.approx(6 / 3**0.5) for x in s.adapters.values())
    _, s = build("gaussian", "scaled-adamw", dora=True)
    assert all(x.use_dora for x in s.adapters.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(init="xavier"), "init must be one of"),
        (dict(optimizer="adam"), "optimizer must be one of"),
        (dict(init="gaussian", optimizer="riemannion"), "init='lora'"),
        (dict(optimizer="riemannion", dora=True), "dora=True needs a factor optimizer"),
        (dict(optimizer="riemannian-sgd", rslora=True), "rslora=True has no effect"),
        (dict(init="pissa", dora=True), "dora=True does not combine with init='pissa'"),
        (dict(optimizer="adamw", momentum=0.9), "momentum does not apply"),
        (dict(optimizer="sgd", momentum=1.5), "momentum must be in"),
        (
            dict(optimizer="adamw", riemannion_momentum_store="orthogonalized"),
            "applies to optimizer='riemannion'",
        ),
        (
            dict(optimizer="riemannion", riemannion_momentum_store="sum"),
            "riemannion_momentum_store must be one of",
        ),
        (dict(init="loi", init_batches=None), "init_batches"),
        (dict(init="lora-ga", loss_fn=None), "loss_fn"),
        (dict(lr=-1.0), "lr must be > 0"),
        (dict(optimizer="loraplus", loraplus_ratio=0.5), "loraplus_ratio"),
    ],
)
def test_invalid_combinations_name_the_field(kwargs, message):
    args = dict(
        rank=2,
        target_modules=["fc1"],
        init="lora",
        optimizer="adamw",
        init_batches=[batch(0)],
        loss_fn=loss_fn,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        setup_method(make_net(), **args)


def test_setup_refuses_an_already_injected_model():
    model, _ = build("lora", "adamw")
    with pytest.raises(ValueError, match="already has adapter layers"):
        setup_method(copy.deepcopy(model), rank=2, target_modules=["fc1"])


def test_the_catalogue_is_what_the_trainer_builds():
    """schema/methods.json (riemannlora.catalogue) and the trainer agree: every optimizer builds, with
    the catalogue's default lr and momentum, on the catalogue's parametrization."""
    from riemannlora import catalogue
    from riemannlora.config import method_arguments

    for optimizer in catalogue.optimizers():
        _, s = build("lora", optimizer)
        assert s.lr == catalogue.default_lr(optimizer)
        assert s.parametrization == catalogue.parametrization(optimizer)
        momentum = catalogue.param_default(optimizer, "momentum")
        if momentum is not None and "momentum" in s.optimizer.param_groups[0]:
            assert s.optimizer.param_groups[0]["momentum"] == momentum
        # a field the optimizer does not take is dropped with a warning, never passed on
        cfg = {
            "adapter": {"rank": 2},
            "method": {"init": "lora", "optimizer": optimizer, "momentum": 0.5, "betas": [0.8, 0.9]},
            "train": {},
        }
        kwargs, warnings = method_arguments(cfg)
        assert (kwargs["momentum"] is not None) == catalogue.takes(optimizer, "momentum")
        assert ("betas" in kwargs) == catalogue.takes(optimizer, "betas")
        assert len(warnings) == (not catalogue.takes(optimizer, "momentum")) + (
            not catalogue.takes(optimizer, "betas")
        )


def test_the_search_range_of_a_task_the_catalogue_scales_is_the_same_as_the_engines():
    """catalogue.py lr_search_range reads `task_lr_search` as src/core/catalogue.ts lrSearchRange does
    (test/unit/core/catalogue.test.ts holds the TypeScript side to the same numbers)."""
    from riemannlora import catalogue

    for optimizer in catalogue.optimizers():
        d = catalogue.default_lr(optimizer)
        low, high = catalogue.lr_search_range(optimizer, "builtin-default")
        assert low == pytest.approx(3 * d, rel=1e-12) and high == pytest.approx(300 * d, rel=1e-12)
        assert catalogue.lr_search_range(optimizer, "causal-lm") == catalogue.lr_search_range(optimizer)
        assert catalogue.lr_search_range(optimizer, "$comment") == catalogue.lr_search_range(optimizer)
    assert catalogue.lr_search_range("riemannion", "builtin-default") == (3e-4, 3e-2)
