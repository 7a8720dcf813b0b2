"""The training loop: schedules, data order, accumulation, clipping, precision, seeding, learning."""

from __future__ import annotations

import io
import math

import pytest
import torch
from worker_fixtures import StopAfter, read_events, synthetic_config, write_json

from riemannlora.config import apply_defaults
from riemannlora.tasks.synthetic_lowrank import SyntheticLowRankTask
from riemannlora.training import EpochSampler, lr_factor, make_scheduler, resolve_precision
from riemannlora.worker.run import run_command


def run_inprocess(tmp_path, config, name="run", resume=False):
    cfg_path = write_json(tmp_path / f"{name}.json", config)
    out = io.StringIO()
    code = run_command(str(cfg_path), str(tmp_path / name), resume=resume, stdout=out)
    return code, read_events(tmp_path / name) if (tmp_path / name / "events.jsonl").exists() else [], out


def train_losses(events):
    return [e["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]


# ---------------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_lr_schedules_follow_their_formulas(schedule):
    total, warmup, base = 20, 5, 0.1
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    sched = make_scheduler(opt, schedule, warmup, total)
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for s, lr in enumerate(seen):
        if s < warmup:
            expected = base * (s + 1) / warmup
        else:
            p = (s - warmup) / (total - warmup)
            expected = (
                base
                * {"constant": 1.0, "linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p))}[schedule]
            )
        assert lr == pytest.approx(expected, rel=1e-12, abs=1e-15), (schedule, s)
    assert seen[warmup - 1] == pytest.approx(base)  # warmup ends exactly at the base lr
    if schedule != "constant":
        assert seen[-1] < seen[warmup] and lr_factor(schedule, warmup, total)(total) == pytest.approx(
            0.0, abs=1e-12
        )


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="constant, linear, cosine"):
        lr_factor("step", 0, 10)


# ---------------------------------------------------------------------------------------------- data order
def test_sampler_is_a_seeded_permutation_per_epoch_and_resumes_exactly():
    s = EpochSampler(10, seed=4)
    first_epoch = s.next(10)
    assert sorted(first_epoch) == list(range(10))
    second = s.next(10)
    assert sorted(second) == list(range(10)) and second != first_epoch  # reshuffled each epoch
    a = EpochSampler(10, seed=4)
    a.next(7)
    state = a.state_dict()
    rest_a = a.next(9)  # crosses into the next epoch
    b = EpochSampler(10, seed=4)
    b.load_state_dict(state)
    assert b.next(9) == rest_a
    assert EpochSampler(10, seed=5).next(10) != first_epoch
    with pytest.raises(ValueError, match="data changed"):
        EpochSampler(11, seed=4).load_state_dict(state)


# ---------------------------------------------------------------------------------------------- the loop
def test_same_seed_same_losses_other_seed_other_losses(tmp_path):
    cfg = synthetic_config(train={"steps": 5, "batch_size": 16, "seed": 11, "device": "cpu"})
    _, ev1, _ = run_inprocess(tmp_path, cfg, "a")
    _, ev2, _ = run_inprocess(tmp_path, cfg, "b")
    assert train_losses(ev1) == train_losses(ev2) and len(train_losses(ev1)) == 5
    other = synthetic_config(train={"steps": 5, "batch_size": 16, "seed": 12, "device": "cpu"})
    _, ev3, _ = run_inprocess(tmp_path, other, "c")
    assert train_losses(ev3) != train_losses(ev1)


def test_every_metric_event_reports_memory_throughput_and_lr(tmp_path):
    cfg = synthetic_config(
        method={"init": "lora", "optimizer": "adamw", "lr": 0.01, "schedule": "linear", "warmup_steps": 2},
        train={"steps": 6, "batch_size": 8, "device": "cpu", "log_interval": 2},
    )
    code, events, _ = run_inprocess(tmp_path, cfg)
    assert code == 0
    train = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert [e["step"] for e in train] == [2, 4, 6]  # log_interval 2
    for e in train:
        assert e["memory_bytes"] > 0 and e["tokens_per_s"] > 0 and e["samples_per_s"] > 0
        assert e["grad_norm"] >= 0 and e["elapsed"] >= 0 and "delta_rel_error" in e["extra"]
    # lr is the one used for that step: linear warmup 2 steps then linear decay over the remaining 4
    assert [e["lr"] for e in train] == pytest.approx([0.01, 0.01 * 3 / 4, 0.01 * 1 / 4])


def _one_step_adapter(tmp_path, name, batch_size, accum):
    cfg = synthetic_config(
        method={"init": "lora", "optimizer": "sgd", "lr": 0.5, "momentum": 0.0},
        train={"steps": 1, "batch_size": batch_size, "grad_accum": accum, "device": "cpu", "seed": 2},
        output={"export_adapter": False},
    )
    code, events, _ = run_inprocess(tmp_path, cfg, name)
    assert code == 0
    from riemannlora.worker.checkpoint import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(tmp_path / name / "checkpoints"))
    return state["adapter"], train_losses(events)[0]


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    big, loss_big = _one_step_adapter(tmp_path, "big", 16, 1)
    acc, loss_acc = _one_step_adapter(tmp_path, "acc", 8, 2)
    assert loss_acc == pytest.approx(loss_big, rel=1e-6)
    for key in big:
        torch.testing.assert_close(acc[key], big[key], rtol=1e-5, atol=1e-7)
    # and a different batch size really is a different step (the comparison above can fail)
    small, _ = _one_step_adapter(tmp_path, "small", 8, 1)
    assert any(not torch.allclose(small[k], big[k]) for k in big)


def test_global_gradient_clipping_bounds_the_update(tmp_path):
    clip, lr = 1e-3, 0.5
    cfg = synthetic_config(
        method={"init": "gaussian", "optimizer": "sgd", "lr": lr, "momentum": 0.0, "grad_clip": clip},
        train={"steps": 1, "batch_size": 16, "device": "cpu"},
        output={"export_adapter": False},
    )
    code, events, _ = run_inprocess(tmp_path, cfg)
    assert code == 0
    (metric,) = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert metric["grad_norm"] > clip  # the reported norm is the one before clipping
    from riemannlora.worker.checkpoint import latest_checkpoint, load_checkpoint

    after = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))["adapter"]
    # rebuild the start to measure the update: same config, zero steps is not allowed, so redo init only
    import riemannlora.methods as methods
    from riemannlora.config import method_arguments

    resolved = apply_defaults(cfg)
    torch.manual_seed(resolved["train"]["seed"])
    task = SyntheticLowRankTask(resolved)
    kwargs, _ = method_arguments(resolved)
    methods.setup_method(task.model, **kwargs)
    before = {n: p.detach().clone() for n, p in task.model.named_parameters() if p.requires_grad}
    step = math.sqrt(sum(float((after[n] - before[n]).pow(2).sum()) for n in before))
    assert step == pytest.approx(lr * clip, rel=1e-4)


