"""`synthetic-lowrank`: a seeded problem whose exact solution is a known low-rank change."""

from __future__ import annotations

import pytest
import torch
from worker_fixtures import synthetic_config

from riemannlora.config import apply_defaults
from riemannlora.tasks import build_task
from riemannlora.tasks.synthetic_lowrank import SyntheticLowRankTask


def make(**over):
    return SyntheticLowRankTask(apply_defaults(synthetic_config(**over)))


def no_autocast():
    import contextlib

    return contextlib.nullcontext()


def test_everything_comes_from_the_seed():
    a, b = make(), make()
    c = make(train={"steps": 1, "seed": 99, "device": "cpu"})
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(
        a.hidden["layers.0"], c.hidden["layers.0"]
    )
    assert isinstance(build_task(apply_defaults(synthetic_config())), SyntheticLowRankTask)


def test_hidden_change_is_low_rank_on_the_targeted_layers_only():
    task = make(
        task={"kind": "synthetic-lowrank", "synthetic": {"width": 12, "depth": 3, "target_rank": 3}},
        adapter={"rank": 3, "target_modules": ["layers.1"]},
    )
    assert task.changed == ["layers.1"] and set(task.hidden) == {"layers.1"}
    s = torch.linalg.svdvals(task.hidden["layers.1"])
    torch.testing.assert_close(s[:3], torch.linspace(1.0, 0.5, 3, dtype=torch.float64))
    assert float(s[3:].max()) < 1e-12
    # the target differs from the frozen network, so the task is not already solved at the start
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(task.model(task.x_eval), task.y_eval)) > 1e-4


@pytest.mark.parametrize("optimizer", ["riemannion", "adamw"])
def test_the_hidden_delta_is_an_exact_solution(optimizer):
    from riemannlora.adapters import adapter_layers
    from riemannlora.config import method_arguments
    from riemannlora.methods import setup_method

    resolved = apply_defaults(synthetic_config(method={"init": "lora", "optimizer": optimizer}))
    task = SyntheticLowRankTask(resolved)
    kwargs, _ = method_arguments(resolved)
    setup_method(task.model, **kwargs)
    before = task.evaluate(task.model, batch_size=8, max_batches=1, autocast=no_autocast)
    assert before["delta_rel_error"] == pytest.approx(1.0, abs=1e-3) and before["loss"] > 1e-4
    for name, layer in adapter_layers(task.model).items():
        u, s, vh = torch.linalg.svd(task.hidden[name])
        r = layer.rank
        layer.load_factors((vh[:r]).float(), (u[:, :r] * s[:r]).float(), 1.0)
    after = task.evaluate(task.model, batch_size=8, max_batches=1, autocast=no_autocast)
    assert after["loss"] < 1e-10 and after["delta_rel_error"] < 1e-5 and after["delta_distance"] < 1e-5
