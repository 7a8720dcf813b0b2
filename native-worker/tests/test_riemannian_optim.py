"""Riemannion and RiemannianSGD against a dense float64 reference of docs/method.md §4, plus plumbing."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from riemannlora.adapters import adapter_layers, inject_adapters
from riemannlora.optim.riemannian_sgd import RiemannianSGD
from riemannlora.optim.riemannion import Riemannion

F64 = torch.float64
M, N, R = 30, 20, 3


def make_net(seed, dtype=F64, hidden=M, layers=1):
    torch.manual_seed(seed)
    mods = [nn.Linear(N, hidden)]
    for _ in range(layers - 1):
        mods += [nn.Tanh(), nn.Linear(hidden, hidden)]
    mods += [nn.Tanh(), nn.Linear(hidden, 5)]
    return nn.Sequential(*mods).to(dtype)


def batches(seed, count, dtype=F64, tokens=12):
    g = torch.Generator().manual_seed(1000 + seed)
    return [
        (torch.randn(tokens, N, generator=g).to(dtype), torch.randn(tokens, 5, generator=g).to(dtype))
        for _ in range(count)
    ]


def loss_of(net, batch):
    x, y = batch
    return ((net(x) - y) ** 2).mean()


# ---------------------------------------------------------------- dense reference (m×n matrices everywhere)
def proj(X, Z, r):
    U, _, Vh = torch.linalg.svd(X, full_matrices=False)
    U, V = U[:, :r], Vh[:r].mT
    PU = U @ U.mT
    return PU @ Z + (Z - PU @ Z) @ V @ V.mT


def trunc(Z, r):
    U, S, Vh = torch.linalg.svd(Z, full_matrices=False)
    return U[:, :r] * S[:r] @ Vh[:r]


def polar(Z, rtol=1e-3):
    """Polar factor with OrthoLR's cutoff (docs/method.md §3): weight 1 above rtol·s_max, 0 below half."""
    U, S, Vh = torch.linalg.svd(Z, full_matrices=False)
    w = (S / (0.5 * rtol * S[0]) - 1).clamp(0, 1)
    return (U * w) @ Vh


def dense_grad(net, layer, X, batch):
    """G = ∂L/∂W at W_eff = W + X (X dense), via autograd on a dense leaf."""
    W = (layer.base.weight.detach() + X).requires_grad_(True)
    x, y = batch
    h = nn.functional.linear(x, W, layer.base.bias)
    for mod in list(net)[1:]:
        h = mod(h)
    (G,) = torch.autograd.grad(((h - y) ** 2).mean(), W)
    return G


def dense_run(net, layer, data, kind, lr, beta, wd, store="raw", adam_gamma=0.01):
    X = layer.delta_weight().clone()
    Mom = torch.zeros_like(X)
    S_A = S_B = 0.0
    for t, batch in enumerate(data, start=1):
        G = dense_grad(net, layer, X, batch)
        if kind == "riemannion":
            xi = beta * proj(X, Mom, R) + proj(X, G, R)
            xi_hat = proj(X, polar(xi), R)
            Mom = xi if store == "raw" else xi_hat
            X = trunc((1 - lr * wd) * X - lr * xi_hat, R)
        else:
            # torch.optim.SGD's convention: the first buffer is the undampened gradient
            xi = proj(X, G, R) if t == 1 else beta * proj(X, Mom, R) + (1 - beta) * proj(X, G, R)
            Mom = xi
            step = xi
            if kind == "adam":
                U, _, Vh = torch.linalg.svd(X, full_matrices=False)
                U = U[:, :R]
                part_A = xi - U @ U.mT @ xi  # Ȧ B_Rᵀ
                part_B = U @ U.mT @ xi  # A_L Ḃᵀ
                S_A = adam_gamma * float(torch.linalg.norm(part_A)) + (1 - adam_gamma) * S_A
                S_B = adam_gamma * float(torch.linalg.norm(part_B)) + (1 - adam_gamma) * S_B
                c = 1 - (1 - adam_gamma) ** t
                step = part_A / (S_A / c + 1e-8) + part_B / (S_B / c + 1e-8)
            X = trunc((1 - lr * wd) * X - lr * step, R)
    return X


def well_conditioned(net, seed):
    """Give every manifold layer a start with well-separated singular values (tiny starts make the
    truncation ill-conditioned, which would test rounding, not the algorithm)."""
    g = torch.Generator().manual_seed(seed)
    for layer in adapter_layers(net).values():
        A = torch.randn(R, layer.in_features, dtype=layer.B.dtype, generator=g)
        B = torch.randn(layer.out_features, R, dtype=layer.B.dtype, generator=g)
        layer.load_factors(A, B, 0.1)


