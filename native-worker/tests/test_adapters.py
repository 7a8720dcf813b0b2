"""Adapter layers: injection, one-backward memory property, PEFT factors, load_factors, DoRA, dtypes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from riemannlora.adapters import (
    FactorLoRALayer,
    ManifoldLoRALayer,
    adapter_layers,
    inject_adapters,
    owner_of,
)

F64 = torch.float64


def mlp(dtype=F64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 30), nn.Tanh(), nn.Linear(30, 30), nn.Tanh(), nn.Linear(30, 6)).to(
        dtype
    )


def random_factors(layer, seed, r=None):
    g = torch.Generator().manual_seed(seed)
    r = layer.rank if r is None else r
    A = torch.randn(r, layer.in_features, dtype=F64, generator=g)
    B = torch.randn(layer.out_features, r, dtype=F64, generator=g)
    return A, B


# ---------------------------------------------------------------- injection
def test_factor_start_is_exact_and_base_is_frozen():
    net = mlp()
    x = torch.randn(8, 20, dtype=F64)
    ref = net(x)
    layers = inject_adapters(net, 4, ["0", "4"], parametrization="factors", alpha=8)
    assert set(layers) == {"0", "4"} and layers == adapter_layers(net)
    assert torch.equal(net(x), ref)  # lora_B = 0
    assert all(not p.requires_grad for n, p in net.named_parameters() if ".base." in n or n.startswith("2."))
    assert layers["0"].scaling == 2.0
    net(x).sum().backward()
    assert layers["0"].base.weight.grad is None and net[2].weight.grad is None
    assert layers["0"].lora_A.grad is not None


def test_manifold_start_is_a_tiny_rank_r_point():
    net = mlp()
    x = torch.randn(8, 20, dtype=F64)
    ref = net(x)
    layer = inject_adapters(net, 3, ["2"], init_scale=1e-6)["2"]
    s = torch.linalg.svdvals(layer.delta_weight())
    torch.testing.assert_close(s[:3], torch.full((3,), 1e-6, dtype=F64), rtol=1e-9, atol=0)
    assert s[3:].max() < 1e-20
    assert (net(x) - ref).abs().max() < 1e-4
    torch.testing.assert_close(layer.A_L.mT @ layer.A_L, torch.eye(3, dtype=F64), rtol=0, atol=1e-14)
    assert layer.scaling == 1.0 and layer.Z1.abs().max() == 0


def test_forward_equals_dense_delta_for_linear_and_conv1d():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=16)
    torch.manual_seed(0)
    gpt = transformers.GPT2LMHeadModel(cfg).double().eval()
    layers = inject_adapters(gpt, 4, ["c_attn", "mlp.c_proj"])
    assert set(layers) == {"transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj"}
    attn = layers["transformer.h.0.attn.c_attn"]
    assert (attn.in_features, attn.out_features) == (32, 96) and attn.is_conv1d
    assert attn.base_weight().shape == (96, 32)
    assert attn.base_weight().data_ptr() == attn.base.weight.data_ptr()  # a view, no copy
    for i, layer in enumerate(layers.values()):
        layer.load_factors(*random_factors(layer, i), 0.3)
        layer.set_offset(*reversed(random_factors(layer, 10 + i, r=2)))
        x = torch.randn(5, layer.in_features, dtype=F64)
        torch.testing.assert_close(layer(x) - layer.base(x), x @ layer.delta_weight().mT, rtol=0, atol=1e-12)
    ids = torch.randint(0, 50, (2, 7))
    gpt(ids).logits.sum().backward()
    assert all(p.grad is None for n, p in gpt.named_parameters() if not p.requires_grad)


def test_all_linear_skips_lm_head_and_validates_input():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=64,
    )
    llama = transformers.LlamaForCausalLM(cfg)
    layers = inject_adapters(copy.deepcopy(llama), 4, "all-linear")
    assert len(layers) == 7 and not any("lm_head" in n for n in layers)
    with pytest.raises(ValueError, match="matched no.*Available: .*q_proj"):
        inject_adapters(copy.deepcopy(llama), 4, ["nonexistent"])
    with pytest.raises(ValueError, match="rank 40 exceeds"):
        inject_adapters(copy.deepcopy(llama), 40, ["q_proj"])
    with pytest.raises(ValueError, match="parametrization"):
        inject_adapters(copy.deepcopy(llama), 4, ["q_proj"], parametrization="euclid")
    with pytest.raises(ValueError, match="dora"):
        inject_adapters(copy.deepcopy(llama), 4, ["q_proj"], dora=True)
    injected = copy.deepcopy(llama)
    inject_adapters(injected, 4, ["q_proj"])
    with pytest.raises(ValueError, match="already has adapter"):
        inject_adapters(injected, 4, ["v_proj"])


# ---------------------------------------------------------------- the one-backward memory property
class LargeAllocationWatch(TorchDispatchMode):
    """Records every op output with at least ``limit`` elements that does not alias an excluded storage."""

    def __init__(self, limit, exclude):
        super().__init__()
        self.limit, self.exclude, self.hits = limit, {t.untyped_storage().data_ptr() for t in exclude}, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.numel() >= self.limit:
                if t.untyped_storage().data_ptr() not in self.exclude:
                    self.hits.append((str(func), tuple(t.shape)))
        return out


class DenseDeltaLayer(nn.Module):
    """The naive implementation the watch must catch: forms W + A_L Bᵀ (out×in) in every forward."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        W = self.layer.base.weight + self.layer.A_L @ self.layer.B.mT
        return nn.functional.linear(x, W, self.layer.base.bias)


