"""Training: stacked (bmm) MLP training equals per-model training, padding is exact, SGD matches closed forms."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lmcnb import models as M
from lmcnb import train as T

F64 = torch.float64


def _blobs(n: int, d: int, k: int, seed: int, dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` Gaussian blobs with centres 4·e_j (linearly separable with margin): x ``(n, d)``, y ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = 0.5 * torch.randn(n, d, generator=g, dtype=dtype) + 4.0 * torch.eye(k, d, dtype=dtype)[y]
    return x, y


def _max_rel(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """max over parameters of ‖a − b‖_∞ / ‖b‖_∞."""
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(((p - q).abs().max() / q.abs().max()).item() for p, q in pairs)


# ------------------------------------------------------------------------------------- batched == sequential
CASES = {
    "warmup_cosine_ce": dict(epochs=3, schedule="warmup_cosine", warmup=0.2, weight_decay=1e-3),
    "cosine_nesterov_ce": dict(epochs=3, schedule="cosine", nesterov=True, weight_decay=5e-3),
    "steps_drop_last_ce": dict(steps=7, drop_last=True, momentum=0.5),
    "constant_mse": dict(epochs=3, loss="mse"),
}


@pytest.mark.parametrize("case", CASES)
def test_batched_equals_sequential_float64(case: str) -> None:
    kw = CASES[case]
    out = 1 if kw.get("loss") == "mse" else 3
    x, labels = _blobs(50, 6, 3, seed=1)
    y = labels.to(F64) - 1.0 if out == 1 else labels
    cfg = T.TrainConfig(batch_size=16, lr=0.05, **kw)
    models = T.init_mlps((6, 10, 7, out), 3, [11, 12, 13], dtype=F64)
    seeds = [5, 6, 7]
    trained, hist = T.train_mlps(models, x, y, cfg, seeds)
    steps = cfg.total_steps(50)
    assert hist.lr.shape == (steps,) and hist.loss.shape == (math.ceil(steps / cfg.steps_per_epoch(50)), 3)
    for b in range(3):
        alone, h = T.train_classifier(models[b], x, y, cfg, seed=seeds[b])
        assert _max_rel(trained[b], alone) < 1e-10, b
        assert torch.allclose(h.loss, hist.loss[:, b], rtol=1e-10, atol=0), b
        assert _max_rel(alone, models[b]) > 1e-3  # the models did move


def test_batched_equals_sequential_float32() -> None:
    x, y = _blobs(120, 8, 4, seed=2, dtype=torch.float32)
    cfg = T.TrainConfig(epochs=3, batch_size=32, lr=0.05, weight_decay=1e-3, schedule="cosine")
    models = T.init_mlps((8, 32, 4), 4, [0, 1, 2, 3])
    trained, _ = T.train_mlps(models, x, y, cfg)  # default seeds: config.seed + b
    for b in range(4):
        alone, _ = T.train_classifier(models[b], x, y, cfg, seed=cfg.seed + b)
        assert _max_rel(trained[b], alone) < 1e-5, b


# ------------------------------------------------------------------------------------- per-model lr / wd sweeps
SWEEPS = {
    "warmup_cosine_nesterov_ce": dict(epochs=3, schedule="warmup_cosine", warmup=0.2, nesterov=True),
    "cosine_ce_padded": dict(epochs=2, schedule="cosine", momentum=0.5),
    "constant_steps_mse": dict(steps=8, loss="mse", momentum=0.0),
}


@pytest.mark.parametrize("case", SWEEPS)
def test_per_model_lrs_and_weight_decays_equal_sequential_float64(case: str) -> None:
    """A 3 lrs × 2 seeds sweep (with mixed weight decays) in one stack equals training each model alone with
    ``train_classifier`` under ``replace(config, lr=lrs[b], weight_decay=wds[b])``."""
    kw = SWEEPS[case]
    out = 1 if kw.get("loss") == "mse" else 3
    x, labels = _blobs(50, 6, 3, seed=3)
    y = labels.to(F64) - 1.0 if out == 1 else labels
    cfg = T.TrainConfig(batch_size=16, lr=0.05, weight_decay=1e-3, **kw)
    widths = [(6, 10, 7, out), (6, 8, 9, out)] * 3 if "padded" in case else (6, 10, 7, out)
    models = T.init_mlps(widths, 6, [11, 11, 11, 12, 12, 12], dtype=F64)
    lrs = [0.01, 0.05, 0.2, 0.01, 0.05, 0.2]
    wds = [0.0, 1e-3, 1e-2, 5e-3, 0.0, 1e-3]
    seeds = [5, 5, 5, 6, 6, 6]
    trained, hist = T.train_mlps(models, x, y, cfg, seeds, pad="padded" in case, lrs=lrs, weight_decays=wds)
    steps = cfg.total_steps(50)
    assert hist.lr.shape == (steps, 6) and hist.lr.dtype == F64
    assert hist.loss.shape == (math.ceil(steps / cfg.steps_per_epoch(50)), 6)
    for b in range(6):
        own = dataclasses.replace(cfg, lr=lrs[b], weight_decay=wds[b])
        alone, h = T.train_classifier(models[b], x, y, own, seed=seeds[b])
        assert torch.equal(hist.lr[:, b], h.lr), b  # the very same schedule floats
        assert _max_rel(trained[b], alone) < 1e-10, b
        assert torch.allclose(h.loss, hist.loss[:, b], rtol=1e-10, atol=0), b
    assert _max_rel(trained[0], trained[2]) > 1e-3  # same init and data order, different lr: they differ


def test_per_model_lrs_float32_and_uniform_override_matches_config() -> None:
    x, y = _blobs(120, 8, 4, seed=2, dtype=torch.float32)
    cfg = T.TrainConfig(epochs=2, batch_size=32, lr=0.05, weight_decay=1e-3, schedule="cosine")
    models = T.init_mlps((8, 32, 4), 4, [0, 1, 2, 3])
    lrs, wds = [0.02, 0.05, 0.1, 0.3], [1e-3, 0.0, 1e-2, 1e-3]
    trained, _ = T.train_mlps(models, x, y, cfg, lrs=lrs, weight_decays=wds)
    for b in range(4):
        own = dataclasses.replace(cfg, lr=lrs[b], weight_decay=wds[b])
        alone, _ = T.train_classifier(models[b], x, y, own, seed=cfg.seed + b)
        assert _max_rel(trained[b], alone) < 1e-5, b
    # overriding with the config's own values (NumPy array, NumPy scalars) gives the uniform run
    uniform, hist_u = T.train_mlps(models, x, y, cfg)
    same, hist_s = T.train_mlps(models, x, y, cfg, lrs=np.full(4, cfg.lr),
                                weight_decays=[np.float64(1e-3)] * 4)
    for a, b in zip(uniform, same, strict=True):
        assert _max_rel(a, b) < 1e-6
    assert hist_u.lr.shape == (hist_s.lr.shape[0],) and torch.equal(hist_s.lr, hist_u.lr[:, None].expand(-1, 4))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lrs=[0.1]), ValueError, r"lrs must have one entry per model \(B=2\), got 1"),
    (dict(lrs=[0.1, 0.2, 0.3]), ValueError, "lrs must have one entry"),
    (dict(lrs=0.1), TypeError, "lrs must be None or a sequence"),
    (dict(lrs=True), TypeError, "lrs must be None or a sequence"),
    (dict(lrs="ab"), TypeError, "lrs must be None or a sequence"),
    (dict(lrs=torch.tensor([0.1, 0.2])), TypeError, "lrs must be None or a sequence"),
    (dict(lrs=[0.1, float("nan")]), ValueError, r"lrs\[1\] must be finite and > 0"),
    (dict(lrs=[float("inf"), 0.1]), ValueError, r"lrs\[0\] must be finite"),
    (dict(lrs=[0.1, 0.0]), ValueError, r"lrs\[1\]"),
    (dict(lrs=[-0.1, 0.1]), ValueError, r"lrs\[0\]"),
    (dict(lrs=[True, 0.1]), TypeError, r"lrs\[0\] must be a real number, got bool"),
    (dict(lrs=[0.1, "0.1"]), TypeError, r"lrs\[1\] must be a real number"),
    (dict(weight_decays=[0.0]), ValueError, r"weight_decays must have one entry per model \(B=2\)"),
    (dict(weight_decays=1e-3), TypeError, "weight_decays must be None or a sequence"),
    (dict(weight_decays=[0.0, -1e-4]), ValueError, r"weight_decays\[1\] must be finite and >= 0"),
    (dict(weight_decays=[float("nan"), 0.0]), ValueError, r"weight_decays\[0\]"),
    (dict(weight_decays=[0.0, float("inf")]), ValueError, r"weight_decays\[1\]"),
    (dict(weight_decays=[False, 0.0]), TypeError, r"weight_decays\[0\] must be a real number, got bool"),
    (dict(weight_decays=np.array([True, False])), TypeError, r"weight_decays\[0\] must be a real number"),
])
def test_bad_per_model_lrs_and_weight_decays(kwargs: dict, error: type, match: str) -> None:
    models = T.init_mlps((4, 5, 3), 2, [0, 1])
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    cfg = T.TrainConfig(epochs=1, batch_size=4)
    with pytest.raises(error, match=match):
        T.train_mlps(models, x, y, cfg, **kwargs)
    with pytest.raises(error, match=match):
        T.train_stacked(T.stack_mlps(models), x, y, cfg, **kwargs)


def test_models_differ_only_through_their_own_seed() -> None:
    """Same init, different data-order seeds ⇒ different models; same seed ⇒ identical (global RNG unused)."""
    x, y = _blobs(40, 4, 2, seed=3)
    cfg = T.TrainConfig(epochs=2, batch_size=8, lr=0.1)
    model = T.init_mlps((4, 5, 2), 1, [0], dtype=F64)[0]
    torch.manual_seed(0)
    a, _ = T.train_mlps([model, model, model], x, y, cfg, [1, 2, 1])
    torch.manual_seed(123)
    b, _ = T.train_mlps([model], x, y, cfg, [2])
    assert _max_rel(a[0], a[2]) == 0 and _max_rel(a[1], b[0]) == 0
    assert _max_rel(a[0], a[1]) > 1e-3


# ------------------------------------------------------------------------------------- padding
PAD_WIDTHS = [(5, 8, 6, 3), (5, 12, 4, 3), (5, 3, 6, 3)]


def test_stack_forward_equals_models_and_roundtrip() -> None:
    models = T.init_mlps(PAD_WIDTHS, 3, [1, 2, 3], dtype=F64)
    stacked = T.stack_mlps(models, pad=True)
    assert stacked.padded_widths == (5, 12, 6, 3) and stacked.weights[1].shape == (3, 6, 12)
    x = torch.randn(3, 9, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = stacked(x)
    shared = stacked(x[0])
    for b, m in enumerate(models):
        assert torch.allclose(out[b], m(x[b]), rtol=1e-13, atol=1e-14)
        assert torch.allclose(shared[b], m(x[0]), rtol=1e-13, atol=1e-14)
    for m, back in zip(models, T.unstack(stacked), strict=True):
        assert back.widths == m.widths and _max_rel(back, m) == 0


def test_padded_training_equals_unpadded() -> None:
    x, y = _blobs(60, 5, 3, seed=4)
    cfg = T.TrainConfig(epochs=3, batch_size=16, lr=0.05, weight_decay=1e-2, nesterov=True,
                        schedule="warmup_cosine", warmup=0.1)
    models = T.init_mlps(PAD_WIDTHS, 3, [1, 2, 3], dtype=F64)
    stacked, _ = T.train_stacked(T.stack_mlps(models, pad=True), x, y, cfg, [7, 8, 9])
    for p, mask in zip(stacked.param_list(), stacked.mask_list(), strict=True):
        assert mask is not None and bool((p[mask == 0] == 0).all())  # padding stays exactly zero
        assert bool((p[mask == 1] != 0).all())  # real entries trained (and non-zero)
    for b, trained in enumerate(T.unstack(stacked)):
        alone, _ = T.train_classifier(models[b], x, y, cfg, seed=7 + b)
        assert _max_rel(trained, alone) < 1e-10, b


def test_masks_mark_real_entries_and_block_padded_gradients() -> None:
    """ReLU already gives padded units zero gradient; the masks are the guarantee, so test them directly."""
    stacked = T.stack_mlps(T.init_mlps(PAD_WIDTHS, 3, [1, 2, 3], dtype=F64), pad=True)
    params, masks = stacked.param_list(), stacked.mask_list()
    for k in range(stacked.depth):
        real = [w[k + 1] * w[k] for w in stacked.widths]
        assert masks[k].sum(dim=(1, 2)).tolist() == real
        assert masks[stacked.depth + k].sum(1).tolist() == [w[k + 1] for w in stacked.widths]
    grads = [torch.ones_like(p) for p in params]
    before = [p.detach().clone() for p in params]
    cfg = T.TrainConfig(epochs=1, lr=0.1, weight_decay=0.1)
    bufs = [None] * len(params)
    for _ in range(2):
        T._sgd_update(params, [g.clone() for g in grads], masks, bufs, 0.1, cfg)
    for p, p0, mask in zip(params, before, masks, strict=True):
        assert bool((p[mask == 0] == 0).all()) and bool((p[mask == 1] != p0[mask == 1]).all())
    unmasked = [p0.clone() for p0 in before]
    T._sgd_update(unmasked, [g.clone() for g in grads], [None] * len(params), [None] * len(params), 0.1, cfg)
    assert all(bool(p[mask == 0].ne(0).all()) for p, mask in zip(unmasked, masks))  # unmasked: padding moves


def test_two_layer_regression_students_padded() -> None:
    """One-hidden-layer students d→m→1 with MSE on float (n,) targets, m ∈ {4, 16, 64} in one padded stack."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(256, 8, generator=g)
    y = torch.relu(x[:, :3]).sum(1)  # a width-3 teacher
    cfg = T.TrainConfig(epochs=20, batch_size=32, lr=0.02, loss="mse", schedule="cosine")
    models = T.init_mlps([(8, 4, 1), (8, 16, 1), (8, 64, 1)], 3, [0, 1, 2])
    trained, hist = T.train_mlps(models, x, y, cfg, pad=True)
    assert hist.loss.shape == (20, 3)
    assert bool((hist.loss[-1] < 0.1 * hist.loss[0]).all()), hist.loss[[0, -1]]
    for b, m in enumerate(trained):
        final = torch.nn.functional.mse_loss(m(x).squeeze(1), y).item()
        assert final < 0.1 * hist.loss[0, b].item()