def run(net, opt, data, clip=None):
    for batch in data:
        opt.zero_grad()
        loss_of(net, batch).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], clip)
        opt.step()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "kind,store",
    [("riemannion", "raw"), ("riemannion", "orthogonalized"), ("sgd", "raw"), ("adam", "raw")],
)
@pytest.mark.parametrize(
    "hidden,tokens",
    [(M, 12), (5, 12), (M, 1)],
    ids=["structured-basis", "out<2r-plain-qr", "rank-1-gradient"],
)
def test_matches_dense_reference(seed, kind, store, hidden, tokens):
    net = make_net(seed, hidden=hidden)
    layer = inject_adapters(net, R, ["0"])["0"]
    data = batches(seed, 6, tokens=tokens)
    # start from a well-conditioned point so that the reference SVDs are unambiguous
    g = torch.Generator().manual_seed(seed)
    layer.load_factors(
        torch.randn(R, N, dtype=F64, generator=g), torch.randn(hidden, R, dtype=F64, generator=g), 0.1
    )
    lr, beta, wd = (0.05, 0.9, 0.3) if kind == "riemannion" else (0.5, 0.8, 0.3)
    ref = dense_run(copy.deepcopy(net), copy.deepcopy(layer), data, kind, lr, beta, wd, store)
    if kind == "riemannion":
        opt = Riemannion(net, lr=lr, momentum=beta, weight_decay=wd, momentum_store=store)
    else:
        opt = RiemannianSGD(net, lr=lr, momentum=beta, weight_decay=wd, adam_like=kind == "adam")
    start = layer.delta_weight().clone()
    run(net, opt, data)
    torch.testing.assert_close(layer.delta_weight(), ref, rtol=0, atol=1e-11)
    assert (layer.delta_weight() - start).abs().max() > 1e-3  # it moved
    torch.testing.assert_close(layer.A_L.mT @ layer.A_L, torch.eye(R, dtype=F64), rtol=0, atol=1e-13)
    assert layer.Z1.abs().max() == 0


def test_paper_printed_retraction_drops_the_point():
    net = make_net(0)
    layer = inject_adapters(net, R, ["0"])["0"]
    data = batches(0, 1)
    G = dense_grad(net, layer, layer.delta_weight(), data[0])
    X = layer.delta_weight().clone()
    run(net, Riemannion(net, lr=0.05, retraction="paper-printed"), data)
    torch.testing.assert_close(
        layer.delta_weight(), trunc(-0.05 * proj(X, polar(proj(X, G, R)), R), R), rtol=0, atol=1e-12
    )


def test_batched_layers_equal_single_layer_optimizers_and_param_groups():
    net = make_net(3, layers=3)  # layers "2" and "4" are 30×30: one bucket
    data = batches(3, 4)
    layers = inject_adapters(net, R, "all-linear")
    twin = copy.deepcopy(net)
    twin_layers = adapter_layers(twin)
    assert list(layers) == ["0", "2", "4", "6"]
    groups = [
        {"params": [layers["0"].B, layers["0"].Z1, layers["2"].B, layers["2"].Z1], "lr": 0.03},
        {"params": [layers["4"], layers["6"]], "lr": 0.07, "weight_decay": 0.1},
    ]
    opt = Riemannion(groups, lr=0.01, momentum=0.9)
    singles = [
        Riemannion([twin_layers[name]], lr=lr, momentum=0.9, weight_decay=wd)
        for name, lr, wd in [("0", 0.03, 0.0), ("2", 0.03, 0.0), ("4", 0.07, 0.1), ("6", 0.07, 0.1)]
    ]
    for batch in data:
        for o in [opt, *singles]:
            o.zero_grad()
        loss_of(net, batch).backward()
        loss_of(twin, batch).backward()
        opt.step()
        for o in singles:
            o.step()
    for name in layers:
        torch.testing.assert_close(
            layers[name].delta_weight(), twin_layers[name].delta_weight(), rtol=0, atol=1e-13
        )