@pytest.mark.parametrize("out_f,in_f", [(64, 48), (96, 40)])
def test_no_out_by_in_tensor_in_forward_and_backward(out_f, in_f):
    torch.manual_seed(0)
    base = nn.Linear(in_f, out_f).double()
    layer = inject_adapters(nn.Sequential(base), 4, ["0"])["0"]
    x = torch.randn(2, 3, in_f, dtype=F64)  # 6 tokens: every activation is far below out×in
    watch = LargeAllocationWatch(min(out_f * in_f, 1000), exclude=[base.weight])
    with watch:
        layer(x).square().sum().backward()
    assert watch.hits == [], watch.hits
    assert base.weight.grad is None and layer.Z1.grad.shape == (out_f, 4) and layer.B.grad.shape == (in_f, 4)
    # the watch does catch the dense formulation (forward add and the out×in gradient in backward)
    layer.zero_grad()
    naive = LargeAllocationWatch(min(out_f * in_f, 1000), exclude=[base.weight])
    with naive:
        DenseDeltaLayer(layer)(x).square().sum().backward()
    assert any(shape == (out_f, in_f) for _, shape in naive.hits)


# ---------------------------------------------------------------- PEFT factors and load_factors
def test_peft_factors_reproduce_delta_weight():
    net = mlp()
    man = inject_adapters(net, 3, ["0"])["0"]
    man.load_factors(*random_factors(man, 0), 0.5)
    fac = inject_adapters(mlp(), 3, ["0"], parametrization="factors", alpha=6, rslora=True)["0"]
    fac.load_factors(*random_factors(fac, 1), 0.7)
    for layer in (man, fac):
        for with_offset in (False, True):
            if with_offset:
                layer.set_offset(*reversed(random_factors(layer, 5, r=2)))
            A, B, alpha, extras = layer.peft_factors()
            assert A.shape[0] == layer.rank + (2 if with_offset else 0) == B.shape[1]
            torch.testing.assert_close(alpha / A.shape[0] * B @ A, layer.delta_weight(), rtol=0, atol=1e-12)
    # manifold export is balanced: lora_B = U Σ^½, lora_A = Σ^½ Vᵀ
    man.clear_offset()
    A, B, _, _ = man.peft_factors()
    torch.testing.assert_close(torch.linalg.norm(A, dim=1), torch.linalg.norm(B, dim=0), rtol=1e-12, atol=0)


def test_load_factors_depends_only_on_the_product():
    layer = inject_adapters(mlp(), 3, ["2"])["2"]
    A, B = random_factors(layer, 3)
    S = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 0.3], [1.0, 0.0, 3.0]], dtype=F64)
    layer.load_factors(A, B, 0.25)
    first = (layer.A_L.clone(), layer.B.detach().clone())
    layer.load_factors(torch.linalg.solve(S, A), B @ S, 0.25)
    torch.testing.assert_close(layer.delta_weight(), 0.25 * B @ A, rtol=0, atol=1e-12)
    torch.testing.assert_close(first[0] @ first[1].mT, layer.A_L @ layer.B.mT, rtol=0, atol=1e-12)
    with pytest.warns(UserWarning, match="rank > 3"):
        layer.load_factors(*random_factors(layer, 4, r=5), 1.0)
    with pytest.warns(UserWarning, match="rank 1 < 3"):
        layer.load_factors(A[:1], B[:, :1], 1.0)
    assert torch.linalg.matrix_rank(layer.B) == 3
    torch.testing.assert_close(layer.delta_weight(), B[:, :1] @ A[:1], rtol=0, atol=1e-5)
    fac = inject_adapters(mlp(), 3, ["2"], parametrization="factors", alpha=6)["2"]
    fac.load_factors(A, B, 0.25)
    torch.testing.assert_close(fac.delta_weight(), 0.25 * B @ A, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="expected lora_A"):
        fac.load_factors(A[:2], B[:, :2], 1.0)


