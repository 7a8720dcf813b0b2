"""The hostile-config corpus (schema/fixtures/hostile/cases.json) through the worker's `validate` and
`run`: every case is refused (non-zero exit), the field or the position is named, nothing is printed as a
traceback, output stays small and free of raw control characters, and no file is left behind.
test/integration/hostile.integration.test.ts runs the same corpus through the CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from worker_fixtures import NATIVE, worker_env

from riemannlora.worker.run import run_command
from riemannlora.worker.validate import validate_command

CORPUS = json.loads((NATIVE.parent / "schema" / "fixtures" / "hostile" / "cases.json").read_text())["cases"]
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_OUTPUT = 20_000  # characters: values are echoed as previews, never whole


def materialize(case: dict, folder: Path) -> Path:
    """The case's config file (and the files beside it) in `folder`."""
    folder.mkdir(parents=True)
    for name, content in (case.get("files") or {}).items():
        path = folder / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    text = (
        case["text"]
        if "text" in case
        else "".join(p if isinstance(p, str) else p[0] * p[1] for p in case["parts"])
    )
    path = folder / "config.json"
    path.write_bytes(text.encode(case.get("encoding", "utf-8")))
    return path


def expected(case: dict) -> str:
    return "is not valid JSON" if case["expect"] == "NOT_JSON" else case["expect"]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check_output(case: dict, output: str) -> None:
    assert expected(case) in output, f"{case['id']}: {expected(case)!r} not in {output[:600]!r}"
    assert "Traceback" not in output
    assert len(output) < MAX_OUTPUT, f"{case['id']}: {len(output)} characters of output"
    assert not RAW_CONTROL.search(output), f"{case['id']}: a raw control character reached the output"


def test_the_corpus_is_big_and_covers_every_kind():
    assert len(CORPUS) >= 60
    ids = {c["id"] for c in CORPUS}
    for kind in (
        "bare-nan-method-lr",
        "lr-1e999",
        "deep-array-100k",
        "deep-betas-50k",
        "huge-name",
        "latin1-name",
        "rank-2_5",
        "device-cuda-99",
        "model-empty-folder",
        "memory-petabytes",
    ):
        assert kind in ids


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c["id"])
def test_worker_validate_and_run_refuse_it(case, tmp_path, capsys):
    cfg = materialize(case, tmp_path / "work")
    before = listing(tmp_path)

    out = io.StringIO()
    code = validate_command(str(cfg), stdout=out)
    err = capsys.readouterr()
    assert code == 2
    verdict = json.loads(out.getvalue())
    assert verdict["valid"] is False and verdict["problems"]
    check_output(case, out.getvalue() + err.out + err.err)  # the JSON escapes; stderr has the text

    out = io.StringIO()
    code = run_command(str(cfg), str(tmp_path / "run"), stdout=out)
    err = capsys.readouterr()
    assert code == 2
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[-1] == {**events[-1], "type": "finished", "status": "failed"}
    check_output(case, out.getvalue() + err.out + err.err)
    assert listing(tmp_path) == before  # no run directory, no checkpoints/, nothing


def test_the_worker_processes_refuse_the_whole_corpus(tmp_path):
    """One `validate` process for every case (repeated --config), and `run` processes for a few: exit
    codes and stderr as a user sees them."""
    configs = [materialize(case, tmp_path / case["id"]) for case in CORPUS]
    args = [a for cfg in configs for a in ("--config", str(cfg))]
    before = listing(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "riemannlora.worker", "validate", *args],
        capture_output=True,
        text=True,
        env=worker_env(),
        cwd=NATIVE,
        timeout=600,
    )
    assert proc.returncode == 2
    verdicts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(verdicts) == len(CORPUS) and not any(v["valid"] for v in verdicts)
    assert "Traceback" not in proc.stderr
    for case in [c for c in CORPUS if c["id"] in ("bare-nan-method-lr", "rank-2_5", "device-cuda-99")]:
        run = subprocess.run(
            [
                sys.executable,
                "-P",
                "-m",
                "riemannlora.worker",
                "run",
                "--config",
                str(tmp_path / case["id"] / "config.json"),
                "--run-dir",
                str(tmp_path / "run"),
            ],
            capture_output=True,
            text=True,
            env=worker_env(),
            cwd=NATIVE,
            timeout=600,
        )
        assert run.returncode == 2
        check_output(case, run.stdout + run.stderr)
    assert listing(tmp_path) == before