@pytest.mark.parametrize("precision,dtype", [("fp64", torch.float64), ("bf16", torch.float32)])
def test_precision_choices(tmp_path, precision, dtype):
    assert resolve_precision(precision, torch.device("cpu")).param_dtype == dtype
    cfg = synthetic_config(train={"steps": 3, "batch_size": 8, "device": "cpu", "precision": precision})
    code, events, _ = run_inprocess(tmp_path, cfg)
    assert code == 0
    started = next(e for e in events if e["type"] == "started")
    assert started["dtype"] == precision
    assert all(math.isfinite(x) for x in train_losses(events))


def test_threads_setting_sets_torch_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        cfg = synthetic_config(train={"steps": 1, "batch_size": 8, "device": "cpu", "threads": 2})
        assert run_inprocess(tmp_path, cfg)[0] == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_synthetic_task_is_learned_and_the_hidden_delta_recovered(tmp_path):
    cfg = synthetic_config(
        method={"init": "loi", "optimizer": "riemannion", "lr": 0.05},
        train={"steps": 60, "batch_size": 32, "device": "cpu", "eval_interval": 30},
        output={"export_adapter": False},
    )
    code, events, _ = run_inprocess(tmp_path, cfg)
    assert code == 0
    evals = [e["metrics"] for e in events if e["type"] == "eval"]
    assert len(evals) == 3  # step 0 (before training), 30, 60
    assert evals[-1]["loss"] < 0.2 * evals[0]["loss"]
    assert evals[-1]["delta_rel_error"] < 0.5 * evals[0]["delta_rel_error"]


@pytest.mark.parametrize(
    "init,optimizer",
    [
        ("loi", "riemannion"),
        ("lora", "riemannian-sgd"),
        ("pissa", "riemannian-adam"),
        ("lora", "adamw"),
        ("lora-ga", "scaled-adamw"),
        ("gaussian", "muon"),
        ("loi", "loraplus"),
        ("lora", "sgd"),
    ],
)
def test_stop_and_resume_reproduce_an_uninterrupted_run_exactly(tmp_path, init, optimizer):
    cfg = synthetic_config(
        method={"init": init, "optimizer": optimizer, "lr": 0.01, "schedule": "cosine", "warmup_steps": 2},
        adapter={"rank": 2, "dropout": 0.1},
        train={"steps": 9, "batch_size": 8, "device": "cpu", "eval_interval": 4, "seed": 7},
        output={"export_adapter": False},
    )
    path = write_json(tmp_path / "c.json", cfg)
    assert run_command(str(path), str(tmp_path / "ref"), stdout=io.StringIO()) == 0
    assert run_command(str(path), str(tmp_path / "cut"), stdout=io.StringIO(), stop=StopAfter(5)) == 0
    first = read_events(tmp_path / "cut")
    assert first[-1]["status"] == "stopped" and max(e.get("step", 0) for e in first) == 5
    assert run_command(str(path), str(tmp_path / "cut"), resume=True, stdout=io.StringIO()) == 0
    ref, cut = read_events(tmp_path / "ref"), read_events(tmp_path / "cut")
    ref_metrics = [(e["step"], e["split"], e["loss"]) for e in ref if e["type"] == "metric"]
    cut_metrics = [(e["step"], e["split"], e["loss"]) for e in cut if e["type"] == "metric"]
    # the resumed run repeats nothing and skips nothing (its step-0 eval is not repeated either)
    assert cut_metrics == ref_metrics
    assert cut[-1]["summary"]["final_eval"] == ref[-1]["summary"]["final_eval"]