def test_offset_survives_state_dict_round_trip_and_deepcopy():
    net = mlp()
    layer = inject_adapters(net, 3, ["0"])["0"]
    layer.set_offset(*reversed(random_factors(layer, 2, r=3)))
    fresh = mlp()
    inject_adapters(fresh, 3, ["0"])
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh[0].delta_weight(), layer.delta_weight(), rtol=0, atol=0)
    twin = copy.deepcopy(net)
    assert owner_of(twin[0].B) is twin[0] and owner_of(net[0].B) is net[0]


# ---------------------------------------------------------------- DoRA
def test_dora_matches_dense_formula_and_peft():
    peft = pytest.importorskip("peft")
    net = mlp()
    ref_net = copy.deepcopy(net)
    layer = inject_adapters(net, 3, ["2"], parametrization="factors", alpha=6, dora=True)["2"]
    torch.testing.assert_close(
        layer.lora_magnitude, torch.linalg.norm(layer.base.weight, dim=1), rtol=1e-14, atol=0
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(30, 3, dtype=F64, generator=g))
        layer.lora_magnitude.mul_(1 + 0.1 * torch.randn(30, dtype=F64, generator=g))
    W = layer.base.weight
    merged = W + layer.scaling * layer.lora_B @ layer.lora_A
    torch.testing.assert_close(layer.dora_weight_norm(), torch.linalg.norm(merged, dim=1), rtol=1e-12, atol=0)
    x = torch.randn(7, 30, dtype=F64)
    dense = nn.functional.linear(
        x, layer.lora_magnitude[:, None] * merged / torch.linalg.norm(merged, dim=1)[:, None], layer.base.bias
    )
    torch.testing.assert_close(layer(x), dense, rtol=0, atol=1e-12)
    # independent implementation: PEFT's DoRA with the same weights
    cfg = peft.LoraConfig(r=3, lora_alpha=6, target_modules=["2"], use_dora=True, init_lora_weights=True)
    pm = peft.get_peft_model(ref_net, cfg)
    A, B, alpha, extras = layer.peft_factors()
    mod = pm.base_model.model[2]
    with torch.no_grad():
        mod.lora_A["default"].weight.copy_(A)
        mod.lora_B["default"].weight.copy_(B)
        mod.lora_magnitude_vector["default"].weight.copy_(extras["lora_magnitude_vector"])
    xin = torch.randn(7, 20, dtype=F64)
    torch.testing.assert_close(net(xin), pm(xin), rtol=0, atol=1e-12)
    net(xin).sum().backward()
    assert layer.lora_magnitude.grad is not None and layer.lora_B.grad is not None
    assert layer.base.weight.grad is None


