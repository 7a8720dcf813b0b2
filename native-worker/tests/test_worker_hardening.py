"""Regression tests of issue 14's worker items: one writer per run directory, refused launches write
nothing, checkpoint fallback, a run directory deleted mid-run, disk errors, early signals, memory.

Every multi-process test is paced by the hold point (riemannlora/worker/hold.py), never by time.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from worker_fixtures import (
    NATIVE,
    StopAfter,
    assert_valid_events,
    assert_valid_status,
    read_events,
    synthetic_config,
    wait_for_steps,
    worker_env,
    worker_popen,
    write_json,
)

from riemannlora.worker.run import run_command


def run(tmp_path: Path, config, name: str = "run", resume: bool = False, stop=None):
    cfg_path = write_json(tmp_path / f"{name}.json", config) if isinstance(config, dict) else config
    out = io.StringIO()
    code = run_command(str(cfg_path), str(tmp_path / name), resume=resume, stdout=out, stop=stop)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def files_of(run_dir: Path) -> dict[str, bytes]:
    """Every file under a run directory with its bytes: 'nothing was written' is equality of two of these."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def held_worker(tmp_path: Path, steps: int = 12, at: int = 3):
    cfg = write_json(tmp_path / "a.json", synthetic_config(train={"steps": steps, "eval_interval": 0}))
    run_dir, release = tmp_path / "run", tmp_path / "release"
    proc = worker_popen("run", "--config", str(cfg), "--run-dir", str(run_dir), hold=(at, release))
    wait_for_steps(proc, run_dir, at)
    return proc, run_dir, release


def train_steps(events) -> list[int]:
    return [e["step"] for e in events if e["type"] == "metric" and e["split"] == "train"]


# ------------------------------------------------------------------------------------------------------
# Item 3: one writer per run directory


