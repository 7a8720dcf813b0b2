"""Real worker processes: stop with SIGINT/SIGTERM, resume exactly, and survive `kill -9` readably."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import pytest
import torch
from worker_fixtures import (
    StopAfter,
    assert_valid_events,
    assert_valid_status,
    read_events,
    synthetic_config,
    wait_for_steps,
    worker_popen,
    write_json,
)

from riemannlora.worker.run import run_command

STEPS = 400  # the runs are held at a step (worker_popen hold=) and signalled there: they never finish


def long_config():
    return synthetic_config(
        method={
            "init": "loi",
            "optimizer": "riemannion",
            "lr": 0.02,
            "schedule": "cosine",
            "warmup_steps": 5,
        },
        adapter={"rank": 2, "dropout": 0.1},  # dropout draws from the RNG: resume must restore its state
        train={"steps": STEPS, "batch_size": 8, "device": "cpu", "seed": 5, "eval_interval": 10},
        output={"checkpoint_interval": 100, "keep_checkpoints": 2, "export_adapter": False},
    )


def losses_by_step(events, split="train"):
    return {e["step"]: e["loss"] for e in events if e["type"] == "metric" and e["split"] == split}


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_stops_after_the_step_checkpoints_and_resume_is_exact(tmp_path, sig):
    cfg_path = write_json(tmp_path / "cfg.json", long_config())
    run_dir = tmp_path / "run"
    proc = worker_popen(
        "run", "--config", str(cfg_path), "--run-dir", str(run_dir), hold=(12, tmp_path / "never")
    )
    wait_for_steps(proc, run_dir, 12)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stdout
    events = read_events(run_dir)
    assert [json.loads(x) for x in stdout.splitlines()] == events
    assert_valid_events(events)
    finished = events[-1]
    assert finished["type"] == "finished" and finished["status"] == "stopped"
    stop_ckpt = [e for e in events if e["type"] == "checkpoint"][-1]
    stopped_at = stop_ckpt["step"]
    assert stop_ckpt["reason"] == "stop" and stopped_at == 12  # held after step 12, stopped there
    assert max(losses_by_step(events)) == stopped_at  # the step in flight was finished, no later one began
    assert (run_dir / stop_ckpt["path"] / "state.pt").is_file()
    status = assert_valid_status(run_dir)
    assert status["state"] == "stopped" and status["exit_code"] == 0 and status["step"] == stopped_at
    if sig == signal.SIGTERM:
        return  # the resume half runs once (SIGINT), to keep the suite fast

    # --resume continues from the checkpoint (stopped again 10+ steps later, to keep the test short) ...
    hold = (stopped_at + 10, tmp_path / "never")
    proc = worker_popen("run", "--config", str(cfg_path), "--run-dir", str(run_dir), "--resume", hold=hold)
    wait_for_steps(proc, run_dir, len(losses_by_step(events)) + 10)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    all_events = read_events(run_dir)
    assert_valid_events(all_events)
    resumed = all_events[len(events) :]
    started = next(e for e in resumed if e["type"] == "started")
    assert started["resumed"] is True and started["start_step"] == stopped_at
    resumed_losses = losses_by_step(resumed)
    last = max(resumed_losses)
    assert sorted(resumed_losses) == list(range(stopped_at + 1, last + 1)) and last == stopped_at + 10

    # ... and computes exactly what an uninterrupted run computes up to that step (bit for bit, on CPU)
    assert run_command(str(cfg_path), str(tmp_path / "ref"), stdout=io.StringIO(), stop=StopAfter(last)) == 0
    ref = read_events(tmp_path / "ref")
    ref_losses = losses_by_step(ref)
    assert max(ref_losses) == last
    for step, loss in resumed_losses.items():
        assert loss == ref_losses[step], (
            f"step {step}: resumed {loss!r} != uninterrupted {ref_losses[step]!r}"
        )
    from riemannlora.worker.checkpoint import latest_checkpoint, load_checkpoint

    a = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ref" / "checkpoints"))
    assert a["step"] == b["step"] == last
    assert a["adapter"].keys() == b["adapter"].keys()
    assert all(torch.equal(a["adapter"][k], b["adapter"][k]) for k in a["adapter"])


def test_sigterm_and_sigint_request_a_graceful_stop_and_a_second_one_aborts():
    from riemannlora.worker.signals import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest().install()
    try:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes of the main thread
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before


def test_kill_9_leaves_everything_flushed_and_status_running_with_a_dead_pid(tmp_path):
    cfg_path = write_json(tmp_path / "cfg.json", long_config())
    run_dir = tmp_path / "run"
    proc = worker_popen(
        "run", "--config", str(cfg_path), "--run-dir", str(run_dir), hold=(103, tmp_path / "never")
    )
    wait_for_steps(proc, run_dir, 103)  # past the first interval checkpoint (step 100), held there
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    text = (run_dir / "events.jsonl").read_text()
    assert text.endswith("\n")  # every emitted line was flushed whole
    events = [json.loads(line) for line in text.splitlines()]
    assert_valid_events(events)
    assert events[0]["type"] in ("started", "log") and not any(e["type"] == "finished" for e in events)
    status = assert_valid_status(run_dir)
    assert status["state"] == "running" and status["pid"] == proc.pid and status["ended_at"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(status["pid"], 0)
    # the checkpoints that were written are complete and loadable
    from riemannlora.worker.checkpoint import latest_checkpoint, load_checkpoint

    latest = latest_checkpoint(run_dir / "checkpoints")
    assert latest is not None and load_checkpoint(latest)["step"] % 100 == 0
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp")]
