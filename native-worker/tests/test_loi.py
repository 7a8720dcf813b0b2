"""LOI through BackPropRSVD (docs/method.md §5) against the dense SVD of G, float64, several seeds."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from riemannlora.adapters import adapter_layers, inject_adapters
from riemannlora.geometry import tangent_dense
from riemannlora.init.loi import default_loi_scale, loi_init

F64 = torch.float64
R = 3


def net_and_data(seed, in_f=20, out_f=30, latent=None, n_batches=2):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(in_f, out_f), nn.Tanh(), nn.Linear(out_f, 5)).double()
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n_batches):
        x = torch.randn(40, in_f, dtype=F64, generator=g)
        if latent is not None:  # inputs in a `latent`-dim subspace: G has rank <= latent
            x = torch.randn(40, latent, dtype=F64, generator=g) @ torch.randn(
                latent, in_f, dtype=F64, generator=g
            )
        data.append((x, torch.randn(40, 5, dtype=F64, generator=g)))
    return net, data


def loss_fn(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def dense_G(net, layer, data):
    """Mean gradient over the batches w.r.t. the ORIGINAL weight W of layer "0" (where training starts)."""
    W = layer.base.weight.detach().clone().requires_grad_(True)
    total = 0
    for x, y in data:
        out = net[2](torch.tanh(nn.functional.linear(x, W, layer.base.bias)))
        total = total + ((out - y) ** 2).mean()
    (G,) = torch.autograd.grad(total / len(data), W)
    return G


def sin_max_angle(Q, basis):
    """sin of the largest principal angle between span(Q) and span(basis) (both orthonormal, same width)."""
    return float(torch.linalg.matrix_norm(Q - basis @ (basis.mT @ Q), ord=2))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("parametrization", ["manifold", "factors"])
@pytest.mark.parametrize("shape", ["exact-sketch", "low-rank-G"])
def test_subspaces_equal_dense_svd_of_G(seed, parametrization, shape):
    if shape == "exact-sketch":  # k = 2r + p >= in: the sketch spans everything
        net, data = net_and_data(seed)
        oversample = 14
    else:  # in = 50 > k = 22, but rank(G) <= 10 < k
        net, data = net_and_data(seed, in_f=50, latent=10)
        oversample = 16
    layer = inject_adapters(net, R, ["0"], parametrization=parametrization)["0"]
    G = dense_G(net, layer, data)
    U, S, Vh = torch.linalg.svd(G)
    assert S[2 * R - 1] / S[2 * R] > 1.01  # a spectral gap, so the subspaces are well defined
    loi_init(net, data, loss_fn, oversample=oversample, power_iters=1, seed=seed)
    X0 = layer.offset_B @ layer.offset_A
    left, _, right_h = torch.linalg.svd(X0)
    assert sin_max_angle(left[:, :R], U[:, :R]) < 1e-6
    assert sin_max_angle(right_h[:R].mT, Vh[R : 2 * R].mT) < 1e-6
    torch.testing.assert_close(
        torch.linalg.svdvals(X0)[:R],
        torch.full((R,), abs(default_loi_scale(R)), dtype=F64),
        rtol=1e-12,
        atol=0,
    )
    torch.testing.assert_close(layer.adapter_weight(), X0, rtol=0, atol=1e-15)  # delta is zero
    if parametrization == "manifold":
        assert sin_max_angle(layer.A_L, U[:, :R]) < 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_first_riemannian_gradient_is_best_rank_2r_approximation(seed):
    net, data = net_and_data(seed)
    layer = inject_adapters(net, R, ["0"])["0"]
    G = dense_G(net, layer, data)
    loi_init(net, data, loss_fn, oversample=14, seed=seed)
    total = sum(loss_fn(net, b) for b in data) / len(data)
    total.backward()
    A_dot = layer.Z1.grad - layer.A_L @ (layer.A_L.mT @ layer.Z1.grad)
    xi = tangent_dense(layer.A_L, layer.B_R, A_dot, layer.B.grad)
    U, S, Vh = torch.linalg.svd(G)
    best = U[:, : 2 * R] * S[: 2 * R] @ Vh[: 2 * R]
    torch.testing.assert_close(xi, best, rtol=0, atol=1e-9 * float(S[0]))


@pytest.mark.parametrize("parametrization", ["manifold", "factors"])
def test_model_function_unchanged_on_tiny_llama(parametrization):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).double().eval()
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    original = model(ids).logits.detach()
    layers = inject_adapters(model, 4, "all-linear", parametrization=parametrization)
    before = model(ids).logits.detach()
    if parametrization == "factors":
        assert torch.equal(before, original)

    def lm_loss(m, batch):
        return m(input_ids=batch, labels=batch).loss

    batches = [ids, ids.flip(1)]
    model.train()
    report = loi_init(model, batches, lm_loss, oversample=4, power_iters=1)
    assert model.training  # restored
    model.eval()
    after = model(ids).logits.detach()
    assert (after - original).abs().max() < 1e-6
    assert (after - before).abs().max() < 1e-4  # the manifold layers' tiny start is replaced, not added
    assert report.backward_passes == 4 and set(report.captured_energy) == set(layers)
    assert all(0 < e < 1.5 for e in report.captured_energy.values())
    for layer in layers.values():
        assert layer.offset_rank == 4 and layer.delta_weight().abs().max() < 1e-15
        A, B, alpha, _ = layer.peft_factors()  # the rank-2r export of X − X₀
        assert A.shape[0] == 8
        torch.testing.assert_close(alpha / 8 * B @ A, layer.delta_weight(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("power_iters", [0, 1, 2])
def test_pass_count_same_batches_and_reduce_hook(power_iters):
    net, data = net_and_data(0)
    inject_adapters(net, R, "all-linear")
    seen = []

    def counting_loss(model, batch):
        seen.append(id(batch))
        return loss_fn(model, batch)

    reduced = []

    def reduce_fn(t):  # a stand-in for all_reduce: in place, exact scaling
        reduced.append(tuple(t.shape))
        t.mul_(2.0)

    twin = copy.deepcopy(net)
    with pytest.warns(UserWarning, match="only 5 right singular vectors"):  # the 30→5 head: in/out < 2r
        report = loi_init(net, data, counting_loss, power_iters=power_iters, reduce_fn=reduce_fn)
    assert report.backward_passes == 2 * (power_iters + 1)
    assert len(seen) == 2 * (power_iters + 1) * len(data)
    assert set(seen) == {id(b) for b in data}  # every pass on the same fixed batches
    assert len(reduced) == 2 * (power_iters + 1) * 2 + 2  # + the energy check G Ω' (one per layer)
    with pytest.warns(UserWarning, match="only 5 right"):
        loi_init(twin, data, loss_fn, power_iters=power_iters)
    for a, b in zip(adapter_layers(net).values(), adapter_layers(twin).values(), strict=True):
        torch.testing.assert_close(a.A_L, b.A_L, rtol=0, atol=1e-12)  # the hook's scaling does not change it


def test_batched_equals_per_layer_and_seed_reproducible():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 5)).double()
    data = [(torch.randn(30, 20, dtype=F64), torch.randn(30, 5, dtype=F64))]
    both = copy.deepcopy(net)
    inject_adapters(both, R, ["0", "2"])  # same shape: one bucket, one batched QR/SVD per stage
    loi_init(both, data, loss_fn, oversample=14)  # k = in: exact, so Ω does not matter
    for which in ("0", "2"):
        alone = copy.deepcopy(net)
        inject_adapters(alone, R, [which])
        loi_init(alone, data, loss_fn, oversample=14)
        a, b = adapter_layers(alone)[which], adapter_layers(both)[which]
        assert sin_max_angle(a.offset_B / a.offset_B.norm(dim=0), b.offset_B / b.offset_B.norm(dim=0)) < 1e-10
        assert sin_max_angle(a.offset_A.mT, b.offset_A.mT) < 1e-10
    # with a small sketch (k = 2r < in) the result depends on Ω: the seed fixes it
    runs = []
    for seed in (3, 3, 4):
        twin = copy.deepcopy(net)
        inject_adapters(twin, R, ["0"])
        loi_init(twin, data, loss_fn, oversample=0, power_iters=0, seed=seed)
        runs.append(adapter_layers(twin)["0"].offset_B)
    assert torch.equal(runs[0], runs[1]) and not torch.allclose(runs[0], runs[2])


def test_bf16_model_keeps_fp32_geometry_and_function():
    net, data = net_and_data(0)
    net = net.to(torch.bfloat16)
    data = [(x.to(torch.bfloat16), y.to(torch.bfloat16)) for x, y in data]
    x = data[0][0]
    original = net(x)
    layers = inject_adapters(net, R, ["0"])
    loi_init(net, data, loss_fn)
    for layer in layers.values():
        assert layer.A_L.dtype == layer.offset_B.dtype == torch.float32
    assert (net(x).float() - original.float()).abs().max() < 1e-2


def test_errors():
    net, data = net_and_data(0)
    with pytest.raises(ValueError, match="inject_adapters"):
        loi_init(net, data, loss_fn)
    inject_adapters(net, R, ["0"])
    with pytest.raises(ValueError, match="batches is empty"):
        loi_init(net, [], loss_fn)
    dora_net, _ = net_and_data(0)
    layers = inject_adapters(dora_net, R, ["0", "2"], parametrization="factors", dora=True)
    with pytest.raises(ValueError, match="DoRA"):
        loi_init(dora_net, data, loss_fn)
    assert all(layer.offset_rank == 0 for layer in layers.values())  # nothing was changed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("in_f,latent", [(50, None), (80, None), (50, 26)])
def test_captured_energy_matches_the_dense_value(seed, in_f, latent):
    """The report's captured energy against ‖P_T G‖²/‖G‖² at the start, with G formed densely. G has rank
    above the sketch size k = 22 here, so part of ‖G‖² lies outside the sketch. The old estimate of ‖G‖²
    (‖GΩ‖²/k from the first sketch) read 0.81–1.39× the true value over 20 seeds of these shapes; the
    exact-inside, estimated-outside one reads within 0.2% (measured), with a standard error that says so."""
    net, data = net_and_data(seed, in_f=in_f, latent=latent)
    layer = inject_adapters(net, R, ["0"])["0"]
    G = dense_G(net, layer, data)
    assert torch.linalg.matrix_rank(G) > 2 * R + 16
    report = loi_init(net, data, loss_fn, oversample=16, power_iters=1, seed=seed)
    U, V = layer.A_L, layer.B_R
    captured = U @ (U.mT @ G) + (G - U @ (U.mT @ G)) @ V @ V.mT  # P_T(G) at the start (docs/method.md §3)
    true = float(captured.square().sum() / G.square().sum())
    assert 0.2 < true < 0.99  # neither trivial nor everything
    energy, stderr = report.captured_energy["0"], report.captured_energy_stderr["0"]
    assert abs(energy / true - 1) < 0.01
    assert 0 < stderr < 0.01 * true and abs(energy - true) < 5 * stderr + 1e-3 * true