@pytest.mark.parametrize("opt_cls", [Riemannion, RiemannianSGD])
def test_state_dict_continuation_is_bitwise_identical(opt_cls):
    kw = {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01}
    if opt_cls is RiemannianSGD:
        kw["adam_like"] = True
    data = batches(4, 6, dtype=torch.float32)

    def build(seed):
        net = make_net(4, dtype=torch.float32, layers=3)  # two 30×30 layers: one bucket
        torch.manual_seed(seed)  # different random adapter start: the checkpoint must restore everything
        inject_adapters(net, R, "all-linear")
        return net

    net = build(0)
    opt = opt_cls(net, **kw)
    run(net, opt, data[:3])
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    run(net, opt, data[3:])

    buf.seek(0)
    saved = torch.load(buf)
    net2 = build(1)
    net2.load_state_dict(saved["model"])
    opt2 = opt_cls(net2, **kw)
    opt2.load_state_dict(saved["opt"])
    run(net2, opt2, data[3:])
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_lr_scheduler_matches_manual_lr():
    data = batches(5, 5)
    nets = [make_net(5) for _ in range(2)]
    for net in nets:
        torch.manual_seed(9)
        inject_adapters(net, R, "all-linear")
    opt_a = Riemannion(nets[0], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt_a, lambda step: 0.5**step)
    opt_b = Riemannion(nets[1], lr=0.1)
    for i, batch in enumerate(data):
        assert opt_a.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**i)
        for group in opt_b.param_groups:
            group["lr"] = 0.1 * 0.5**i
        for net, opt in zip(nets, (opt_a, opt_b), strict=True):
            opt.zero_grad()
            loss_of(net, batch).backward()
            opt.step()
        sched.step()
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_clipping_only_rescales_the_gradient():
    data = batches(6, 1)
    # RiemannianSGD without momentum: clipping by c equals a learning rate scaled by c (torch clips by
    # max_norm / (total + 1e-6))
    nets = [make_net(6) for _ in range(2)]
    for net in nets:
        inject_adapters(net, R, "all-linear")
        well_conditioned(net, 2)
    opt = RiemannianSGD(nets[0], lr=0.5, momentum=0.0)
    nets[0].zero_grad()
    loss_of(nets[0], data[0]).backward()
    params = [p for p in nets[0].parameters() if p.requires_grad]
    total = float(torch.nn.utils.clip_grad_norm_(params, 1e-3))
    opt.step()
    run(nets[1], RiemannianSGD(nets[1], lr=0.5 * 1e-3 / (total + 1e-6), momentum=0.0), data)
    for a, b in zip(adapter_layers(nets[0]).values(), adapter_layers(nets[1]).values(), strict=True):
        torch.testing.assert_close(a.delta_weight(), b.delta_weight(), rtol=0, atol=1e-12)
    # Riemannion's first step is invariant to the clipping (orthogonalization removes the scale)
    nets = [make_net(6) for _ in range(2)]
    for net in nets:
        inject_adapters(net, R, "all-linear")
        well_conditioned(net, 2)
    run(nets[0], Riemannion(nets[0], lr=0.05), data, clip=1e-3)
    run(nets[1], Riemannion(nets[1], lr=0.05), data)
    for a, b in zip(adapter_layers(nets[0]).values(), adapter_layers(nets[1]).values(), strict=True):
        torch.testing.assert_close(a.delta_weight(), b.delta_weight(), rtol=0, atol=1e-12)


def test_zero_b_start_and_unused_layers_do_not_crash():
    net = make_net(7, layers=2)
    layers = inject_adapters(net, R, "all-linear")
    with pytest.warns(UserWarning, match="rank 0"):
        layers["0"].load_factors(torch.zeros(R, N, dtype=F64), torch.zeros(M, R, dtype=F64), 1.0)
    assert torch.linalg.matrix_rank(layers["0"].B) == R
    opt = Riemannion(net, lr=0.01)
    data = batches(7, 2)
    run(net, opt, data)
    # a layer without gradient (not in the loss) stays put up to weight decay, no NaN
    extra = nn.Sequential(nn.Linear(N, M)).double()
    spare = inject_adapters(extra, R, ["0"])["0"]
    before = spare.delta_weight().clone()
    opt2 = RiemannianSGD([spare], lr=0.1)
    opt2.step()
    torch.testing.assert_close(spare.delta_weight(), before, rtol=0, atol=1e-15)
    for layer in layers.values():
        assert torch.isfinite(layer.B).all()


def test_bf16_model_keeps_fp32_geometry():
    net = make_net(8, dtype=torch.bfloat16, layers=2)
    layers = inject_adapters(net, R, "all-linear")
    opt = Riemannion(net, lr=0.01)
    run(net, opt, batches(8, 3, dtype=torch.bfloat16))
    for layer in layers.values():
        assert layer.A_L.dtype == layer.B.dtype == layer.B_R.dtype == torch.float32
        assert opt.state[layer.B]["momentum_A"].dtype == torch.float32
        torch.testing.assert_close(layer.A_L.mT @ layer.A_L, torch.eye(R), rtol=0, atol=1e-5)
    assert net(batches(8, 1, dtype=torch.bfloat16)[0][0]).dtype == torch.bfloat16


