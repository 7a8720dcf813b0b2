"""The worker's config checks: every malformed config is refused with an error that names the field.

Sources of malformed configs: every `schema/fixtures/config/invalid/*.json` (the lead's shared cases and the
worker's `w-*` additions), plus the rules the schema cannot express (relations between fields, the trainer's
init x optimizer rules, local paths that do not exist, unreadable files), which live here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from worker_fixtures import synthetic_config, write_json

from riemannlora.config import (
    ConfigError,
    apply_defaults,
    load_config,
    load_config_file,
    method_arguments,
    validate_config,
)
from riemannlora.worker.validate import validate_command

FIXTURES = Path(__file__).resolve().parents[2] / "schema" / "fixtures" / "config"
INVALID = sorted((FIXTURES / "invalid").glob("*.json"))
VALID = sorted((FIXTURES / "valid").glob("*.json"))


def _patched(**over):
    return synthetic_config(**over)


# (name, config, field the error must name, a word the message must contain)
SEMANTIC_CASES = [
    (
        "target-rank-above-width",
        _patched(task={"kind": "synthetic-lowrank", "synthetic": {"width": 8, "target_rank": 9}}),
        "/task/synthetic/target_rank",
        "width",
    ),
    (
        "adapter-rank-above-width",
        _patched(task={"kind": "synthetic-lowrank", "synthetic": {"width": 8}}, adapter={"rank": 12}),
        "/adapter/rank",
        "width",
    ),
    (
        "target-modules-match-nothing",
        _patched(adapter={"rank": 2, "target_modules": ["q_proj"]}),
        "/adapter/target_modules",
        "layers.0",
    ),
    ("warmup-longer-than-run", _patched(method={"warmup_steps": 50}), "/method/warmup_steps", "steps"),
    (
        "loraplus-ratio-below-one",
        _patched(method={"init": "lora", "optimizer": "loraplus", "loraplus_ratio": 0.5}),
        "/method/loraplus_ratio",
        "minimum of 1",  # a schema rule now (scripts/gen-catalogue.mjs, from schema/methods.json)
    ),
    (
        "dora-with-loi",
        _patched(adapter={"rank": 2, "dora": True}, method={"init": "loi", "optimizer": "adamw"}),
        "/method/init",  # a schema rule now: DoRA starts from B·A = 0 (schema/methods.json zero_product)
        "allowed values",
    ),
    (
        "missing-model-dir",
        {
            "task": {"kind": "causal-lm", "model": "/nonexistent/tiny-llama", "data": "/nonexistent/d.jsonl"},
            "adapter": {"rank": 2},
            "method": {"init": "lora", "optimizer": "adamw"},
            "train": {"steps": 3},
        },
        "/task/model",
        "config.json",
    ),
    (
        "missing-data-file",
        {
            "task": {"kind": "causal-lm", "model": "org/model", "data": "./no/such/data.jsonl"},
            "adapter": {"rank": 2},
            "method": {"init": "lora", "optimizer": "adamw"},
            "train": {"steps": 3},
        },
        "/task/data",
        ".jsonl",
    ),
    (
        "missing-eval-file",
        {
            "task": {
                "kind": "causal-lm",
                "model": "org/model",
                "data": "org/data",
                "eval_data": "eval.jsonl",
            },
            "adapter": {"rank": 2},
            "method": {"init": "lora", "optimizer": "adamw"},
            "train": {"steps": 3},
        },
        "/task/eval_data",
        "not found",
    ),
]


def test_there_are_at_least_thirty_malformed_configs():
    assert len(INVALID) + len(SEMANTIC_CASES) + 2 >= 30
    assert len([p for p in INVALID if p.name.startswith("w-")]) >= 20


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_fixture_configs_are_refused_naming_the_field(case: Path):
    doc = json.loads(case.read_text())
    problems = validate_config(doc["data"], check_paths=False)
    assert problems, f"{case.name} should be invalid: {doc['description']}"
    fields = {p.field or "/" for p in problems}
    for expected in doc["errors"]:
        assert expected in fields, f"{case.name}: no problem names {expected}: {[p.text() for p in problems]}"
    for p in problems:
        assert p.message.strip() and p.field in p.text()


@pytest.mark.parametrize("name,config,field,word", SEMANTIC_CASES, ids=[c[0] for c in SEMANTIC_CASES])
def test_semantic_problems_name_the_field(name, config, field, word):
    problems = validate_config(config)
    by_field = {p.field: p for p in problems}
    assert field in by_field, f"{name}: {[p.text() for p in problems]}"
    assert word.lower() in by_field[field].message.lower(), by_field[field].text()


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.json")
    assert "not found" in str(missing.value) and missing.value.problems[0].kind == "missing-path"
    bad = tmp_path / "bad.json"
    bad.write_text('{"task": {"kind": "synthetic-lowrank"},,}')
    with pytest.raises(ConfigError) as broken:
        load_config(bad)
    assert "not valid JSON" in str(broken.value) and "line 1" in str(broken.value)


def test_relative_task_paths_are_resolved_from_the_config_files_folder(tmp_path, monkeypatch):
    # The same rule as the engine (src/core/config.ts resolveTaskPaths): ./ and ../ and paths that exist
    # next to the config are made absolute; a hub id stays as it is. From any current folder.
    (tmp_path / "cfgs" / "data").mkdir(parents=True)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "cfgs" / "data" / "train.jsonl").write_text('{"text": "a"}\n')
    doc = {
        "task": {
            "kind": "causal-lm",
            "model": "../model",
            "data": "data/train.jsonl",
            "eval_data": "org/name",
        },
        "adapter": {"rank": 2},
        "method": {"init": "lora", "optimizer": "adamw"},
        "train": {"steps": 1},
    }
    cfg = tmp_path / "cfgs" / "x.rlora.json"
    cfg.write_text(json.dumps(doc))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    task = load_config_file(Path("..") / "cfgs" / "x.rlora.json")["task"]
    assert task["model"] == str(tmp_path / "model")
    assert task["data"] == str(tmp_path / "cfgs" / "data" / "train.jsonl")
    assert task["eval_data"] == "org/name"
    assert [p.field for p in validate_config(load_config_file(cfg), deep=False)] == []


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_fixtures_pass_the_worker_rules(case: Path):
    doc = json.loads(case.read_text())
    assert validate_config(doc["data"], check_paths=False) == []


def test_defaults_are_applied_and_user_values_win():
    cfg = synthetic_config(train={"steps": 7, "batch_size": 4, "seed": 1, "device": "cpu"})
    resolved = apply_defaults(cfg)
    assert resolved["train"] == {
        "steps": 7,
        "batch_size": 4,
        "seed": 1,
        "device": "cpu",
        "grad_accum": 1,
        "eval_interval": 0,
        "eval_batches": 8,
        "log_interval": 1,
        "precision": "fp32",
        "threads": 0,
    }
    assert resolved["output"] == {"checkpoint_interval": 0, "keep_checkpoints": 2, "export_adapter": True}
    assert resolved["task"]["synthetic"]["noise"] == 0.0 and resolved["task"]["synthetic"]["width"] == 16
    assert resolved["method"]["schedule"] == "constant" and resolved["method"]["grad_clip"] is None
    assert resolved["adapter"]["target_modules"] == "all-linear"
    assert "seq_len" not in resolved["task"]  # causal-lm fields are not added to a synthetic task
    assert apply_defaults(resolved) == resolved  # idempotent
    assert cfg["train"] == {"steps": 7, "batch_size": 4, "seed": 1, "device": "cpu"}  # input untouched


def test_fields_meaningless_for_the_optimizer_are_warnings_not_errors():
    cfg = apply_defaults(
        synthetic_config(
            adapter={"rank": 2, "rslora": True, "alpha": 8},
            method={"init": "lora", "optimizer": "riemannian-sgd", "momentum_store": "orthogonalized"},
        )
    )
    assert validate_config(cfg) == []
    kwargs, warnings = method_arguments(cfg)
    assert kwargs["rslora"] is False and kwargs["riemannion_momentum_store"] == "raw"
    assert any("rslora" in w for w in warnings) and any("momentum_store" in w for w in warnings)
    adam = apply_defaults(synthetic_config(method={"init": "lora", "optimizer": "adamw", "momentum": 0.5}))
    kwargs, warnings = method_arguments(adam)
    assert kwargs["momentum"] is None and any("momentum" in w for w in warnings)


def test_validate_command_lists_every_problem(tmp_path):
    cfg = synthetic_config(adapter={"rank": 0, "dropout": 1.5}, train={"steps": -1, "device": "tpu"})
    path = write_json(tmp_path / "c.json", cfg)
    out = io.StringIO()
    assert validate_command(str(path), stdout=out) == 2
    report = json.loads(out.getvalue())
    assert report["valid"] is False
    fields = {p["field"] for p in report["problems"]}
    assert {"/adapter/rank", "/adapter/dropout", "/train/steps", "/train/device"} <= fields

    good = write_json(tmp_path / "g.json", synthetic_config())
    out = io.StringIO()
    assert validate_command(str(good), stdout=out) == 0
    report = json.loads(out.getvalue())
    assert report["valid"] is True and report["problems"] == []
    assert report["config"]["output"]["keep_checkpoints"] == 2
