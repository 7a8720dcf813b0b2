"""The command line: `doctor`, `validate`, and argument errors."""

from __future__ import annotations

import json

import pytest
from worker_fixtures import synthetic_config, worker_popen, write_json

from riemannlora.worker.__main__ import main
from riemannlora.worker.doctor import doctor


def test_doctor_reports_python_torch_devices_and_packages():
    report = doctor()
    assert report["python"]["version"].count(".") == 2
    assert report["torch"]["installed"] and report["torch"]["version"]
    assert any(d["type"] == "cpu" for d in report["devices"])
    for d in report["devices"]:
        if d["type"] == "cuda":
            assert d["name"] and d["memory_bytes"] > 0
    for name in ("transformers", "peft", "datasets", "tokenizers"):
        entry = report["optional"][name]
        assert entry["installed"] == (entry["version"] is not None)
        if not entry["installed"]:
            assert any(f'pip install "{name}' in hint for hint in report["install_hints"])
    json.dumps(report)  # plain JSON


def test_doctor_command_prints_one_json_object():
    proc = worker_popen("doctor")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert {"python", "torch", "devices", "optional", "install_hints"} <= set(report)


def test_validate_exit_codes(tmp_path, capsys):
    good = write_json(tmp_path / "good.json", synthetic_config())
    assert main(["validate", "--config", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    bad = write_json(tmp_path / "bad.json", synthetic_config(train={"steps": 0, "precision": "fp8"}))
    assert main(["validate", "--config", str(bad)]) == 2
    captured = capsys.readouterr()
    problems = json.loads(captured.out)["problems"]
    assert {p["field"] for p in problems} == {"/train/steps", "/train/precision"}
    assert "/train/precision" in captured.err  # human-readable copy on stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", "x.json"])  # --run-dir missing
    assert exc.value.code == 2
    assert "--run-dir" in capsys.readouterr().err
