"""`task.heldout`: one held-out set as two disjoint halves (validation: the even-numbered examples, test:
the odd-numbered), so that a learning-rate search selects on one and the reported numbers come from the
other; for every task kind, with `validate` and `run` refusing an empty half the same way."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest
import torch
from worker_fixtures import assert_valid_events, read_events, synthetic_config, write_json

from riemannlora.config import apply_defaults, validate_config
from riemannlora.errors import WorkerError
from riemannlora.run_config import RunConfig
from riemannlora.tasks.synthetic_lowrank import SyntheticLowRankTask
from riemannlora.worker.run import run_command

HALVES = ("validation", "test")


def with_heldout(cfg: dict, heldout: str | None) -> dict:
    if heldout is not None:
        cfg["task"] = {**cfg["task"], "heldout": heldout}
    return cfg


def run(tmp_path, config, name):
    out = io.StringIO()
    code = run_command(str(write_json(tmp_path / f"{name}.json", config)), str(tmp_path / name), stdout=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def assert_halves_partition(whole: list, parts: dict[str, list]) -> None:
    """validation is whole[0::2], test whole[1::2]: disjoint by position, and together exactly the whole."""
    assert parts["validation"] == whole[0::2] and parts["test"] == whole[1::2]
    assert len(parts["validation"]) + len(parts["test"]) == len(whole)
    assert sorted(parts["validation"] + parts["test"]) == sorted(whole)


# ---------------------------------------------------------------------------------------------------------
# The config: a default for every kind, typed, validated


def test_the_default_is_the_whole_held_out_set_for_every_kind():
    for cfg in (
        synthetic_config(),
        {**synthetic_config(), "task": {"kind": "builtin-default"}},
        {**synthetic_config(), "task": {"kind": "causal-lm", "model": "m", "data": "d.jsonl"}},
    ):
        resolved = apply_defaults(cfg)
        assert resolved["task"]["heldout"] == "all"
        assert apply_defaults(resolved) == resolved
        assert RunConfig.from_resolved(resolved).task.heldout == "all"
        assert RunConfig.from_resolved(resolved).to_dict() == resolved
    for heldout in HALVES:
        cfg = with_heldout(synthetic_config(), heldout)
        assert validate_config(cfg) == [] and apply_defaults(cfg)["task"]["heldout"] == heldout
    problems = validate_config(with_heldout(synthetic_config(), "train"))
    assert [p.field for p in problems] == ["/task/heldout"] and "validation" in problems[0].message


# ---------------------------------------------------------------------------------------------------------
# synthetic-lowrank


def synthetic_task(heldout: str | None, **syn) -> SyntheticLowRankTask:
    cfg = synthetic_config()
    cfg["task"]["synthetic"].update(syn)
    return SyntheticLowRankTask(apply_defaults(with_heldout(cfg, heldout)))


@pytest.mark.parametrize("n_eval", [64, 7])
def test_synthetic_halves_are_disjoint_and_make_up_the_eval_set(n_eval):
    tasks = {h: synthetic_task(h, n_eval=n_eval) for h in ("all", *HALVES)}
    whole = tasks["all"]
    assert whole.x_eval.shape[0] == n_eval
    rows = {h: [tuple(r) for r in t.x_eval.tolist()] for h, t in tasks.items()}
    assert_halves_partition(rows["all"], {h: rows[h] for h in HALVES})
    assert len(set(rows["validation"]) & set(rows["test"])) == 0
    for h in HALVES:
        t = tasks[h]
        # the targets travel with their points, and everything else is the same problem
        assert torch.equal(t.y_eval, whole.y_eval[0::2] if h == "validation" else whole.y_eval[1::2])
        assert torch.equal(t.x_train, whole.x_train) and torch.equal(t.y_train, whole.y_train)
        for a, b in zip(t.model.parameters(), whole.model.parameters(), strict=True):
            assert torch.equal(a, b)
        assert t.describe()["n_eval"] == t.x_eval.shape[0] and t.describe()["heldout"] == h
    assert tasks["validation"].x_eval.shape[0] == (n_eval + 1) // 2
    assert tasks["test"].x_eval.shape[0] == n_eval // 2


def test_synthetic_eval_loss_is_over_the_chosen_half():
    tasks = {h: synthetic_task(h) for h in ("all", *HALVES)}  # n_eval 64: halves of 32
    losses = {
        h: t.evaluate(t.model, batch_size=4, max_batches=1, autocast=contextlib.nullcontext)["loss"]
        for h, t in tasks.items()
    }
    model = tasks["all"].model
    with torch.no_grad():
        for h in HALVES:
            x, y = tasks[h].x_eval, tasks[h].y_eval
            assert losses[h] == pytest.approx(float(torch.nn.functional.mse_loss(model(x), y)), rel=1e-6)
    assert losses["validation"] != losses["test"]
    assert losses["all"] == pytest.approx((losses["validation"] + losses["test"]) / 2, rel=1e-6)


def test_an_empty_synthetic_half_is_refused_by_validate_run_and_the_task_alike(tmp_path):
    cfg = synthetic_config()
    cfg["task"]["synthetic"]["n_eval"] = 1
    assert validate_config(with_heldout(json.loads(json.dumps(cfg)), "validation")) == []  # keeps point 0
    bad = with_heldout(cfg, "test")
    problems = validate_config(bad)
    assert [p.field for p in problems] == ["/task/heldout"]
    assert "n_eval" in problems[0].message and '"all"' in problems[0].message

    code, events = run(tmp_path, bad, "empty-half")
    assert code == 2 and not (tmp_path / "empty-half").exists()
    errors = [e for e in events if e["type"] == "error"]
    assert [e["field"] for e in errors] == ["/task/heldout"] and errors[0]["kind"] == "config"
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"

    with pytest.raises(WorkerError) as info:  # the task itself (library use, no validate) says the same
        SyntheticLowRankTask(apply_defaults(bad))
    assert info.value.kind == "config" and info.value.field == "/task/heldout"
    assert "n_eval" in info.value.hint and '"all"' in info.value.hint


def test_runs_on_the_two_halves_train_the_same_and_report_different_eval_numbers(tmp_path):
    train = {"steps": 6, "batch_size": 16, "device": "cpu", "seed": 3, "eval_interval": 3}
    results = {}
    for h in ("all", *HALVES):
        code, _ = run(tmp_path, with_heldout(synthetic_config(train=train), h), h)
        assert code == 0
        events = read_events(tmp_path / h)
        assert_valid_events(events)
        config = json.loads((tmp_path / h / "config.json").read_text())
        assert config["task"]["heldout"] == h
        metrics = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
        results[h] = {
            "train": [(e["step"], e["loss"]) for e in metrics],
            "eval": [(e["step"], e["metrics"]) for e in events if e["type"] == "eval"],
        }
    assert [s for s, _ in results["all"]["eval"]] == [0, 3, 6]
    # the same trained state: the same train losses step by step, the same learned adapter ...
    assert results["validation"]["train"] == results["test"]["train"] == results["all"]["train"]
    for (_, v), (_, t), (_, a) in zip(
        results["validation"]["eval"], results["test"]["eval"], results["all"]["eval"], strict=True
    ):
        assert v["delta_distance"] == t["delta_distance"] == a["delta_distance"]
        # ... evaluated on disjoint halves: different numbers, whose mean is the whole set's (equal halves)
        assert v["loss"] != t["loss"]
        assert a["loss"] == pytest.approx((v["loss"] + t["loss"]) / 2, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------
# causal-lm (an eval_fraction hold-out) and builtin-default (its eval file)


def example_keys(task) -> list[tuple]:
    return [(tuple(e.ids), tuple(e.labels), e.prompt, e.completion) for e in task.eval_examples]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    pytest.importorskip("transformers")
    from worker_fixtures import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def word_records(n: int) -> list[dict]:
    rng = random.Random(5)
    words = {"".join(rng.choice("abcdefgh") for _ in range(5)) for _ in range(4 * n)}
    return [{"prompt": f"{w}?", "completion": w[0]} for w in sorted(words)[:n]]


def causal_config(model, data, heldout=None, **task) -> dict:
    cfg = {
        "task": {"kind": "causal-lm", "model": str(model), "data": str(data), "seq_len": 16, **task},
        "adapter": {"rank": 4},
        "method": {"init": "lora", "optimizer": "adamw", "lr": 0.01},
        "train": {"steps": 1, "batch_size": 4, "device": "cpu"},
    }
    return with_heldout(cfg, heldout)


def test_causal_lm_halves_of_an_eval_fraction_hold_out(llama, tmp_path):
    from riemannlora.tasks.causal_lm import CausalLMTask

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in word_records(41)))
    tasks = {
        h: CausalLMTask(apply_defaults(causal_config(llama, data, h, eval_fraction=0.25)))
        for h in ("all", *HALVES)
    }
    keys = {h: example_keys(t) for h, t in tasks.items()}
    assert len(keys["all"]) == 10 and len(set(keys["all"])) == 10
    assert_halves_partition(keys["all"], {h: keys[h] for h in HALVES})
    for h in HALVES:  # the training data is the same whatever is evaluated
        assert [e.ids for e in tasks[h].train_examples] == [e.ids for e in tasks["all"].train_examples]
        assert tasks[h].describe()["eval_examples"] == 5 and tasks[h].describe()["heldout"] == h
    no_cast = contextlib.nullcontext
    model = tasks["all"].model
    numbers = {
        h: t.evaluate(model, batch_size=4, max_batches=8, autocast=no_cast)["loss"] for h, t in tasks.items()
    }
    assert numbers["validation"] != numbers["test"]


def test_an_empty_causal_lm_half_is_a_config_error_naming_the_field(llama, tmp_path):
    from riemannlora.tasks.causal_lm import CausalLMTask

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in word_records(4)))  # eval_fraction 0.1: 1 held out
    assert len(CausalLMTask(apply_defaults(causal_config(llama, data, "validation"))).eval_examples) == 1
    bad = causal_config(llama, data, "test")
    with pytest.raises(WorkerError) as info:
        CausalLMTask(apply_defaults(bad))
    assert info.value.kind == "config" and info.value.field == "/task/heldout"
    assert "eval_fraction" in info.value.hint and '"all"' in info.value.hint
    # through the worker: the size of a causal-lm hold-out is known once the data is read, so `run` says it
    code, events = run(tmp_path, bad, "empty-half")
    assert code == 2
    errors = [e for e in events if e["type"] == "error"]
    assert [(e["kind"], e["field"]) for e in errors] == [("config", "/task/heldout")]


def test_builtin_default_halves_of_its_eval_file_each_evaluated_whole(monkeypatch):
    assets = pytest.importorskip("riemannlora.assets")
    pytest.importorskip("transformers")
    if not (assets.default_data_dir() / "eval.jsonl").is_file():
        pytest.skip("the built-in default assets are not built")
    from riemannlora.tasks.builtin_default import BuiltinDefaultTask
    from riemannlora.tasks.registry import task_default_overrides

    def build(heldout):
        cfg = with_heldout(
            {
                "task": {"kind": "builtin-default", "eval_generate": False},
                "adapter": {"rank": 4},
                "method": {"init": "lora", "optimizer": "adamw"},
                "train": {"steps": 1, "device": "cpu"},
            },
            heldout,
        )
        return BuiltinDefaultTask(apply_defaults(cfg, task_default_overrides("builtin-default")))

    tasks = {h: build(h) for h in ("all", *HALVES)}
    keys = {h: example_keys(t) for h, t in tasks.items()}
    records = [x for x in (assets.default_data_dir() / "eval.jsonl").read_text().splitlines() if x.strip()]
    assert len(keys["all"]) == len(records)
    assert_halves_partition(keys["all"], {h: keys[h] for h in HALVES})

    seen = []
    model = tasks["all"].model
    losses = {}
    for h in HALVES:
        task = tasks[h]
        collate = task._collate
        monkeypatch.setattr(task, "_collate", lambda ex, collate=collate: seen.append(len(ex)) or collate(ex))
        seen.clear()
        # whatever the batch settings, the whole half is evaluated
        losses[h] = task.evaluate(model, batch_size=4, max_batches=1, autocast=contextlib.nullcontext)["loss"]
        assert sum(seen) == len(task.eval_examples) == len(keys[h])
    assert losses["validation"] != losses["test"]
