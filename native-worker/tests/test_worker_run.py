"""`run` in-process: the event stream (every kind, schema-valid), the run directory, explained failures."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest
import torch
from worker_fixtures import (
    assert_valid_events,
    assert_valid_status,
    read_events,
    synthetic_config,
    write_json,
)

from riemannlora.tasks.synthetic_lowrank import SyntheticLowRankTask
from riemannlora.worker.run import run_command


def run(tmp_path, config, name="run", resume=False):
    cfg_path = write_json(tmp_path / f"{name}.json", config) if isinstance(config, dict) else config
    out = io.StringIO()
    code = run_command(str(cfg_path), str(tmp_path / name), resume=resume, stdout=out)
    stdout_events = [json.loads(line) for line in out.getvalue().splitlines()]
    return code, stdout_events


def test_every_event_kind_is_emitted_schema_valid_and_mirrored_on_stdout(tmp_path):
    cfg = synthetic_config(
        train={"steps": 6, "batch_size": 8, "device": "cpu", "eval_interval": 3, "precision": "bf16"},
        adapter={"rank": 2, "alpha": 4},  # alpha with a Riemannian optimizer: a warning `log` event
        output={"checkpoint_interval": 2, "keep_checkpoints": 2},
    )
    code, stdout_events = run(tmp_path, cfg)
    assert code == 0
    run_dir = tmp_path / "run"
    events = read_events(run_dir)
    assert stdout_events == events  # the file and stdout carry the same lines
    assert_valid_events(events)
    kinds = {e["type"] for e in events}
    assert kinds == {"started", "init", "metric", "eval", "checkpoint", "log", "finished"}
    assert events[0]["type"] == "log" or events[0]["type"] == "started"
    finished = events[-1]
    assert finished["type"] == "finished" and finished["status"] == "completed"
    assert finished["summary"]["steps"] == 6 and finished["summary"]["adapter_path"] == "adapter"
    assert finished["summary"]["final_eval"]["loss"] >= 0
    # Raw numbers under raw names (the engine's smoothed ones are run.json's *_smoothed): the last step's
    # loss is the last train metric's, the minimum is over those steps, and no old name is written.
    s = finished["summary"]
    train = [e["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert s["last_loss"] == train[-1] and s["min_loss"] == min(train) and s["process_wall_s"] > 0
    assert not {"final_loss", "best_loss", "wall_s"} & s.keys()
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert [(c["step"], c["reason"]) for c in checkpoints] == [(2, "interval"), (4, "interval"), (6, "final")]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000004", "step-00000006"]
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    status = assert_valid_status(run_dir)
    assert status["state"] == "completed" and status["exit_code"] == 0 and status["step"] == 6
    assert status["ended_at"] >= status["started_at"]
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["train"]["log_interval"] == 1 and resolved["output"]["export_adapter"] is True

    # the error kind: a failing run (covered in depth below) also produces schema-valid events
    bad = synthetic_config(train={"steps": 2, "device": "cuda:7"})
    code, events = run(tmp_path, bad, "bad")
    assert code != 0
    assert_valid_events(events)
    assert {e["type"] for e in events} >= {"error", "finished"}


def test_invalid_config_creates_nothing_and_names_every_field(tmp_path):
    cfg = synthetic_config(adapter={"rank": 0}, train={"steps": 0, "device": "cpu"})
    code, events = run(tmp_path, cfg)
    assert code == 2
    assert not (tmp_path / "run").exists()
    assert_valid_events(events)
    errors = [e for e in events if e["type"] == "error"]
    assert {e["field"] for e in errors} == {"/adapter/rank", "/train/steps"}
    assert all(e["kind"] == "config" and e["hint"] for e in errors)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"


def test_invalid_config_in_an_engine_made_run_dir_only_records_the_failure(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"version": 1, "state": "queued", "updated_at": 1.0}))
    code, _ = run(tmp_path, synthetic_config(method={"init": "lora", "optimizer": "nope"}))
    assert code == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["events.jsonl", "status.json"]
    status = assert_valid_status(run_dir)
    assert status["state"] == "failed" and status["exit_code"] == 2
    assert "/method/optimizer" in status["last_error"]["message"]


def test_config_is_immutable_once_started(tmp_path):
    cfg = synthetic_config(train={"steps": 2, "batch_size": 8, "device": "cpu"})
    assert run(tmp_path, cfg)[0] == 0
    before = (tmp_path / "run" / "config.json").read_text()
    # a second plain `run` into the same folder is refused
    code, events = run(tmp_path, cfg)
    assert code == 2 and "--resume" in events[0]["message"]
    # --resume with a different config is refused, naming the fields that differ
    changed = synthetic_config(train={"steps": 4, "batch_size": 8, "device": "cpu"}, method={"lr": 0.01})
    code, events = run(tmp_path, changed, resume=True)
    assert code == 2
    assert "/train/steps" in events[0]["message"] and "/method/lr" in events[0]["message"]
    assert (tmp_path / "run" / "config.json").read_text() == before


def test_resume_of_a_run_written_before_a_field_existed_uses_its_default(tmp_path):
    # A config.json from an older worker lacks fields added since (task.heldout): they take their
    # default, so --resume of that run is not refused as "differs at /task/heldout".
    cfg = synthetic_config(train={"steps": 3, "batch_size": 8, "device": "cpu"})
    assert run(tmp_path, cfg)[0] == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["task"].pop("heldout") == "all"
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    (tmp_path / "run" / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    code, events = run(tmp_path, cfg, resume=True)
    assert code == 0, events[:3]
    assert not any("differs" in str(e.get("message", "")) for e in events)


def test_resume_of_a_completed_run_is_refused_and_writes_nothing(tmp_path):
    cfg = synthetic_config(train={"steps": 3, "batch_size": 8, "device": "cpu"})
    assert run(tmp_path, cfg)[0] == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    code, events = run(tmp_path, cfg, resume=True)
    assert code == 2
    assert events[0]["type"] == "error" and "completed run" in events[0]["message"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == files


def test_resume_without_a_checkpoint_starts_over_with_a_warning(tmp_path):
    code, events = run(
        tmp_path, synthetic_config(train={"steps": 2, "batch_size": 8, "device": "cpu"}), resume=True
    )
    assert code == 0
    assert any(
        e["type"] == "log" and e["level"] == "warning" and "no readable checkpoint" in e["message"]
        for e in events
    )


def test_nan_loss_is_diverged_with_a_learning_rate_hint(tmp_path, monkeypatch):
    original = SyntheticLowRankTask.loss
    calls = {"n": 0}

    def flaky(self, model, batch):
        calls["n"] += 1
        loss = original(self, model, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(SyntheticLowRankTask, "loss", flaky)
    code, events = run(tmp_path, synthetic_config(train={"steps": 5, "batch_size": 8, "device": "cpu"}))
    assert code == 3
    assert_valid_events(events)
    metrics = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert metrics[-1]["step"] == 3 and metrics[-1]["loss"] is None  # NaN is written as null
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "diverged" and "learning rate" in error["hint"]
    assert events[-1]["status"] == "diverged"
    status = assert_valid_status(tmp_path / "run")
    assert status["state"] == "diverged" and status["last_error"]["kind"] == "diverged"
    assert not (tmp_path / "run" / "adapter").exists()


def test_out_of_memory_hint_names_the_batch_size(tmp_path, monkeypatch):
    def oom(self, model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SyntheticLowRankTask, "loss", oom)
    cfg = synthetic_config(train={"steps": 2, "batch_size": 32, "grad_accum": 1, "device": "cpu"})
    code, events = run(tmp_path, cfg)
    assert code == 1
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "out-of-memory"
    assert "train.batch_size (now 32, try 16)" in error["hint"] and "grad_accum" in error["hint"]
    assert events[-1]["status"] == "failed"


def test_unexpected_exception_goes_to_worker_log_not_stdout(tmp_path, monkeypatch):
    def boom(self, model, batch):
        raise RuntimeError("something odd inside the model")

    monkeypatch.setattr(SyntheticLowRankTask, "loss", boom)
    code, events = run(tmp_path, synthetic_config(train={"steps": 2, "device": "cpu"}))
    assert code == 1
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "internal" and "something odd inside the model" in error["message"]
    assert "worker.log" in error["hint"]
    log = (tmp_path / "run" / "worker.log").read_text()
    assert "Traceback" in log and "something odd inside the model" in log
    status = assert_valid_status(tmp_path / "run")
    assert status["state"] == "failed" and status["exit_code"] == 1


def test_missing_optional_package_gives_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    data = tmp_path / "d.txt"
    data.write_text("hello world")
    cfg = {
        "task": {"kind": "causal-lm", "model": str(model_dir), "data": str(data)},
        "adapter": {"rank": 2},
        "method": {"init": "lora", "optimizer": "adamw"},
        "train": {"steps": 1, "device": "cpu"},
    }
    code, events = run(tmp_path, cfg)
    assert code == 1
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "missing-package" and 'pip install "transformers' in error["hint"]


def test_device_that_is_not_there_is_a_config_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, events = run(tmp_path, synthetic_config(train={"steps": 1, "device": "cuda"}))
    error = next(e for e in events if e["type"] == "error")
    assert code == 2 and error["kind"] == "config" and error["field"] == "/train/device"


def test_event_values_are_plain_json(tmp_path):
    from riemannlora.worker.events import EventWriter, json_safe

    assert json_safe({"a": float("inf"), "b": [float("nan"), 1.5], "c": torch.tensor(2.0)}) == {
        "a": None,
        "b": [None, 1.5],
        "c": 2.0,
    }
    out = io.StringIO()
    w = EventWriter(tmp_path / "e.jsonl", stream=out)
    w.emit("metric", step=1, split="train", loss=math.inf, grad_norm=math.nan)
    w.close()
    line = json.loads((tmp_path / "e.jsonl").read_text())
    assert line["loss"] is None and line["grad_norm"] is None and out.getvalue().count("\n") == 1
    with pytest.raises(ValueError, match="unknown event type"):
        w.emit("progress")
    silent = EventWriter(tmp_path / "rank1.jsonl", stream=out, is_main=False)
    assert silent.emit("log", level="info", message="x") is None and not (tmp_path / "rank1.jsonl").exists()


def test_events_appended_after_a_cut_line_start_on_their_own_line(tmp_path):
    """After kill -9 the file may end in a cut line; a resumed worker must not glue its first event to it."""
    from riemannlora.worker.events import EventWriter

    path = tmp_path / "events.jsonl"
    path.write_text('{"type":"log","version":1,"time":1,"level":"info","message":"whole"}\n{"type":"met')
    writer = EventWriter(path, stream=io.StringIO())
    writer.emit("log", level="info", message="after resume")
    lines = path.read_text().split("\n")
    assert lines[1] == '{"type":"met'
    assert json.loads(lines[2])["message"] == "after resume"
