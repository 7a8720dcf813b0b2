"""The repository's examples/: every config passes the worker's validation from any folder, and the
README's offline recipe for a local Hugging Face model (examples/make_local_model.py) gives a directory
that a causal-lm run trains on and exports from."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from worker_fixtures import read_events, worker_env

from riemannlora.config import load_config, load_config_file
from riemannlora.worker.run import run_command

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.rlora.json"))


def test_there_is_an_example_for_every_task_kind():
    kinds = {json.loads(p.read_text())["task"]["kind"] for p in CONFIGS}
    assert kinds == {"synthetic-lowrank", "builtin-default", "causal-lm"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_example_is_valid_for_the_worker_from_another_folder(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the examples are relative to the file, not to here
    config = load_config(path)
    for key in ("model", "data", "eval_data"):
        if key in config["task"]:
            assert Path(config["task"][key]).exists(), config["task"][key]


@pytest.mark.slow
def test_the_offline_local_model_recipe_trains_and_exports(tmp_path):
    model_dir = tmp_path / "my-model"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make_local_model.py"), str(model_dir)],
        check=True,
        env=worker_env(),
        capture_output=True,
    )
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in model_dir.iterdir()}
    doc = load_config_file(EXAMPLES / "causal-lm-local.rlora.json")  # its data paths made absolute
    doc["task"]["model"] = str(model_dir)
    doc["train"].update(steps=3, eval_interval=0, eval_batches=1, device="cpu")
    doc["output"] = {"checkpoint_interval": 0, "export_adapter": True}
    cfg = tmp_path / "cfg.rlora.json"
    cfg.write_text(json.dumps(doc))
    run_dir = tmp_path / "run"
    assert run_command(str(cfg), str(run_dir), stdout=io.StringIO()) == 0
    events = read_events(run_dir)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "completed"
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
