"""PEFT round trip for every method: set up, train a few steps, export, load with the real
`peft.PeftModel.from_pretrained` on a FRESH copy of the ORIGINAL base, and compare logits (1e-5, fp32).
Also `import_peft` of adapters that PEFT itself wrote, and the error paths.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors import safe_open

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from riemannlora import export_peft, import_peft, setup_method  # noqa: E402
from riemannlora.adapters import adapter_layers, inject_adapters  # noqa: E402
from riemannlora.init import lora_init, pissa_init  # noqa: E402

TOL = 1e-5
VOCAB = 64


def tiny_llama(seed: int = 0, hidden: int = 32):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def tiny_gpt2(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=64)
    return transformers.GPT2LMHeadModel(cfg).eval()


MODELS = {
    "llama": (tiny_llama, ["q_proj", "v_proj", "down_proj"]),
    "gpt2": (tiny_gpt2, ["c_attn", "c_proj"]),  # transformers Conv1D (weight stored in×out)
}


def tokens(seed: int, batch: int = 2, length: int = 8) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def lm_loss(model, batch):
    return model(input_ids=batch, labels=batch).loss


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


# name: setup_method keywords (learning rates raised so that 3 steps visibly move the logits)
METHODS = {
    "lora-adamw": dict(init="lora", optimizer="adamw", lr=2e-2),
    "lora-sgd": dict(init="lora", optimizer="sgd", lr=2.0),
    "rslora": dict(init="lora", optimizer="adamw", lr=2e-2, rslora=True, alpha=8),
    "loraplus": dict(init="lora", optimizer="loraplus", lr=5e-3),
    "pissa": dict(init="pissa", optimizer="adamw", lr=2e-2, alpha=8),
    "lora-ga": dict(init="lora-ga", optimizer="adamw", lr=2e-2),
    "gaussian": dict(init="gaussian", optimizer="adamw", lr=2e-2),
    "lora-loi": dict(init="loi", optimizer="adamw", lr=2e-2),
    "dora": dict(init="lora", optimizer="adamw", lr=2e-2, dora=True),
    "scaled-adamw": dict(init="lora", optimizer="scaled-adamw", lr=2e-2),
    "muon": dict(init="lora", optimizer="muon", lr=2e-2),
    "riemannion-loi": dict(init="loi", optimizer="riemannion", lr=5e-2),
    "riemannion-zero-b": dict(init="lora", optimizer="riemannion", lr=5e-2),
    "riemannian-sgd": dict(init="loi", optimizer="riemannian-sgd", lr=5.0),
    "riemannian-adam": dict(init="lora", optimizer="riemannian-adam", lr=5e-2),
}
OFFSET_INITS = {"pissa", "lora-ga", "loi"}


@pytest.mark.parametrize("model_kind", list(MODELS))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_round_trips_through_peft(method, model_kind, tmp_path):
    build, targets = MODELS[model_kind]
    kwargs = dict(METHODS[method])
    rank = 2
    model = build()
    batches = [tokens(1), tokens(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zero-B Riemannian start is announced with a warning
        setup = setup_method(
            model, rank=rank, target_modules=targets, init_batches=batches, loss_fn=lm_loss, seed=3, **kwargs
        )
    ids = tokens(99)
    base_logits = logits(build(), ids)
    assert torch.allclose(logits(model, ids), base_logits, atol=1e-5)  # every start keeps the function
    model.train()
    for step in range(3):
        setup.optimizer.zero_grad()
        lm_loss(model, tokens(10 + step)).backward()
        setup.optimizer.step()
    model.eval()
    ours = logits(model, ids)
    assert float((ours - base_logits).abs().max()) > 1e-3, (
        "training did not move the model; the test would be void"
    )

    out = export_peft(model, tmp_path / "adapter", base_model_name_or_path="tiny-test-model")
    config = json.loads((out / "adapter_config.json").read_text())
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        keys = set(f.keys())
    layers = adapter_layers(model)
    for name in layers:
        assert (
            f"base_model.model.{name}.lora_A.weight" in keys
            and f"base_model.model.{name}.lora_B.weight" in keys
        )
        assert (f"base_model.model.{name}.lora_magnitude_vector" in keys) == (method == "dora")
    assert config["peft_type"] == "LORA" and config["use_dora"] == (method == "dora")
    assert config["base_model_name_or_path"] == "tiny-test-model"
    assert config["r"] == (2 * rank if kwargs["init"] in OFFSET_INITS else rank)  # the rank-2r conversion
    assert config["rank_pattern"] == {} and config["alpha_pattern"] == {}
    assert sorted(config["target_modules"]) == sorted(targets)

    fresh = build()  # the ORIGINAL base, rebuilt from the same seed
    peft_model = peft.PeftModel.from_pretrained(fresh, str(out)).eval()
    theirs = logits(peft_model, ids)
    assert float((theirs - ours).abs().max()) < TOL


def test_mixed_ranks_and_rslora_use_rank_and_alpha_patterns(tmp_path):
    model = tiny_llama()
    layers = inject_adapters(
        model, rank=2, target_modules=["q_proj", "v_proj"], alpha=6, rslora=True, parametrization="factors"
    )
    pissa_init(model)  # every layer gets an offset (exported rank 4) ...
    plain = [n for n in layers if n.endswith("v_proj")]
    for name in plain:  # ... except the v_proj layers, which restart as plain LoRA factors (rank 2)
        layers[name].clear_offset()
    with torch.no_grad():
        for layer in layers.values():
            layer.lora_B.normal_(0, 0.1)
    ids = tokens(5)
    ours = logits(model, ids)
    export_peft(model, tmp_path, task_type="CAUSAL_LM")
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["use_rslora"] is True and config["task_type"] == "CAUSAL_LM"
    # 2 layers export rank 4 (offset) and 2 rank 2; the tie goes to the first module seen (q_proj, rank 4)
    assert config["r"] == 4 and config["rank_pattern"] == {name: 2 for name in plain}
    assert set(config["alpha_pattern"]) == set(plain)
    loaded = peft.PeftModel.from_pretrained(tiny_llama(), str(tmp_path)).eval()
    assert isinstance(loaded, peft.PeftModelForCausalLM)
    assert float((logits(loaded, ids) - ours).abs().max()) < TOL


def test_partial_targets_are_written_as_full_paths(tmp_path):
    model = tiny_llama()
    inject_adapters(
        model, rank=2, target_modules=["model.layers.0.self_attn.q_proj"], parametrization="manifold"
    )
    export_peft(model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["target_modules"] == ["model.layers.0.self_attn.q_proj"]  # "q_proj" would also hit layer 1
    ids = tokens(3)
    theirs = logits(peft.PeftModel.from_pretrained(tiny_llama(), str(tmp_path)).eval(), ids)
    assert float((theirs - logits(model, ids)).abs().max()) < TOL


# ------------------------------------------------------------------------------------------------ import
def peft_written_adapter(path, *, dora=False, safe=True, model_kind="llama"):
    """An adapter written by PEFT itself, with nonzero B, rsLoRA and a rank_pattern exception."""
    build, targets = MODELS[model_kind]
    base = build()
    cfg = peft.LoraConfig(
        fan_in_fan_out=model_kind == "gpt2",  # Conv1D stores in×out; saying so keeps PEFT from warning
        r=4,
        lora_alpha=8,
        target_modules=targets,
        use_rslora=not dora,
        use_dora=dora,
        rank_pattern={} if dora else {targets[0]: 2},
        init_lora_weights=False,
    )
    pm = peft.get_peft_model(base, cfg)
    torch.manual_seed(7)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.add_(0.3 * torch.randn_like(p))
    pm.save_pretrained(str(path), safe_serialization=safe)
    return pm.eval()


@pytest.mark.parametrize("parametrization", ["factors", "manifold"])
@pytest.mark.parametrize("safe", [True, False])
def test_import_peft_reproduces_peft_logits(parametrization, safe, tmp_path):
    pm = peft_written_adapter(tmp_path, safe=safe)
    ids = tokens(4)
    expected = logits(pm, ids)
    model = tiny_llama()
    layers = import_peft(model, tmp_path, parametrization=parametrization)
    assert len(layers) == 6 and {layer.rank for layer in layers.values()} == {2, 4}
    assert float((logits(model, ids) - expected).abs().max()) < TOL
    # and back out again: the re-export loads in PEFT with the same function
    export_peft(model, tmp_path / "again")
    again = logits(peft.PeftModel.from_pretrained(tiny_llama(), str(tmp_path / "again")).eval(), ids)
    assert float((again - expected).abs().max()) < TOL


def test_import_peft_dora_and_conv1d(tmp_path):
    pm = peft_written_adapter(tmp_path, dora=True, model_kind="gpt2")
    ids = tokens(6)
    model = tiny_gpt2()
    import_peft(model, tmp_path, parametrization="factors")
    assert float((logits(model, ids) - logits(pm, ids)).abs().max()) < TOL


def test_imported_adapter_continues_on_the_manifold(tmp_path):
    peft_written_adapter(tmp_path)
    model = tiny_llama()
    layers = import_peft(model, tmp_path, parametrization="manifold")
    before = {n: layer.delta_weight() for n, layer in layers.items()}
    from riemannlora import Riemannion

    opt = Riemannion(model, lr=1e-2)
    lm_loss(model, tokens(1)).backward()
    opt.step()
    assert any(float((layer.delta_weight() - before[n]).abs().max()) > 1e-6 for n, layer in layers.items())


def test_import_on_the_manifold_with_a_smaller_rank_keeps_the_best_approximation(tmp_path):
    peft_written_adapter(tmp_path)
    reference = tiny_llama()
    full = import_peft(reference, tmp_path, parametrization="factors")
    model = tiny_llama()
    with pytest.warns(UserWarning, match="best rank-1"):
        layers = import_peft(model, tmp_path, parametrization="manifold", rank=1)
    for name, layer in layers.items():
        assert layer.rank == 1
        u, s, vh = torch.linalg.svd(full[name].delta_weight())
        assert torch.allclose(layer.delta_weight(), s[0] * torch.outer(u[:, 0], vh[0]), atol=1e-5)


def test_import_into_an_injected_model_loads_in_place(tmp_path):
    model = tiny_llama()
    inject_adapters(model, rank=2, target_modules=["q_proj"], alpha=4, parametrization="factors")
    lora_init(model)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            layer.lora_B.normal_()
    export_peft(model, tmp_path)
    other = tiny_llama()
    injected = inject_adapters(other, rank=2, target_modules=["q_proj"], alpha=1, parametrization="factors")
    loaded = import_peft(other, tmp_path, parametrization="factors")
    assert all(loaded[n] is injected[n] for n in injected)
    ids = tokens(2)
    assert float((logits(other, ids) - logits(model, ids)).abs().max()) < TOL
    with pytest.raises(ValueError, match="already a factors adapter of rank 2"):
        import_peft(other, tmp_path, parametrization="manifold")


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        import_peft(tiny_llama(), tmp_path / "missing")
    # a different PEFT method
    ia3 = peft.get_peft_model(tiny_llama(), peft.IA3Config(target_modules=["q_proj"], feedforward_modules=[]))
    ia3.save_pretrained(str(tmp_path / "ia3"))
    with pytest.raises(ValueError, match="unsupported PEFT type 'IA3'"):
        import_peft(tiny_llama(), tmp_path / "ia3")
    # an adapter trained on another base (hidden 48 instead of 32)
    peft_written_adapter(tmp_path / "lora")
    with pytest.raises(ValueError, match="different base model"):
        import_peft(tiny_llama(hidden=48), tmp_path / "lora")
    with pytest.raises(ValueError, match="parametrization must be one of"):
        import_peft(tiny_llama(), tmp_path / "lora", parametrization="euclid")
    # DoRA has no manifold counterpart
    peft_written_adapter(tmp_path / "dora", dora=True)
    with pytest.raises(ValueError, match="parametrization='factors'"):
        import_peft(tiny_llama(), tmp_path / "dora", parametrization="manifold")


def test_export_needs_adapters(tmp_path):
    with pytest.raises(ValueError, match="inject_adapters"):
        export_peft(tiny_llama(), tmp_path)