# ---------------------------------------------------------------- dtypes
def test_bf16_model_gets_fp32_adapters_and_fp32_grads():
    net = mlp(dtype=torch.bfloat16)
    man = inject_adapters(net, 3, ["0"])["0"]
    fac = inject_adapters(mlp(dtype=torch.bfloat16), 3, ["0"], parametrization="factors")["0"]
    for layer in (man, fac):
        own = {k: t for k, t in layer.state_dict().items() if not k.startswith("base.")}
        assert own and all(t.dtype == torch.float32 for t in own.values())
        assert layer.base.weight.dtype == torch.bfloat16
    assert man.A_L.dtype == man.B.dtype == man.Z1.dtype == man.offset_A.dtype == torch.float32
    assert fac.lora_A.dtype == torch.float32
    x = torch.randn(4, 20, dtype=torch.bfloat16)
    y = net(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert man.B.grad.dtype == torch.float32 and man.Z1.grad.dtype == torch.float32
    assert isinstance(man, ManifoldLoRALayer) and isinstance(fac, FactorLoRALayer)
    assert "rank=3" in repr(man) and "offset_rank=0" in repr(man)


@pytest.mark.parametrize("cast", ["to", "bfloat16", "half"])
def test_half_cast_after_injection_keeps_the_adapter_state(cast):
    """``model.to(torch.bfloat16)`` after ``inject_adapters`` used to cast A_L, B, B_R, Z1 and the offset to
    bf16: A_L lost its orthonormality (measured 8e-4 at 30×3) and the point was rounded to 3 digits
    (docs/method.md §7). Now the base is cast and the adapter state stays bitwise as it was (fp32)."""
    from riemannlora.optim.riemannion import Riemannion

    net = mlp(dtype=torch.float32)
    man = inject_adapters(net, 3, ["0"])["0"]
    # a factor layer (plain LoRA) inside the same model, as a child module
    net[2] = fac = inject_adapters(nn.Sequential(net[2]), 3, ["0"], parametrization="factors")["0"]
    man.set_offset(*reversed([t.float() for t in random_factors(man, 5, r=2)]))
    x, y = torch.randn(8, 20), torch.randn(8, 6)
    ((net(x) - y) ** 2).mean().backward()
    before = {
        k: t.clone() for k, t in net.state_dict().items() if k[:2] in ("0.", "2.") and ".base." not in k
    }
    assert len(before) >= 8
    grads = (man.B.grad.clone(), man.Z1.grad.clone())
    half = torch.bfloat16 if cast != "half" else torch.float16
    {"to": lambda: net.to(torch.bfloat16), "bfloat16": net.bfloat16, "half": net.half}[cast]()
    assert man.base.weight.dtype == fac.base.weight.dtype == net[4].weight.dtype == half
    after = net.state_dict()
    for k, t in before.items():
        assert after[k].dtype == t.dtype and torch.equal(after[k], t), k
    assert torch.equal(man.B.grad, grads[0]) and torch.equal(man.Z1.grad, grads[1])
    assert man.geometry_dtype == torch.float32
    out = net(x.to(half))
    assert out.dtype == half
    opt = Riemannion([man], lr=1e-2)
    ((out.float() - y) ** 2).mean().backward()
    opt.step()
    assert (man.A_L.mT @ man.A_L - torch.eye(3)).abs().max() < 1e-6
    # fp32 <-> fp64 casts do apply to the adapter, and the geometry follows
    net.double()
    assert man.A_L.dtype == man.B.dtype == fac.lora_A.dtype == man.offset_B.dtype == F64
    assert man.geometry_dtype == F64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fp32_import_keeps_small_singular_values_of_a_genuine_rank_r_adapter(seed):
    """A rank-4 adapter with σ = [1, 1e-2, 1e-4, 1e-5] loaded into an fp32 layer used to be read as rank 2
    (cutoff sqrt(eps₃₂)·σ_max = 3.5e-4): its two small directions were replaced by random ones and the
    warning said "rank 2 < 4". The numerical rank now uses matrix_rank's tolerance, computed in fp64."""
    import warnings

    g = torch.Generator().manual_seed(seed)
    m, n = 30, 20
    U = torch.linalg.qr(torch.randn(m, 4, dtype=F64, generator=g)).Q
    V = torch.linalg.qr(torch.randn(n, 4, dtype=F64, generator=g)).Q
    sigma = torch.tensor([1.0, 1e-2, 1e-4, 1e-5], dtype=F64)
    lora_B, lora_A = (U * sigma.sqrt()).float(), (sigma.sqrt()[:, None] * V.mT).float()
    layer = inject_adapters(mlp(dtype=torch.float32, seed=seed), 4, ["0"])["0"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.load_factors(lora_A, lora_B, 1.0)
    target = lora_B.double() @ lora_A.double()
    got = layer.delta_weight().double()
    # every direction kept: the error is fp32 rounding of the largest, not a lost 1e-4 or 1e-5 direction
    assert float((got - target).abs().max()) < 1e-6
    s = torch.linalg.svdvals(got)[:4]
    torch.testing.assert_close(s, sigma, rtol=1e-2, atol=0)
    # a product of lower rank is still padded, and the warning names its true rank
    with pytest.warns(UserWarning, match="rank 2 < 4"):
        layer.load_factors(lora_A[:2], lora_B[:, :2], 1.0)
