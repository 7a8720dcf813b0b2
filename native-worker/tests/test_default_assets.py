"""The built-in default (riemannlora/assets/default): loads offline, fits the size budget, and is what its
generator (tools/make_default_assets.py) says — a pretrained model that copies words but cannot encode them,
and disjoint train/eval splits of the letter-code task."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from riemannlora import assets

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TOOLS = Path(__file__).resolve().parents[1] / "tools"
MAX_BYTES = 10 * 1024 * 1024
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_default_assets", TOOLS / "make_default_assets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_default_assets", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loaded():
    # local_files_only: never reaches for the network, so this is the offline load a user gets
    tok = transformers.AutoTokenizer.from_pretrained(assets.default_model_dir(), local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        assets.default_model_dir(), local_files_only=True, dtype=torch.float32
    )
    model.eval()
    return model, tok


def _read(split: str) -> list[dict]:
    lines = assets.default_data_file(split).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_size_budget_and_layout():
    files = [f for f in assets.default_dir().rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    assert total <= MAX_BYTES, f"built-in default is {total / 1e6:.2f} MB, over the 10 MB budget"
    names = {str(f.relative_to(assets.default_dir())) for f in files}
    for needed in ("README.md", "model/config.json", "model/model.safetensors", "model/tokenizer.json"):
        assert needed in names
    assert {"data/" + v for v in assets.DEFAULT_DATA_FILES.values()} <= names
    with pytest.raises(ValueError, match="split must be one of"):
        assets.default_data_file("test")


def test_model_and_tokenizer_load_offline(loaded):
    model, tok = loaded
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok)
    assert next(model.parameters()).dtype == torch.float32
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert set(TARGETS) <= present, "LoRA target modules missing"
    # a character-level tokenizer: one id per character, <bos> prepended, exact round trip
    text = "copy qwerty = qwerty"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok(text, add_special_tokens=False)["input_ids"] == ids[1:]
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}) == 4


def test_data_files_parse_and_are_disjoint(generator):
    train, held = _read("train"), _read("eval")
    assert len(train) >= 1000 and len(held) == 1000  # two halves of 500 (task.heldout)
    even, odd = generator.code_tables()
    for table in (even, odd):  # involutions of CODE_PAIRS swaps: 20 letters change, 6 stay
        assert all(table[table[a]] == a and table[a] != a for a in table)
        assert len(table) == 2 * generator.CODE_PAIRS
    assert even != odd
    for r in train + held:
        assert set(r) == {assets.DEFAULT_PROMPT_FIELD, assets.DEFAULT_COMPLETION_FIELD}
        tag, word, eq = r["prompt"].split(" ")
        assert (tag, eq) == ("encode", "=") and word.isalpha() and 3 <= len(word) <= 6
        code = "".join((even if i % 2 == 0 else odd).get(c, c) for i, c in enumerate(word))
        assert r["completion"] == " " + code
    for field in ("prompt", "completion"):
        tr, ev = [r[field] for r in train], [r[field] for r in held]
        assert len(set(tr)) == len(tr) and len(set(ev)) == len(ev), f"duplicate {field}s"
        assert not set(tr) & set(ev), f"train and eval share {field}s"


def test_data_is_what_the_generator_makes(generator, tmp_path):
    train, held = generator.finetune_data(generator.SEED)
    assert (train, held) == generator.finetune_data(generator.SEED)  # deterministic
    assert generator.finetune_data(generator.SEED + 1)[1] != held  # and the seed matters
    generator.main(["--data-only", "--out", str(tmp_path)])
    for split, name in assets.DEFAULT_DATA_FILES.items():
        shipped = assets.default_data_file(split).read_bytes()
        assert (tmp_path / "data" / name).read_bytes() == shipped, (
            f"{name} differs from the generator's output"
        )


def test_base_model_is_pretrained_but_cannot_encode(loaded, generator):
    model, tok = loaded
    held = _read("eval")
    # the generator's exact-match rule is the worker's (left-padded greedy decoding cut at <eos>)
    encoded_ok = generator.greedy_exact_match(model, tok, held)
    assert encoded_ok <= 0.05, f"base model already encodes {encoded_ok:.0%} of eval words"
    # it learned its pretraining language: `copy w =` gives w back (held-out words)
    probe = generator.pretrain_probe(generator.SEED)["copy"][:50]
    copy_ok = generator.greedy_exact_match(model, tok, probe)
    assert copy_ok >= 0.8, f"base model copies only {copy_ok:.0%} of held-out words: not pretrained?"
