"""The typed run config (riemannlora.run_config): built once from the resolved JSON, frozen, and the same
setups through the objects as through the keyword API."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from worker_fixtures import synthetic_config

from riemannlora.adapters import inject_adapters
from riemannlora.config import apply_defaults, load_config, load_run_config, method_arguments
from riemannlora.methods import method_configs, setup_method
from riemannlora.run_config import (
    AdapterConfig,
    LoiConfig,
    MethodConfig,
    OutputConfig,
    RunConfig,
    SyntheticConfig,
    TaskConfig,
    TrainConfig,
    for_optimizer,
)
from riemannlora.schemas import load_schema, validate
from riemannlora.tasks.registry import task_default_overrides

VALID = sorted(
    (Path(__file__).resolve().parents[2] / "schema" / "fixtures" / "config" / "valid").glob("*.json")
)


def resolved(data):
    return apply_defaults(data, task_default_overrides(data["task"]["kind"]))


def as_file(doc) -> str:
    """The bytes config.json gets (riemannlora.worker.rundir.atomic_write_json)."""
    return json.dumps(doc, indent=2, allow_nan=False)


# ---------------------------------------------------------------------------------------------------------
# from_resolved / to_dict


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.name)
def test_every_valid_fixture_round_trips_byte_for_byte(case):
    cfg = resolved(json.loads(case.read_text(encoding="utf-8"))["data"])
    run = RunConfig.from_resolved(cfg)
    assert run.to_dict() == cfg
    assert as_file(run.to_dict()) == as_file(cfg)  # key order included
    assert RunConfig.from_resolved(run.to_dict()) == run


def test_key_order_and_absent_fields_are_kept():
    data = synthetic_config()
    data = {
        k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for k, v in reversed(data.items())
    }
    cfg = resolved(data)
    assert as_file(RunConfig.from_resolved(cfg).to_dict()) == as_file(cfg)
    run = RunConfig.from_resolved(cfg)
    assert run.method.momentum is None and "momentum" not in run.method.to_dict()  # absent stays absent
    assert run.adapter.alpha is None and run.adapter.to_dict()["alpha"] is None  # a null is a value
    changed = dataclasses.replace(run.method, momentum=0.8)
    assert changed.to_dict()["momentum"] == 0.8  # a field set later is written


def test_load_run_config_is_load_config_as_objects(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(synthetic_config(method={"init": "loi", "optimizer": "riemannion"})))
    run = load_run_config(path)
    assert run.to_dict() == load_config(path)
    assert isinstance(run.method.loi, LoiConfig) and run.method.loi.oversample == 16
    assert isinstance(run.task.synthetic, SyntheticConfig) and run.task.synthetic.width == 16
    assert run.train.seed == 3 and run.output == OutputConfig()


def test_objects_are_frozen_and_hashable():
    run = RunConfig.from_resolved(resolved(synthetic_config(adapter={"rank": 2, "target_modules": ["0"]})))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.adapter.rank = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.method = MethodConfig()  # type: ignore[misc]
    assert run.adapter.target_modules == ("0",)  # JSON arrays are tuples
    assert MethodConfig(betas=[0.8, 0.9]).betas == (0.8, 0.9)
    assert hash(run) == hash(copy.deepcopy(run))


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="adapter: unknown field.*'ranks'"):
        AdapterConfig.from_resolved({"rank": 2, "ranks": 3})
    with pytest.raises(ValueError, match="parametrization"):  # a library option, not a run-config field
        AdapterConfig.from_resolved({"rank": 2, "parametrization": "factors"})


def test_field_defaults_are_the_schema_defaults():
    schema = load_schema("config")
    defs = schema["$defs"]
    groups = {
        AdapterConfig: defs["adapter"],
        MethodConfig: defs["method"],
        LoiConfig: defs["method"]["properties"]["loi"],
        TrainConfig: defs["train"],
        OutputConfig: defs["output"],
        SyntheticConfig: defs["synthetic"],
    }
    for cls, group in groups.items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, prop in group["properties"].items():
            if "default" in prop:
                assert fields[name].default == prop["default"], f"{cls.__name__}.{name}"


def test_a_config_built_in_code_is_a_valid_resolved_config():
    run = RunConfig(
        task=TaskConfig(kind="synthetic-lowrank", synthetic=SyntheticConfig()),
        adapter=AdapterConfig(rank=2),
        method=MethodConfig(init="lora", optimizer="riemannion"),
        train=TrainConfig(steps=5),
    )
    doc = run.to_dict()
    assert validate("config", doc) == []
    assert RunConfig.from_resolved(resolved(doc)) == run


# ---------------------------------------------------------------------------------------------------------
# for_optimizer: the dropped-field warnings (the messages of method_arguments, which now uses it)


def test_for_optimizer_drops_what_the_optimizer_does_not_take():
    method = MethodConfig(init="lora", optimizer="riemannian-sgd", momentum_store="orthogonalized")
    adapter = AdapterConfig(rank=2, alpha=8, rslora=True)
    m, a, texts = for_optimizer(method, adapter)
    assert texts == [
        "adapter.rslora has no effect with optimizer riemannian-sgd (the scale lives in the point)",
        "adapter.alpha is ignored by optimizer riemannian-sgd (the scale lives in the point)",
        "method.momentum_store applies to optimizer riemannion only; ignored for riemannian-sgd",
    ]
    assert a.rslora is False and a.alpha == 8 and m.momentum_store == "raw"
    m, _, texts = for_optimizer(MethodConfig(optimizer="adamw", momentum=0.5), AdapterConfig(rank=2))
    assert m.momentum is None
    assert texts == ["method.momentum does not apply to optimizer adamw (set method.betas); ignored"]
    m, _, texts = for_optimizer(MethodConfig(optimizer="sgd", betas=(0.8, 0.9)), AdapterConfig(rank=2))
    assert m.betas is None
    assert texts == ["method.betas does not apply to optimizer sgd (set method.momentum); ignored"]
    same = MethodConfig(optimizer="riemannion", momentum=0.9, momentum_store="orthogonalized")
    assert for_optimizer(same, AdapterConfig(rank=2)) == (same, AdapterConfig(rank=2), [])


# ---------------------------------------------------------------------------------------------------------
# the object path is the keyword path


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 6)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def make_net(seed):
    torch.manual_seed(seed)
    return Net().double()


def data(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    return torch.randn(16, 12, generator=gen, dtype=torch.float64), torch.randn(
        16, 6, generator=gen, dtype=torch.float64
    )


def loss_fn(model, b):
    x, y = b
    return ((model(x) - y) ** 2).mean()


def trained(seed, setup_call):
    """(model, setup) after setup and two optimizer steps."""
    model = make_net(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setup = setup_call(model)
    for step in range(2):
        setup.optimizer.zero_grad()
        loss_fn(model, data(seed + step)).backward()
        setup.optimizer.step()
    return model, setup


def assert_identical(a, b):
    (model_a, setup_a), (model_b, setup_b) = a, b
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    groups_a = [{k: v for k, v in g.items() if k != "params"} for g in setup_a.optimizer.param_groups]
    groups_b = [{k: v for k, v in g.items() if k != "params"} for g in setup_b.optimizer.param_groups]
    assert groups_a == groups_b
    assert type(setup_a.optimizer) is type(setup_b.optimizer)
    assert (setup_a.description, setup_a.lr, setup_a.parametrization) == (
        setup_b.description,
        setup_b.lr,
        setup_b.parametrization,
    )
    assert setup_a.adapters.keys() == setup_b.adapters.keys()


KEYWORD_CASES = [
    dict(init="loi", optimizer="riemannion", loi_oversample=4, riemannion_momentum_store="orthogonalized"),
    dict(init="lora", optimizer="riemannian-adam", momentum=0.8),
    dict(init="pissa", optimizer="adamw", betas=(0.8, 0.95), weight_decay=0.01, alpha=6.0),
    dict(init="gaussian", optimizer="sgd", dora=True, dropout=0.0),
    dict(init="lora-ga", optimizer="loraplus", loraplus_ratio=4.0, rslora=True),
    dict(init="loi", optimizer="scaled-adamw", loi_power_iters=2, loi_scale=-0.02),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", KEYWORD_CASES, ids=lambda c: f"{c['init']}-{c['optimizer']}")
def test_objects_and_keywords_give_bit_identical_setups(case, seed):
    keywords = dict(rank=3, target_modules=["fc1", "fc2"], lr=0.01, **case)
    options = dict(init_batches=[data(seed)], loss_fn=loss_fn, seed=seed)
    method, adapter = method_configs(**keywords)
    assert isinstance(method, MethodConfig) and isinstance(adapter, AdapterConfig)
    by_keywords = trained(seed, lambda m: setup_method(m, **keywords, **options))
    by_objects = trained(seed, lambda m: setup_method(m, method, adapter, **options))
    assert_identical(by_keywords, by_objects)


@pytest.mark.parametrize("optimizer", ["riemannion", "adamw", "muon"])
def test_the_workers_objects_give_the_setup_of_method_arguments(optimizer):
    """What the worker passes (RunConfig -> for_optimizer -> objects) is what the flat kwargs built."""
    cfg = resolved(
        synthetic_config(
            adapter={"rank": 2, "target_modules": ["fc1"], "alpha": 4},
            method={"init": "lora", "optimizer": optimizer, "momentum": 0.7, "betas": [0.8, 0.9]},
        )
    )
    kwargs, texts = method_arguments(cfg)
    run = RunConfig.from_resolved(cfg)
    method, adapter, object_texts = for_optimizer(run.method, run.adapter)
    assert object_texts == texts
    by_keywords = trained(0, lambda m: setup_method(m, **kwargs))
    by_objects = trained(0, lambda m: setup_method(m, method, adapter, seed=run.train.seed))
    assert_identical(by_keywords, by_objects)


def test_setup_method_refuses_mixed_or_wrong_arguments():
    method, adapter = method_configs(rank=2, target_modules=["fc1"])
    with pytest.raises(TypeError, match="not both"):
        setup_method(make_net(0), method, adapter, rank=2)
    with pytest.raises(TypeError, match="MethodConfig"):
        setup_method(make_net(0), {"init": "lora"}, adapter)
    with pytest.raises(TypeError, match="rank"):
        setup_method(make_net(0), target_modules=["fc1"])  # the keyword form still needs rank
    with pytest.raises(ValueError, match="parametrization"):
        setup_method(
            make_net(0),
            MethodConfig(optimizer="riemannion"),
            dataclasses.replace(adapter, parametrization="factors"),
        )


@pytest.mark.parametrize("parametrization", ["manifold", "factors"])
def test_inject_adapters_takes_an_adapter_config(parametrization):
    adapter = AdapterConfig(rank=3, target_modules=("fc1",), alpha=5.0, parametrization=parametrization)
    a, b, c = make_net(0), make_net(0), make_net(0)
    torch.manual_seed(7)
    by_object = inject_adapters(a, adapter)
    torch.manual_seed(7)
    by_keywords = inject_adapters(
        b, rank=3, target_modules=["fc1"], alpha=5.0, parametrization=parametrization
    )
    torch.manual_seed(7)
    by_position = inject_adapters(c, 3, ["fc1"], alpha=5.0, parametrization=parametrization)
    assert by_object.keys() == by_keywords.keys() == by_position.keys() == {"fc1"}
    for other in (b, c):
        for (name, x), (_, y) in zip(a.state_dict().items(), other.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
    with pytest.raises(TypeError, match="not both"):
        inject_adapters(make_net(0), adapter, rank=2)
    assert type(
        inject_adapters(make_net(0), AdapterConfig(rank=2, target_modules="fc1"))["fc1"]
    ).__name__ == (
        "ManifoldLoRALayer"  # parametrization None: the manifold, inject_adapters' default
    )