def test_bad_input_errors():
    net = make_net(9)
    with pytest.raises(ValueError, match="no ManifoldLoRALayer"):
        Riemannion(net)
    inject_adapters(net, R, ["0"])
    with pytest.raises(ValueError, match="does not belong"):
        Riemannion([net[2].weight])
    with pytest.raises(ValueError, match="momentum_store"):
        Riemannion(net, momentum_store="ortho")
    with pytest.raises(ValueError, match="lr"):
        RiemannianSGD(net, lr=-1.0)


def test_fp32_point_stays_orthonormal_over_many_steps():
    """A_L and B_R must not drift (docs/method.md §7): the structured step inherits the old A_L's rounding,
    so it hands over to the re-orthonormalizing plain-QR path when the drift exceeds 64 ulp."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 512), nn.Tanh(), nn.Linear(512, 64))
    layer = inject_adapters(net, 16, ["0"])["0"]
    opt = Riemannion(net, lr=1e-2)
    x, y = torch.randn(64, 256), torch.randn(64, 64)
    eye = torch.eye(16)
    worst = 0.0
    for _ in range(400):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
        worst = max(worst, float((layer.A_L.mT @ layer.A_L - eye).abs().max()))
        worst = max(worst, float((layer.B_R.mT @ layer.B_R - eye).abs().max()))
    assert worst < 2e-5  # without the check the drift passes 8e-5 by step 400


def test_point_moved_outside_the_optimizer_resets_its_momentum():
    data = batches(11, 3)
    nets = [make_net(11) for _ in range(2)]
    for net in nets:
        inject_adapters(net, R, ["0"])
        well_conditioned(net, 11)
    opt = Riemannion(nets[0], lr=0.05)
    run(nets[0], opt, data[:2])
    g = torch.Generator().manual_seed(5)
    A, B = torch.randn(R, N, dtype=F64, generator=g), torch.randn(M, R, dtype=F64, generator=g)
    for net in nets:
        net[0].load_factors(A, B, 0.2)
    with pytest.warns(UserWarning, match="momentum is reset"):
        run(nets[0], opt, data[2:])
    run(nets[1], Riemannion(nets[1], lr=0.05), data[2:])  # a fresh optimizer from the same point
    torch.testing.assert_close(nets[0][0].delta_weight(), nets[1][0].delta_weight(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fp32_and_fp64_runs_take_the_same_steps_on_rank_deficient_gradients(seed):
    """OrthoLR's cutoff is the same in every dtype (docs/method.md §3): with one token per batch the
    gradients have rank 1 and the momentum's core has singular values far below the largest; the old
    dtype-dependent cutoff (sqrt(eps): 3.5e-4 in fp32, 1.5e-8 in fp64) stepped along some of them in fp64
    only, and the trajectories parted by 3.6–9.0% of the displacement within 10 steps. They must agree to
    fp32 rounding (measured 2e-5)."""
    tokens = 1
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(48, 64), nn.Tanh(), nn.Linear(64, 5)).double()
    layer = inject_adapters(net, 4, ["0"])["0"]
    g = torch.Generator().manual_seed(seed)
    layer.load_factors(
        torch.randn(4, 48, dtype=F64, generator=g), torch.randn(64, 4, dtype=F64, generator=g), 0.1
    )
    start = layer.delta_weight().clone()
    net32 = copy.deepcopy(net).float()
    assert adapter_layers(net32)["0"].A_L.dtype == torch.float32
    data = [
        (torch.randn(tokens, 48, generator=g, dtype=F64), torch.randn(tokens, 5, generator=g, dtype=F64))
        for _ in range(10)
    ]
    ends = []
    for model, dtype in ((net, F64), (net32, torch.float32)):
        opt = Riemannion(model, lr=0.05)
        run(model, opt, [(x.to(dtype), y.to(dtype)) for x, y in data])
        ends.append(adapter_layers(model)["0"].delta_weight().double())
    moved = float((ends[0] - start).norm())
    assert moved > 0.1
    assert float((ends[0] - ends[1]).norm()) / moved < 1e-4


def test_riemannian_sgd_first_step_is_undampened_like_torch_sgd():
    """LoRA-SGD is torch SGD with dampening = momentum, whose first buffer is the raw gradient: its first
    step equals a momentum-free step. RiemannianSGD must do the same (it used to start its EMA from zero,
    a first step 1 − β = 10× shorter), so that the two share a learning-rate scale from step 1."""
    data = batches(12, 1)
    nets = [make_net(12) for _ in range(2)]
    for net in nets:
        inject_adapters(net, R, ["0"])
        well_conditioned(net, 12)
    start = nets[0][0].delta_weight().clone()
    run(nets[0], RiemannianSGD(nets[0], lr=0.5, momentum=0.9), data)
    run(nets[1], RiemannianSGD(nets[1], lr=0.5, momentum=0.0), data)
    assert (nets[0][0].delta_weight() - start).abs().max() > 1e-3
    torch.testing.assert_close(nets[0][0].delta_weight(), nets[1][0].delta_weight(), rtol=0, atol=1e-13)
    # the same holds for torch SGD on a plain tensor, the convention being matched
    w = [torch.zeros(3, requires_grad=True) for _ in range(2)]
    for p, beta in zip(w, (0.9, 0.0), strict=True):
        p.grad = torch.ones(3)
        torch.optim.SGD([p], lr=0.5, momentum=beta, dampening=beta).step()
    assert torch.equal(w[0], w[1])


def test_paper_printed_retraction_refuses_weight_decay():
    """The printed line retracts −η ξ̂ without the point, so a weight decay had nothing to act on and was
    silently ignored (two runs with γ = 0 and γ = 0.5 took identical steps): it is refused instead, at
    construction and when a group is edited later."""
    net = make_net(13)
    inject_adapters(net, R, ["0"])
    with pytest.raises(ValueError, match="weight_decay must be 0 with retraction='paper-printed'"):
        Riemannion(net, lr=0.05, weight_decay=0.5, retraction="paper-printed")
    opt = Riemannion(net, lr=0.05, retraction="paper-printed")
    run(net, opt, batches(13, 1))
    opt.param_groups[0]["weight_decay"] = 0.1
    with pytest.raises(ValueError, match="contains-point"):
        run(net, opt, batches(13, 1))


@pytest.mark.parametrize("opt_cls", [Riemannion, RiemannianSGD])
def test_model_state_loaded_without_the_optimizer_resets_the_momentum(opt_cls):
    """``model.load_state_dict`` alone used to go unnoticed: momentum stored at the point of step 4 was
    applied at the restored point of step 2 (docs/method.md §4). Now the optimizer sees that the point is
    not the one its momentum belongs to, warns and restarts that momentum; restoring model and optimizer
    together, in either order, continues exactly and silently."""
    import warnings

    data = batches(14, 6)

    def trained(steps):
        net = make_net(14)
        inject_adapters(net, R, ["0"])
        well_conditioned(net, 14)
        opt = opt_cls(net, lr=0.05, momentum=0.9)
        run(net, opt, data[:steps])
        return net, opt

    net, opt = trained(2)
    saved = copy.deepcopy({"model": net.state_dict(), "opt": opt.state_dict()})
    run(net, opt, data[2:4])
    net.load_state_dict(saved["model"])
    with pytest.warns(UserWarning, match="momentum is reset"):
        run(net, opt, data[4:5])
    fresh_net, _ = trained(0)
    fresh_net.load_state_dict(saved["model"])
    run(fresh_net, opt_cls(fresh_net, lr=0.05, momentum=0.9), data[4:5])  # no momentum: a first step
    torch.testing.assert_close(net[0].delta_weight(), fresh_net[0].delta_weight(), rtol=0, atol=1e-13)

    reference, ref_opt = trained(2)
    run(reference, ref_opt, data[2:3])
    for order in ("model first", "optimizer first"):
        net, opt = trained(4)  # the same optimizer object, rewound to step 2
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if order == "model first":
                net.load_state_dict(saved["model"])
                opt.load_state_dict(copy.deepcopy(saved["opt"]))
            else:
                opt.load_state_dict(copy.deepcopy(saved["opt"]))
                net.load_state_dict(saved["model"])
            run(net, opt, data[2:3])
        assert torch.equal(net[0].delta_weight(), reference[0].delta_weight()), order

    # an optimizer state from another point (here: step 4's, loaded at step 2's point) is noticed too
    net, opt = trained(2)
    _, later = trained(4)
    opt.load_state_dict(copy.deepcopy(later.state_dict()))
    with pytest.warns(UserWarning, match="momentum is reset"):
        run(net, opt, data[2:3])
