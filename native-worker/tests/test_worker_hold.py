"""The test hold point (riemannlora/worker/hold.py): a run waits after a step until a file exists."""

from __future__ import annotations

import pytest
from worker_fixtures import (
    assert_valid_events,
    read_events,
    synthetic_config,
    wait_for_steps,
    worker_popen,
    write_json,
)

from riemannlora.worker.hold import ENV, HoldPoint, HoldSpecError


def test_the_hold_point_is_read_from_the_environment():
    assert HoldPoint.from_env({}) is None
    assert HoldPoint.from_env({ENV: " "}) is None
    hold = HoldPoint.from_env({ENV: "7:/tmp/release me"})
    assert hold is not None and hold.step == 7 and str(hold.release_file) == "/tmp/release me"


@pytest.mark.parametrize("text", ["7", "x:/tmp/f", "7:", ":/tmp/f", "-1:/tmp/f"])
def test_a_malformed_hold_point_is_refused_with_the_fix(text):
    with pytest.raises(HoldSpecError, match=f"{ENV}=.*STEP:FILE"):
        HoldPoint.from_env({ENV: text})


def test_a_held_run_waits_at_its_step_until_the_file_exists_then_completes(tmp_path):
    cfg = write_json(tmp_path / "cfg.json", synthetic_config(train={"steps": 12, "eval_interval": 0}))
    run_dir, release = tmp_path / "run", tmp_path / "release"
    proc = worker_popen("run", "--config", str(cfg), "--run-dir", str(run_dir), hold=(5, release))
    wait_for_steps(proc, run_dir, 5)
    # Held: the log line says so and no sixth step starts until the file exists.
    events = read_events(run_dir)
    assert any(e["type"] == "log" and "holding after step 5" in e["message"] for e in events)
    assert proc.poll() is None
    assert max(e["step"] for e in events if e["type"] == "metric") == 5
    release.touch()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    events = read_events(run_dir)
    assert_valid_events(events)
    assert [e["step"] for e in events if e["type"] == "metric" and e["split"] == "train"] == list(
        range(1, 13)
    )
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "completed"


def test_a_malformed_hold_point_fails_the_run_with_an_explained_error(tmp_path):
    cfg = write_json(tmp_path / "cfg.json", synthetic_config())
    run_dir = tmp_path / "run"
    proc = worker_popen("run", "--config", str(cfg), "--run-dir", str(run_dir), hold=("soon", tmp_path))  # type: ignore[arg-type]
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    err = next(e for e in read_events(run_dir) if e["type"] == "error")
    assert ENV in err["message"] and ENV in err["hint"]