# ------------------------------------------------------------------------------------- learning
def test_loss_decreases_on_separable_data() -> None:
    x, y = _blobs(200, 10, 4, seed=6, dtype=torch.float32)
    cfg = T.TrainConfig(epochs=5, batch_size=20, lr=0.05, schedule="cosine")
    trained, hist = T.train_mlps(T.init_mlps((10, 32, 4), 3, [0, 1, 2]), x, y, cfg)
    assert bool((hist.loss[-1] < 0.1 * hist.loss[0]).all()), hist.loss
    for m in trained:
        assert (m(x).argmax(1) == y).float().mean().item() == 1.0
    model, h = T.train_classifier(M.MLP(10, [32], 4), x, y, cfg, seed=0)
    assert h.loss[-1] < 0.1 * h.loss[0] and (model(x).argmax(1) == y).all()


def test_train_classifier_cnn_batchnorm() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(12, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (12,), generator=g)
    cfg = T.TrainConfig(epochs=1, batch_size=6, lr=0.01)
    torch.manual_seed(0)
    model = M.VGG11(0.0625)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, hist = T.train_classifier(model, x, y, cfg, seed=1)
    b, _ = T.train_classifier(model, x, y, cfg, seed=1)
    c, _ = T.train_classifier(model, x, y, cfg, seed=2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input not modified
    assert model.training and not a.training  # returned in eval mode
    assert hist.loss.shape == (1,) and math.isfinite(hist.loss.item())
    assert _max_rel(a, b) == 0 and _max_rel(a, c) > 0
    bn = a.features[1]
    assert isinstance(bn, torch.nn.BatchNorm2d) and int(bn.num_batches_tracked) == 2
    assert not torch.equal(bn.running_mean, before["features.1.running_mean"])


# ------------------------------------------------------------------------------------- closed forms
def test_schedule_values() -> None:
    cos = T.TrainConfig(epochs=1, lr=0.2, schedule="cosine")
    assert cos.lr_at(0, 100) == pytest.approx(0.2) and cos.lr_at(50, 100) == pytest.approx(0.1)
    assert cos.lr_at(100, 100) == pytest.approx(0.0, abs=1e-15)
    assert cos.lr_at(25, 100) == pytest.approx(0.1 * (1 + math.sqrt(0.5)))
    warm = T.TrainConfig(epochs=1, lr=0.2, schedule="warmup_cosine", warmup=0.1)
    assert [warm.lr_at(t, 100) for t in (0, 4, 9, 10)] == pytest.approx([0.02, 0.1, 0.2, 0.2])
    assert warm.lr_at(55, 100) == pytest.approx(0.1) and warm.lr_at(100, 100) == pytest.approx(0, abs=1e-15)
    assert T.TrainConfig(epochs=1, lr=0.2).lr_at(99, 100) == 0.2
    x, y = _blobs(30, 3, 2, seed=0)
    cfg = T.TrainConfig(epochs=2, batch_size=10, lr=0.2, schedule="cosine")
    _, hist = T.train_mlps(T.init_mlps((3, 4, 2), 1, [0], dtype=F64), x, y, cfg)
    expected = [0.1 * (1 + math.cos(math.pi * t / 6)) for t in range(6)]
    assert hist.lr.tolist() == pytest.approx(expected, rel=1e-12)


def _zero_data_models() -> tuple[list[M.MLP], torch.Tensor, torch.Tensor]:
    """Bias-free MLPs on x = 0, y = 0 with MSE: every gradient of the loss is exactly zero."""
    models = T.init_mlps((4, 6, 2), 2, [0, 1], bias=False, dtype=F64)
    return models, torch.zeros(10, 4, dtype=F64), torch.zeros(10, 2, dtype=F64)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_weight_decay_closed_form(momentum: float) -> None:
    """Zero gradients: one step shrinks by (1 − η·wd); three steps follow the scalar momentum recurrence."""
    models, x, y = _zero_data_models()
    lr, wd = 0.1, 0.5
    for steps in (1, 3):
        cfg = T.TrainConfig(steps=steps, batch_size=5, lr=lr, momentum=momentum, weight_decay=wd, loss="mse")
        factor, velocity = 1.0, 0.0  # θ_t = factor · θ_0, v_t = velocity · θ_0
        for t in range(steps):
            velocity = wd * factor if t == 0 else momentum * velocity + wd * factor
            factor -= lr * velocity
        if steps == 1:
            assert factor == pytest.approx(1 - lr * wd)
        batched, _ = T.train_mlps(models, x, y, cfg)
        alone, _ = T.train_classifier(models[1], x, y, cfg)
        for trained, init in ((batched[0], models[0]), (batched[1], models[1]), (alone, models[1])):
            for p, p0 in zip(trained.parameters(), init.parameters(), strict=True):
                assert torch.allclose(p, factor * p0, rtol=1e-14, atol=0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_on_quadratic(nesterov: bool) -> None:
    """Linear model, full-batch MSE: L(θ) = mean((X̃θ − y)²), ∇L = (2/n) X̃ᵀ(X̃θ − y), two momentum steps."""
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(12, 3, generator=g, dtype=F64), torch.randn(12, generator=g, dtype=F64)
    model = T.init_mlps((3, 1), 1, [4], dtype=F64)[0]
    lr, mu, wd = 0.1, 0.9, 0.01
    xt = torch.cat([x, torch.ones(12, 1, dtype=F64)], 1)
    theta = torch.cat([model.layers[0].weight[0], model.layers[0].bias]).detach()
    grad = lambda th: 2 / 12 * xt.T @ (xt @ th - y) + wd * th  # noqa: E731
    g0 = grad(theta)
    th1 = theta - lr * ((1 + mu) * g0 if nesterov else g0)
    g1 = grad(th1)
    buf = mu * g0 + g1
    th2 = th1 - lr * (g1 + mu * buf if nesterov else buf)
    cfg = T.TrainConfig(epochs=2, batch_size=12, lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov,
                        loss="mse")
    batched, _ = T.train_mlps([model], x, y, cfg)
    alone, _ = T.train_classifier(model, x, y, cfg)
    for m in (batched[0], alone):
        got = torch.cat([m.layers[0].weight[0], m.layers[0].bias]).detach()
        assert torch.allclose(got, th2, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(th2, theta - 2 * lr * g0, rtol=1e-3)  # momentum matters here


# ------------------------------------------------------------------------------------- init and cost
def test_init_mlps_reproducible_and_distributed() -> None:
    state = torch.random.get_rng_state()
    a = T.init_mlps((300, 400, 5), 2, [3, 4])
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    torch.manual_seed(99)
    b = T.init_mlps([(300, 200, 5), (300, 400, 5)], 2, [9, 4])
    assert _max_rel(a[1], b[1]) == 0 and b[0].widths == (300, 200, 5)
    assert _max_rel(a[0], a[1]) > 0.1
    w = a[0].layers[0].weight
    assert w.abs().max() <= 1 / math.sqrt(300) and w.var().item() == pytest.approx(1 / 900, rel=0.02)
    assert a[0].layers[0].bias.abs().max() <= 1 / math.sqrt(300) and a[0].layers[0].bias.std() > 0
    for init, std in (("kaiming_uniform", math.sqrt(2 / 300)), ("kaiming_normal", math.sqrt(2 / 300)),
                      ("lecun_normal", math.sqrt(1 / 300))):
        m = T.init_mlps((300, 400, 5), 1, [0], init=init, dtype=F64)[0]
        assert m.layers[0].weight.std().item() == pytest.approx(std, rel=0.02), init
        assert bool((m.layers[0].bias == 0).all()) and m.layers[0].weight.dtype == F64
    lecun = T.init_mlps((300, 400, 5), 1, [0], init="lecun_normal")[0].layers[0].weight
    assert lecun.abs().max() <= 2 / math.sqrt(300) / 0.87962566103423978 + 1e-7


def test_mlp_from_state_and_state_inputs() -> None:
    models = T.init_mlps((4, 6, 5, 3), 2, [0, 1], dtype=F64)
    rebuilt = T.mlp_from_state(models[0].state_dict())
    assert rebuilt.widths == (4, 6, 5, 3) and _max_rel(rebuilt, models[0]) == 0
    x, y = _blobs(20, 4, 3, seed=0)
    cfg = T.TrainConfig(epochs=1, batch_size=10, lr=0.1)
    from_states, _ = T.train_mlps([m.state_dict() for m in models], x, y, cfg)
    from_models, _ = T.train_mlps(models, x, y, cfg)
    assert all(_max_rel(a, b) == 0 for a, b in zip(from_states, from_models, strict=True))
    with pytest.raises(ValueError, match="not an MLP state"):
        T.mlp_from_state({"fc1.weight": torch.zeros(2, 2)})


def test_flops_per_step() -> None:
    stacked = T.stack_mlps(T.init_mlps([(64, 16, 1), (64, 512, 1)], 2, [0, 1]), pad=True)
    assert T.flops_per_step(stacked, 64) == 3 * 2 * 64 * 2 * (64 * 512 + 512)
    assert T.flops_per_step(stacked, 64, useful=True) == 3 * 2 * 64 * (64 * 16 + 16 + 64 * 512 + 512)


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(), ValueError, "exactly one of epochs and steps"),
    (dict(epochs=1, steps=3), ValueError, "exactly one"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=1.0), TypeError, "epochs"),
    (dict(epochs=1, batch_size=0), ValueError, "batch_size"),
    (dict(epochs=1, batch_size=True), TypeError, "batch_size"),
    (dict(epochs=1, lr=float("nan")), ValueError, "lr"),
    (dict(epochs=1, lr=float("inf")), ValueError, "lr"),
    (dict(epochs=1, lr=0.0), ValueError, "lr"),
    (dict(epochs=1, lr="0.1"), TypeError, "lr"),
    (dict(epochs=1, momentum=1.0), ValueError, "momentum"),
    (dict(epochs=1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (dict(epochs=1, schedule="linear"), ValueError, "schedule"),
    (dict(epochs=1, warmup=0.1), ValueError, "warmup"),
    (dict(epochs=1, schedule="warmup_cosine", warmup=1.0), ValueError, "warmup"),
    (dict(epochs=1, nesterov=True, momentum=0.0), ValueError, "nesterov"),
    (dict(epochs=1, loss="hinge"), ValueError, "loss"),
    (dict(epochs=1, seed=-1), ValueError, "seed"),
    (dict(epochs=1, drop_last=1), TypeError, "drop_last"),
])
def test_bad_config(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        T.TrainConfig(**kwargs)


def test_bad_data_and_models() -> None:
    models = T.init_mlps((4, 5, 3), 2, [0, 1])
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    cfg = T.TrainConfig(epochs=1, batch_size=4)
    both = (lambda xx, yy, c=cfg: T.train_mlps(models, xx, yy, c),  # noqa: E731
            lambda xx, yy, c=cfg: T.train_classifier(models[0], xx, yy, c))
    for train in both:
        with pytest.raises(ValueError, match="non-empty"):
            train(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
        with pytest.raises(ValueError, match="out of range"):
            train(x, torch.full((10,), 3))
        with pytest.raises(ValueError, match=">= 0"):
            train(x, torch.full((10,), -1))
        with pytest.raises(TypeError, match="int64"):
            train(x, y.float())
        with pytest.raises(TypeError, match="int64"):
            train(x, y.int())
        with pytest.raises(TypeError, match="dtype"):
            train(x.double(), y)
        with pytest.raises(ValueError, match="n=10 rows"):
            train(x, y[:9])
        with pytest.raises(ValueError, match="NaN or inf"):
            train(x.clone().index_fill_(0, torch.tensor([3]), float("nan")), y)
        with pytest.raises(ValueError, match="leaves no minibatch"):
            train(x, y, T.TrainConfig(epochs=1, batch_size=11, drop_last=True))
        with pytest.raises(TypeError, match="config"):
            train(x, y, {"epochs": 1})
    mse = T.TrainConfig(epochs=1, batch_size=4, loss="mse")
    with pytest.raises(ValueError, match="values per sample"):
        T.train_mlps(models, x, torch.randn(10), mse)
    with pytest.raises(ValueError, match="do not match"):
        T.train_classifier(models[0], x, torch.randn(10), mse)
    with pytest.raises(TypeError, match="dtype"):
        T.train_mlps(models, x, torch.randn(10, 3, dtype=F64), mse)
    with pytest.raises(ValueError, match="features per sample"):
        T.train_mlps(models, torch.randn(10, 5), y, cfg)
    with pytest.raises(ValueError, match="seeds"):
        T.train_mlps(models, x, y, cfg, seeds=[1])
    with pytest.raises(ValueError, match="pass pad=True"):
        T.stack_mlps(T.init_mlps([(4, 5, 3), (4, 6, 3)], 2, [0, 1]))
    with pytest.raises(ValueError, match="same depth"):
        T.stack_mlps(T.init_mlps([(4, 5, 3), (4, 5, 5, 3)], 2, [0, 1]), pad=True)
    with pytest.raises(ValueError, match="in/out features"):
        T.stack_mlps(T.init_mlps([(4, 5, 3), (4, 5, 2)], 2, [0, 1]), pad=True)
    with pytest.raises(ValueError, match="dtype/device/bias"):
        T.stack_mlps([models[0], models[1].double()])
    with pytest.raises(TypeError, match="MLP"):
        T.stack_mlps([models[0], M.TwoLayerNet(4, 5)])
    with pytest.raises(TypeError, match="non-empty sequence"):
        T.stack_mlps([])
    broken = T.init_mlps((4, 5, 3), 1, [0])[0]
    with torch.no_grad():
        broken.layers[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        T.stack_mlps([broken])
    with pytest.raises(ValueError, match="non-finite"):
        T.train_classifier(broken, x, y, cfg)
    with pytest.raises(ValueError, match="seeds"):
        T.init_mlps((4, 5, 3), 2, [0])


def test_unstack_rejects_nonzero_padding_and_forward_checks() -> None:
    stacked = T.stack_mlps(T.init_mlps([(4, 5, 3), (4, 7, 3)], 2, [0, 1]), pad=True)
    with pytest.raises(ValueError, match=r"\(B=2, n, 4\)"):
        stacked(torch.randn(3, 6, 4))
    with pytest.raises(TypeError, match="float32"):
        stacked(torch.randn(6, 4, dtype=F64))
    with torch.no_grad():
        stacked.weights[0][0, 6, 1] = 1.0  # model 0 has 5 real hidden units
    with pytest.raises(ValueError, match="padded entries"):
        T.unstack(stacked)


def test_bad_widths() -> None:
    with pytest.raises(TypeError, match="widths"):
        T.init_mlps(4, 1, [0])
    with pytest.raises(TypeError, match=r"widths\[1\]"):
        T.StackedMLP([(4, 5, 3), 7])
    with pytest.raises(ValueError, match=r"widths\[0\]\[1\]"):
        T.init_mlps((4, 0, 3), 1, [0])
    with pytest.raises(ValueError, match="2 architectures for B=3"):
        T.init_mlps([(4, 5, 3), (4, 6, 3)], 3, [0, 1, 2])