@pytest.mark.parametrize("resume", [False, True], ids=["run", "resume"])
def test_a_second_worker_on_a_held_directory_is_refused_and_writes_nothing(tmp_path, resume):
    proc, run_dir, release = held_worker(tmp_path)
    try:
        before = files_of(run_dir)
        cfg = write_json(tmp_path / "b.json", synthetic_config(train={"steps": 12, "eval_interval": 0}))
        args = ["run", "--config", str(cfg), "--run-dir", str(run_dir)] + (["--resume"] if resume else [])
        # stderr into the run's own worker.log, as the engine launches workers: the refusal must not land
        # in the log of the worker that holds the directory
        with open(run_dir / "worker.log", "a", encoding="utf-8") as log:
            second = subprocess.Popen(
                [sys.executable, "-m", "riemannlora.worker", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=worker_env(),
            )
            stdout, _ = second.communicate(timeout=120)
        assert second.returncode == 75  # EXIT_BUSY: someone else's run, try again once it ends
        events = [json.loads(line) for line in stdout.splitlines()]
        assert events[0]["type"] == "error" and "in use by another worker" in events[0]["message"]
        assert files_of(run_dir) == before  # not a byte written by the refused worker
    finally:
        release.touch()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    events = read_events(run_dir)
    assert train_steps(events) == list(range(1, 13))  # one writer: 12 lines, in order
    assert assert_valid_status(run_dir)["state"] == "completed"


def test_a_stale_status_pid_does_not_block_resume(tmp_path):
    """The lock, not the recorded pid, says whether a worker is there: a pid reused by an unrelated
    process (here a sleeper) must not keep a killed run from resuming."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        status = {
            "version": 1,
            "state": "running",
            "pid": sleeper.pid,
            "host": socket.gethostname(),
            "updated_at": 1.0,
        }
        (run_dir / "status.json").write_text(json.dumps(status))
        code, _ = run(tmp_path, synthetic_config(train={"steps": 2, "device": "cpu"}), resume=True)
        assert code == 0
        assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------------------------------------
# Item 4: a refused launch writes nothing into a directory that holds a run


def test_an_invalid_config_into_a_completed_run_writes_nothing(tmp_path):
    assert run(tmp_path, synthetic_config(train={"steps": 2}))[0] == 0
    before = files_of(tmp_path / "run")
    bad = synthetic_config(train={"steps": 2, "bogus": 1})
    code, events = run(tmp_path, bad)
    assert code == 2 and events[0]["field"] == "/train/bogus"
    code, events = run(tmp_path, bad, resume=True)
    assert code == 2 and events[0]["field"] == "/train/bogus"
    assert files_of(tmp_path / "run") == before


def test_an_invalid_config_into_a_live_run_writes_nothing(tmp_path):
    proc, run_dir, release = held_worker(tmp_path)
    try:
        before = files_of(run_dir)
        cfg = write_json(tmp_path / "bad.json", synthetic_config(adapter={"rank": 0}))
        second = worker_popen("run", "--config", str(cfg), "--run-dir", str(run_dir))
        stdout, _ = second.communicate(timeout=120)
        assert second.returncode == 2 and '"field":"/adapter/rank"' in stdout
        assert files_of(run_dir) == before
    finally:
        release.touch()
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert read_events(run_dir)[-1]["status"] == "completed"


# ------------------------------------------------------------------------------------------------------
# Item 8: checkpoint fallback


def _stopped_at_six(tmp_path: Path, name: str = "run"):
    cfg = synthetic_config(
        train={"steps": 12, "eval_interval": 0}, output={"checkpoint_interval": 2, "keep_checkpoints": 3}
    )
    code, _ = run(tmp_path, cfg, name=name, stop=StopAfter(6))
    assert code == 0
    return cfg, tmp_path / name / "checkpoints"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_resume_falls_back_to_an_older_checkpoint_and_trains_the_same(tmp_path, damage):
    cfg, ckpts = _stopped_at_six(tmp_path)
    newest = ckpts / "step-00000006" / "state.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    (ckpts / ".tmp-step-00000008-4242").mkdir()  # what a kill during a save leaves
    (ckpts / ".tmp-step-00000008-4242" / "state.pt").write_bytes(b"half")

    code, events = run(tmp_path, cfg, resume=True)
    assert code == 0
    warnings = [e["message"] for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert any("step-00000006 cannot be read" in w for w in warnings), warnings
    assert any("continuing from step 4" in w and "the run had reached step 6" in w for w in warnings), (
        warnings
    )
    started = next(e for e in events if e["type"] == "started")
    assert started["resumed"] is True and started["start_step"] == 4
    assert not (ckpts / ".tmp-step-00000008-4242").exists()
    assert (ckpts / ".damaged-step-00000006" / "state.pt").exists()  # kept for inspection
    assert events[-1]["status"] == "completed"
    # bit-identical to a run that was never interrupted, from the step it fell back to
    whole = run(tmp_path, cfg, name="whole")[1]
    resumed = {e["step"]: e["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"}
    straight = {e["step"]: e["loss"] for e in whole if e["type"] == "metric" and e["split"] == "train"}
    assert sorted(resumed) == list(range(5, 13))
    assert all(resumed[s] == straight[s] for s in resumed)


def test_resume_with_every_checkpoint_damaged_starts_over_with_a_warning(tmp_path):
    cfg, ckpts = _stopped_at_six(tmp_path)
    for state in ckpts.glob("step-*/state.pt"):
        state.write_bytes(b"not a checkpoint")
    code, events = run(tmp_path, cfg, resume=True)
    assert code == 0
    assert any(
        "no readable checkpoint" in e.get("message", "") and "reached step 6" in e["message"] for e in events
    )
    assert next(e for e in events if e["type"] == "started")["start_step"] == 0


# ------------------------------------------------------------------------------------------------------
# Item 10: the run directory deleted mid-run


def test_a_run_directory_deleted_mid_run_fails_and_is_not_recreated(tmp_path):
    proc, run_dir, release = held_worker(tmp_path)
    shutil.rmtree(run_dir)
    release.touch()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert not run_dir.exists()  # not silently re-created
    events = [json.loads(line) for line in stdout.splitlines()]
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "missing-path" and "was deleted" in error["message"]
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"
    assert "Traceback" not in stdout


# ------------------------------------------------------------------------------------------------------
# Item 11: disk full, read-only, over quota


def test_a_full_disk_fails_the_run_as_disk_with_a_final_status(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").symlink_to("/dev/full")  # every write of the event file: ENOSPC
    code, events = run(tmp_path, synthetic_config(train={"steps": 2}))
    assert code == 4
    error = next(e for e in events if e["type"] == "error")  # stdout still gets the whole story
    assert error["kind"] == "disk" and "No space left on device" in error["message"]
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"
    assert_valid_events(events)
    status = assert_valid_status(run_dir)  # status.json lives on another file: written
    assert status["state"] == "failed" and status["exit_code"] == 4 and status["last_error"]["kind"] == "disk"


def test_a_failed_checkpoint_write_is_a_disk_error(tmp_path, monkeypatch):
    """torch's zip writer reports a full device as RuntimeError: saved into /dev/full for real."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    import torch

    from riemannlora.worker import checkpoint

    real_save = torch.save

    def save_to_full_disk(state, f):
        with open("/dev/full", "wb") as full:
            real_save(state, full)

    monkeypatch.setattr(checkpoint.torch, "save", save_to_full_disk)
    code, events = run(tmp_path, synthetic_config(train={"steps": 4}, output={"checkpoint_interval": 2}))
    assert code == 4
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "disk" and "--resume" in error["hint"]
    assert assert_valid_status(tmp_path / "run")["last_error"]["kind"] == "disk"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_disk_errnos_are_explained_as_disk(code):
    from riemannlora.errors import explain

    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(code, os.strerror(code), "/runs/x/status.json")
    for exc in (OSError(code, os.strerror(code), "/runs/x/events.jsonl"), wrapped):
        err = explain(exc)
        assert err.kind == "disk" and os.strerror(code) in err.message and err.hint


# ------------------------------------------------------------------------------------------------------
# LOW: signals during imports; a task bigger than the machine


def test_signals_are_caught_before_anything_heavy_is_imported():
    probe = (
        "import signal, sys\n"
        "import riemannlora.worker.__main__ as m\n"
        "handler = signal.getsignal(signal.SIGTERM)\n"
        "same = signal.getsignal(signal.SIGINT) == handler\n"
        "print(getattr(handler, '__self__', None) is m.EARLY_STOP, same, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        capture_output=True,
        text=True,
        env=worker_env(),
        cwd=NATIVE,
        check=True,
    )
    assert out.stdout.split() == ["True", "True", "False"]


def test_a_sigterm_while_loading_becomes_a_clean_stop(tmp_path):
    """Sent once the handler is in place (a `log` event is the earliest sign of life), long before the
    first step: the run stops cleanly with a status instead of dying."""
    cfg = write_json(tmp_path / "cfg.json", synthetic_config(train={"steps": 50}))
    run_dir = tmp_path / "run"
    proc = worker_popen("run", "--config", str(cfg), "--run-dir", str(run_dir), hold=(1, tmp_path / "never"))
    line = proc.stdout.readline()  # the first event: the worker is loading
    assert json.loads(line)["type"] == "log"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    status = assert_valid_status(run_dir)
    assert status["state"] == "stopped"


def test_a_task_bigger_than_the_machine_is_refused_with_the_number(monkeypatch):
    from riemannlora import config as cfgmod
    from riemannlora.tasks.footprint import synthetic_lowrank_bytes as estimated_bytes

    big = synthetic_config(task={"kind": "synthetic-lowrank", "synthetic": {"width": 8192, "depth": 64}})
    need = estimated_bytes(big)
    assert need > 40 * 2**30  # ~49 GiB of fp32/fp64 weights
    monkeypatch.setattr(cfgmod, "host_memory", lambda: (need - 1, need - 1))
    problems = cfgmod.validate_config(big)
    assert [p.field for p in problems] == ["/task/synthetic"]
    assert "GiB" in problems[0].message and "lower width, depth or n_train" in problems[0].message
    monkeypatch.setattr(cfgmod, "host_memory", lambda: (need, need))
    assert cfgmod.validate_config(big) == []


# ------------------------------------------------------------------------------------------------------
# Item 12: what the editor accepts, the worker runs


def test_integral_floats_in_integer_fields_run_like_ints(tmp_path):
    """JavaScript cannot tell 2.0 from 2, so the extension accepts `"rank": 2.0`: the worker must too."""
    cfg = synthetic_config(adapter={"rank": 2.0}, train={"steps": 3.0, "batch_size": 8.0, "device": "cpu"})
    code, events = run(tmp_path, cfg)
    assert code == 0 and events[-1]["status"] == "completed"
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["adapter"]["rank"] == 2 and type(resolved["adapter"]["rank"]) is int
    assert type(resolved["method"]["lr"]) is float  # number fields keep their type


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors save UTF-8 with a BOM: both languages accept it (src/core/jsonDocument.ts too)."""
    from riemannlora.config import load_config

    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(synthetic_config()).encode())
    assert load_config(path)["adapter"]["rank"] == 2
