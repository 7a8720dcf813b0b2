"""`builtin-default`: the causal-lm task on the model and data shipped in `riemannlora.assets`.

The documented numbers (base accuracy, the recommended fine-tune and the accuracy it reaches) come from the
assets themselves: `default_data_dir()/recommended.json` = {"task": {...task fields...}, "run": {...a run
config's adapter/method/train groups...}, "expected": {"accuracy_before_max": x,
"token_accuracy_before_max": y, "token_accuracy_after_min": z}},
so the README, the worker and this test cannot disagree. Skipped where the assets are not built.
"""

from __future__ import annotations

import io
import json

import pytest
from worker_fixtures import assert_valid_events, read_events, write_json

from riemannlora.config import apply_defaults
from riemannlora.tasks.registry import task_default_overrides
from riemannlora.worker.run import run_command

assets = pytest.importorskip("riemannlora.assets")
pytest.importorskip("transformers")
MODEL = assets.default_model_dir()
DATA = assets.default_data_dir()
pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file() or not (DATA / "eval.jsonl").is_file(),
    reason="the built-in default assets are not built (native-worker/tools/make_default_assets.py)",
)


def recommended() -> dict:
    path = DATA / "recommended.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def builtin_config(**groups) -> dict:
    cfg = {
        "task": {"kind": "builtin-default"},
        "adapter": {"rank": 8},
        "method": {"init": "loi", "optimizer": "riemannion"},
        "train": {"steps": 1, "device": "cpu"},
    }
    cfg.update(groups)
    return cfg


def test_the_builtin_task_is_causal_lm_on_the_shipped_assets():
    from riemannlora.tasks.builtin_default import BuiltinDefaultTask
    from riemannlora.tasks.causal_lm import IGNORE

    resolved = apply_defaults(builtin_config(), task_default_overrides("builtin-default"))
    for key, value in recommended().get("task", {}).items():
        assert resolved["task"][key] == value
    task = BuiltinDefaultTask(resolved)
    assert task.model_ref == str(MODEL)
    eval_records = [json.loads(x) for x in (DATA / "eval.jsonl").read_text().splitlines() if x.strip()]
    train_lines = [x for x in (DATA / "train.jsonl").read_text().splitlines() if x.strip()]
    assert len(task.eval_examples) == len(eval_records) and task.num_train() == len(train_lines)
    # every record fits: the prompt keeps its BOS and the completion is whole
    for ex in task.train_examples + task.eval_examples:
        assert (
            ex.completion is not None and ex.labels[0] == IGNORE and ex.ids[0] == task.tokenizer.bos_token_id
        )


def test_the_base_model_has_not_learned_the_fine_tuning_skill():
    from riemannlora.tasks.builtin_default import BuiltinDefaultTask

    task = BuiltinDefaultTask(apply_defaults(builtin_config(), task_default_overrides("builtin-default")))
    task.model.eval()
    import contextlib

    metrics = task.evaluate(task.model, batch_size=8, max_batches=1, autocast=contextlib.nullcontext)
    limit = recommended().get("expected", {}).get("accuracy_before_max", 0.05)
    assert metrics["accuracy"] <= limit  # the README: the base model scores ~0% on the held-out split
    # it copies, and a copy is right where a letter is not swapped: token accuracy well above 0, below the cap
    cap = recommended().get("expected", {}).get("token_accuracy_before_max", 0.35)
    assert 0.1 < metrics["token_accuracy"] <= cap
    assert metrics["loss"] > 0 and metrics["perplexity"] > 1


@pytest.mark.slow
def test_a_riemannlora_fine_tune_reaches_the_documented_accuracy(tmp_path):
    rec = recommended()
    if "run" not in rec or "token_accuracy_after_min" not in rec.get("expected", {}):
        pytest.skip("the assets document no recommended run / target accuracy (recommended.json)")
    cfg = builtin_config(**rec["run"])
    cfg["task"] = {"kind": "builtin-default"}
    path = write_json(tmp_path / "c.json", cfg)
    assert run_command(str(path), str(tmp_path / "run"), stdout=io.StringIO()) == 0
    events = read_events(tmp_path / "run")
    assert_valid_events(events)
    final = events[-1]["summary"]["final_eval"]
    assert final["token_accuracy"] >= rec["expected"]["token_accuracy_after_min"], final
