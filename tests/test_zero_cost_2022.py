"""The zero-cost proxies since 2022 (nasflow.estimators.zero_cost_2022) against independent computations on tiny
networks: numpy linear algebra, gradients by hand, batches whose activation patterns are constructed."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from nasflow.cli import main
from nasflow.errors import ParamsError
from nasflow.estimators import registry
from nasflow.estimators import zero_cost as zc
from nasflow.estimators import zero_cost_2022 as z22
from nasflow.models import nb201 as nb201_net

INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NO_PATH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
PER_ARCH = [n for n in z22.PROXIES_2022 if n not in z22.AGGREGATES]


def _data(n=8, size=8, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def _nb201(arch=INDEX0, seed=0, channels=8):
    torch.manual_seed(seed)
    return nb201_net.build_network(arch, channels=channels, depth=1, num_classes=10)


def _linear(d=12, k=3, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k))


def _ce_weight_grad(W, b, x, y):
    """dL/dW of the mean cross-entropy of a linear softmax classifier, by hand (numpy)."""
    z = x @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p.T @ x / len(y)


# --------------------------------------------------------------------------------------------- MeCo

def test_meco_is_the_min_eigenvalue_of_the_channel_correlation_per_module_call():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    model = nn.Sequential(conv)  # two module calls (the conv, the Sequential) return the same map: counted twice
    x, _ = _data(n=4)
    fea = conv(x)[0].detach().double().numpy().reshape(5, -1)
    expected = 2 * np.linalg.eigvalsh(np.corrcoef(fea))[0]
    assert z22.meco(model, x) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_meco_opt_with_eight_channels_samples_them_all():
    # 8 channels: MeCo_opt's 8 sampled channels are all of them, in some order, and C / 8 = 1: the same as meco
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    x, _ = _data(n=2)
    assert z22.meco_opt(model, x, seed=3) == pytest.approx(z22.meco(model, x), rel=1e-9)


def test_meco_opt_on_fewer_than_eight_channels_fails_in_one_line():
    with pytest.raises(ParamsError, match="meco_opt: a module outputs 4 channels"):
        z22.meco_opt(_nb201(channels=4), _data()[0])


# --------------------------------------------------------------------------------------------- ZiCo

def test_zico_against_gradients_by_hand():
    model = _linear()
    x, y = _data(n=6, size=2, classes=3)
    x = x[:, :3]  # 3 x 2 x 2 = 12 inputs
    W, b = (p.detach().double().numpy() for p in model[1].parameters())
    flat = x.reshape(6, -1).double().numpy()
    grads = np.stack([_ce_weight_grad(W, b, flat[s], y.numpy()[s]).ravel() for s in (slice(0, 3), slice(3, 6))])
    std, mean_abs = grads.std(0), np.abs(grads).mean(0)
    keep = std != 0
    expected = math.log(np.sum(mean_abs[keep] / std[keep]))
    assert z22.zico(model, x, y) == pytest.approx(expected, rel=1e-6)


def test_zico_needs_two_mini_batches():
    x, y = _data(n=1)
    with pytest.raises(ParamsError, match="zico: needs at least 2 mini-batches"):
        z22.zico(_nb201(), x, y)


# --------------------------------------------------------------------------------------------- SWAP, LR

def _relu_only_batch():
    """3 samples, 1 channel, 2 x 2 pixels: the 4 neurons' patterns over the samples are (1,0,1), (1,0,1),
    (0,0,0), (1,1,1): 3 distinct ones; the samples' codes (1,1,0,1), (0,0,0,1), (1,1,0,1): 2 distinct ones."""
    on = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    x = torch.stack([on, torch.tensor([[-1.0, -1.0], [-1.0, 2.0]]), 2 * on]).reshape(3, 1, 2, 2)
    return x


def test_swap_counts_distinct_neuron_patterns_of_a_constructed_batch():
    model = nn.Sequential(nn.ReLU())  # no weights: SWAP's re-initialisation changes nothing
    assert z22.swap(model, _relu_only_batch()) == 3.0
    assert z22._distinct_rows(_relu_only_batch().reshape(3, -1) > 0) == 2  # the samples' codes (TE-NAS's LR)


def test_swap_reg_is_swap_times_the_parameter_regulariser():
    model, x = _nb201(), _data(n=16)[0]
    p_k = sum(p.numel() for p in model.parameters()) / 1e3
    got = z22.swap_reg(model, x, seed=1, mu=50.0, sigma=400.0)
    assert got == pytest.approx(z22.swap(_nb201(), x, seed=1) * math.exp(-((p_k - 50.0) ** 2) / 400.0), rel=1e-12)


def test_te_nas_lr_inputs_are_one_channel_crops_of_the_batch():
    n, c, h, w = 4, 3, 8, 8
    batch = torch.arange(n * c * h * w, dtype=torch.float64).reshape(n, c, h, w)  # each pixel names its place
    chunks = z22.te_nas_lr_inputs(batch, seed=2, samples=50, batches=3, side=3)
    assert [tuple(x.shape) for x in chunks] == [(50, 1, 3, 3)] * 3
    crops = torch.cat(chunks)[:, 0].numpy()
    corner = crops[:, 0, 0].astype(int)  # the top-left pixel's value decodes (image, channel, row, column)
    row, col = corner // w % h, corner % w
    assert (row <= h - 3).all() and (col <= w - 3).all()
    expected = corner[:, None, None] + np.arange(3)[None, :, None] * w + np.arange(3)[None, None, :]
    assert (crops == expected).all()
    assert len(set(corner // (h * w))) > 1  # several images and channels drawn
    assert torch.equal(torch.cat(z22.te_nas_lr_inputs(batch, seed=2, samples=50, batches=3, side=3)), torch.cat(chunks))


def test_te_nas_lr_counts_the_distinct_codes_of_the_crops_batch_by_batch():
    """Thin network = the head alone: its only ReLU is BN -> ReLU on the one-channel crop, so a crop's code is
    `pixel > mean of its batch of crops` (training-mode BN with weight 1, bias 0), counted over all batches."""
    from nasflow.models.ops import ThinNetwork

    x = _data(n=16, size=8)[0]
    model = ThinNetwork(nn.Identity(), 1, 10)
    got = z22.te_nas_lr(model, x, seed=3, samples=40, batches=3, side=2)
    codes = [(b.numpy().reshape(len(b), -1) > b.numpy().mean())
             for b in z22.te_nas_lr_inputs(x, 3, samples=40, batches=3, side=2)]
    assert got == len(np.unique(np.concatenate(codes), axis=0))
    assert 2 < got <= 16  # 4 pixels: at most 16 codes


def test_te_nas_lr_needs_the_thin_network():
    x = _data()[0]
    with pytest.raises(ParamsError, match="te_nas_lr: counts the linear regions of the arch's thin network"):
        z22.te_nas_lr(_nb201(), x)
    with pytest.raises(ParamsError, match="te_nas_lr: scores its own network for the arch .the space's thin_network"):
        zc.score(lambda: _nb201(), x, None, proxies=["te_nas_lr"])


def test_thin_networks_follow_te_nas_in_each_space():
    """TE-NAS's thin networks (prune_tenas.py model_config_thin): NB201 the arch's cell at one channel, DARTS a
    normal and a reduction cell (1 and 2 channels), MobileNet every block at one channel; one-channel input."""
    from nasflow.models.mobilenet import MBConv
    from nasflow.models.mobilenet import build_network as mobilenet_network
    from nasflow.registry import network_module
    from nasflow.spaces import darts, mobilenet

    nb = network_module("nb201").thin_network(ALL_CONV, num_classes=10)
    assert [type(m).__name__ for m in nb.body.edges] == ["ReLUConvBN"] * 6
    relus = [m for m in nb.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 7 and nb.classifier.in_features == 1  # six conv edges and the head
    da = network_module("darts").thin_network(darts.DARTS_V2, num_classes=10)
    assert [(c.reduction, c.preprocess1[1].out_channels) for c in da.body.cells] == [(False, 1), (True, 2)]
    assert da.classifier.in_features == 8
    arch = mobilenet.sample(1, 3)[0]
    mb, full = network_module("mobilenet").thin_network(arch, num_classes=10), mobilenet_network(arch, num_classes=10)
    assert len(mb.body) == len(full.blocks) == 21
    for thin, block in zip(mb.body, full.blocks):
        assert type(thin) is type(block)
        if isinstance(block, MBConv):
            assert (thin.kernel, thin.expansion, thin.stride, thin.use_residual, thin.inp) == (
                block.kernel, block.expansion, block.stride, block.use_residual, 1)
    for net in (nb, da, mb):
        assert net(torch.randn(5, 1, 3, 3)).shape == (5, 10)
    # the NTK's networks (prune_tenas.py model_config): NB201's skeleton at C=3, N=1; DARTS's thin one with a stem
    ntk = network_module("nb201").ntk_network(ALL_CONV, num_classes=10)
    assert (ntk.C, ntk.N, len(ntk.infer_cells())) == (3, 1, 3)
    ntk = network_module("darts").ntk_network(darts.DARTS_V2, num_classes=10)
    assert ntk.body[0][0].in_channels == 3 and ntk.body[0][0].out_channels == 1 and len(ntk.body[1].cells) == 2
    ntk = network_module("mobilenet").ntk_network(arch, num_classes=10)
    assert ntk.width == 0.2 and min(b.oup for b in ntk.layout.blocks) == 8


def test_relu_free_network_fails_in_one_line():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Tanh())
    with pytest.raises(ParamsError, match="swap: the network has no nn.ReLU"):
        z22.swap(model, _data()[0])


# --------------------------------------------------------------------------------------------- AZ-NAS

def test_az_expressivity_terms_are_eigenvalue_entropies():
    f = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    z = f.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    z = z - z.mean(0)
    s = np.linalg.eigvalsh(z.T @ z / len(z))
    p = s / s.sum()
    assert z22._expressivity_terms([f])[0] == pytest.approx(float(-(p * np.log(p + 1e-8)).sum()), rel=1e-10)


def test_az_trainability_of_a_scaled_map_and_of_an_identity():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = 2.0 * x  # g_in = 2 g_out: s = the top singular value of 2 g_out^T g_out / (B H W)
    g = torch.Generator().manual_seed(7)
    g_out = ((torch.bernoulli(torch.full_like(y, 0.5), generator=g) - 0.5) * 2).permute(0, 2, 3, 1).reshape(-1, 3)
    s = np.linalg.svd(2.0 * g_out.double().numpy().T @ g_out.double().numpy() / 32, compute_uv=False).max()
    assert z22._trainability([x, y], seed=7) == pytest.approx(-s - 1 / (s + 1e-6) + 2, rel=1e-10)
    assert z22._trainability([x, x], seed=7) == -math.inf  # an identity cell


def test_az_proxies_on_nb201_equal_one_by_one_and_complexity_is_flops():
    x, _ = _data()
    found, seconds = z22.az_proxies(_nb201(ALL_CONV), x, z22.AZ, seed=4)
    for name in z22.AZ:
        assert found[name] == getattr(z22, name)(_nb201(ALL_CONV), x, seed=4), name
        assert seconds[name] > 0
    assert found["az_complexity"] == zc.flops(_nb201(ALL_CONV), x)


def test_az_proxies_forward_gaussian_noise_not_the_batch():
    # AZ-NAS scores on random inputs (NB201/tss_general.ipynb: az_nas is not a real-input metric, so
    # compute_nas_score draws torch.randn shaped like the batch): only the batch's shape may matter
    x, _ = _data()
    other = 5.0 * torch.rand_like(x) + 3.0  # same shape, other content
    names = ("az_expressivity", "az_progressivity", "az_trainability")
    a = z22.az_proxies(_nb201(ALL_CONV), x, names, seed=4)[0]
    b = z22.az_proxies(_nb201(ALL_CONV), other, names, seed=4)[0]
    assert a == b
    assert z22.az_expressivity(_nb201(ALL_CONV), other, seed=4) == a["az_expressivity"]
    real = z22.az_proxies(_nb201(ALL_CONV), other, names, seed=4, real_input=True)[0]
    assert real["az_expressivity"] != a["az_expressivity"]  # the comparison mode does read the images


# --------------------------------------------------------------------------------------------- TE-NAS NTK

def test_te_nas_ntk_is_minus_the_condition_number_of_x_xt():
    model = _linear(d=12, k=3)
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    flat = x.reshape(5, -1).double().numpy()
    eig = np.linalg.eigvalsh(3 * flat @ flat.T)  # d(sum of logits)/dW = ones(k) x^T: NTK = k x_i . x_j
    assert z22.te_nas_ntk(model, x) == pytest.approx(-eig[-1] / eig[0], rel=1e-6)
    # 5 images, 2 features: rank 2, a singular NTK, an infinite condition number (never a finite, or positive, one)
    assert z22.te_nas_ntk(_linear(d=2, k=3), x[:, :1, :1, :2]) == -math.inf


# --------------------------------------------------------------------------------------------- NASLib's

def test_epe_nas_score_by_hand():
    rng = np.random.default_rng(0)
    jac, labels = rng.normal(size=(6, 5)), np.array([0, 1, 0, 2, 1, 0])
    expected = 0.0
    for c in (0, 1, 2):
        rows = jac[labels == c]
        corr = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
        expected += abs(np.sum(np.log(np.abs(corr) + 1e-5)))
    assert z22.epe_nas_score(jac, labels, 10) == pytest.approx(expected, rel=1e-12)


def test_l2_norm_and_plain_against_numpy():
    model = _linear()
    x, y = _data(n=4, size=2, classes=3)
    x = x[:, :3]
    W, b = (p.detach().double().numpy() for p in model[1].parameters())
    assert z22.l2_norm(model) == pytest.approx(np.linalg.norm(W), rel=1e-12)
    grad = _ce_weight_grad(W, b, x.reshape(4, -1).double().numpy(), y.numpy())
    assert zc.plain(model, x, y) == pytest.approx(float(np.sum(W * grad)), rel=1e-5)


# --------------------------------------------------------------------------------------------- shared passes

@pytest.mark.parametrize("arch", [INDEX0, ALL_CONV, NO_PATH])
def test_shared_forward_equals_one_by_one(arch):
    x, _ = _data()
    found, seconds = z22.forward_proxies(_nb201(arch), x, z22.FORWARD, seed=2)
    assert found["meco"] == z22.meco(_nb201(arch), x)
    assert found["meco_opt"] == z22.meco_opt(_nb201(arch), x, seed=2)
    assert found["naswot"] == zc.naswot(_nb201(arch), x)  # the 2021 naswot, bit for bit
    assert all(s > 0 for s in seconds.values())


def test_plain_shares_the_loss_gradient_pass():
    x, y = _data()
    found, _ = zc.loss_gradient_proxies(_nb201(ALL_CONV), x, y, ["grad_norm", "plain"])
    assert found["plain"] == zc.plain(_nb201(ALL_CONV), x, y)
    assert found["grad_norm"] == zc.grad_norm(_nb201(ALL_CONV), x, y)


# --------------------------------------------------------------------------------------------- score, spaces

def test_score_is_order_independent_and_deterministic():
    x, y = _data(n=8)

    def factory():
        return nb201_net.build_network(ALL_CONV, channels=8, depth=1, num_classes=10)

    own = {"te_nas_lr": lambda: nb201_net.thin_network(ALL_CONV, num_classes=10),
           "te_nas_ntk": lambda: nb201_net.ntk_network(ALL_CONV, num_classes=10)}
    a = zc.score(factory, x, y, proxies=PER_ARCH, seed=3, own_networks=own)
    b = zc.score(factory, x, y, proxies=list(reversed(PER_ARCH)), seed=3, own_networks=own)
    assert {n: a[n] for n in PER_ARCH} == {n: b[n] for n in PER_ARCH}
    assert list(a)[:len(PER_ARCH)] == PER_ARCH and all(a[f"{n}_seconds"] > 0 for n in PER_ARCH)
    c = zc.score(factory, x, y, proxies=["swap", "te_nas_lr", "meco_opt", "az_trainability"], seed=4,
                 own_networks=own)
    assert any(c[n] != a[n] for n in ("swap", "te_nas_lr", "meco_opt", "az_trainability"))  # the seed matters


def test_score_refuses_a_population_aggregate():
    x, y = _data()
    with pytest.raises(ParamsError, match="az_nas: a population aggregate"):
        zc.score(lambda: _nb201(), x, y, proxies=["az_nas"])


@pytest.mark.parametrize("space, arch, depth, size", [
    ("darts", "DARTS_V2", 2, 8),
    ("mobilenet", None, None, 32),
])
def test_every_new_proxy_scores_darts_and_mobilenet(space, arch, depth, size):
    from nasflow.registry import get_space

    sp = get_space(space)
    if arch == "DARTS_V2":
        from nasflow.spaces import darts
        arch = darts.DARTS_V2
    archs = [arch] if arch else sp.sample(1, 0)
    x, y = _data(n=8, size=size)  # small: te_nas_ntk runs one backward pass per image
    rows = zc.score_archs(archs, space=space, channels=8, depth=depth, num_classes=10, batch=x, labels=y,
                          proxies=list(z22.PROXIES_2022), seed=0)
    for row in rows:
        assert all(math.isfinite(row[n]) for n in z22.PROXIES_2022), row


def test_score_archs_adds_the_aggregates_over_the_archs_scored():
    x, y = _data(n=8)
    archs = [INDEX0, ALL_CONV, "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"]
    rows = zc.score_archs(archs, space="nb201", channels=8, depth=1, num_classes=10, batch=x, labels=y,
                          proxies=["az_nas", "te_nas", "meco"], seed=0)
    assert list(rows[0]) == ["arch", "az_nas", "te_nas", "meco", "az_nas_seconds", "te_nas_seconds", "meco_seconds"]
    members = zc.score_archs(archs, space="nb201", channels=8, depth=1, num_classes=10, batch=x, labels=y,
                             proxies=list(z22.AZ) + ["te_nas_ntk", "te_nas_lr"], seed=0)
    log_ranks = sum(np.log(stats.rankdata([r[m] for r in members]) / 3) for m in z22.AZ)
    assert [r["az_nas"] for r in rows] == pytest.approx(list(log_ranks), rel=1e-12)
    rank_sum = stats.rankdata([r["te_nas_ntk"] for r in members]) + stats.rankdata([r["te_nas_lr"] for r in members])
    assert [r["te_nas"] for r in rows] == list(rank_sum)
    hand = [{**{m: float(i) for m in z22.AZ}, **{f"{m}_seconds": 0.5 * i for m in z22.AZ}} for i in (1, 2)]
    assert z22.aggregate("az_nas", hand)[1] == [2.0, 4.0]  # an arch's cost: the sum of its members'


# --------------------------------------------------------------------------------------------- log_rank ensemble

def test_log_rank_ensemble_by_hand():
    a, b = [3.0, 1.0, 2.0, 2.0], [0.1, 0.4, 0.3, float("nan")]
    # ranks among the 4 archs, NaN lowest (as vote_scores): a -> 4, 1, 2.5, 2.5; b -> 2, 4, 3, 1
    got = registry.log_rank_scores([a, b])
    expected = [math.log(4 / 4) + math.log(2 / 4), math.log(1 / 4) + math.log(4 / 4), math.log(2.5 / 4) + math.log(3 / 4)]
    assert got[:3] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(got[3])  # a member without a score: no score (a diverged training), as in a vote
    lowest = registry.log_rank_scores([a, b], nan_ranks_lowest=True)  # a zero-cost NaN: the worst, still scored
    assert lowest == pytest.approx(expected + [math.log(2.5 / 4) + math.log(1 / 4)], rel=1e-12)
    assert registry.ensemble_scores("log_rank", [a, b])[:3] == got[:3]
    assert registry.ensemble_scores("vote", [a, b])[:3] == registry.vote_scores([a, b])[:3]


def test_ensemble_specs_parse_both_forms_and_reject_bad_ones():
    specs = registry.ensemble_specs({"vote": ["a", "b"], "az": {"kind": "log_rank", "members": ["a", "b", "c"]}})
    assert specs == {"vote": ("vote", ["a", "b"]), "az": ("log_rank", ["a", "b", "c"])}
    assert registry.family_of("az") == "ensemble"
    with pytest.raises(ParamsError, match="unknown kind 'median'"):
        registry.ensemble_specs({"x": {"kind": "median", "members": ["a", "b"]}})
    with pytest.raises(ParamsError, match="two or more different members"):
        registry.ensemble_specs({"x": {"kind": "log_rank", "members": ["a"]}})


def test_new_proxies_are_registered_zero_cost_estimators():
    for name in z22.PROXIES_2022:
        assert registry.get(name).family == "zero-cost"


# --------------------------------------------------------------------------------------------- CLI

def test_cli_scores_new_proxies_and_aggregates(capsys):
    assert main(["proxies", "--arch", INDEX0, "--arch", ALL_CONV, "--data", "digits", "--channels", "8", "--depth",
                 "1", "--batch-size", "8", "--proxies", "meco,zico,te_nas", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) >= {"meco", "zico", "te_nas", "te_nas_seconds"} for r in rows] == [True, True]
    assert sum(r["te_nas"] for r in rows) == 6.0  # two members' ranks among two archs: (1 + 2) * 2


def test_cli_network_a_proxy_cannot_handle_exit_2_one_line(capsys):
    assert main(["proxies", "--arch", INDEX0, "--data", "digits", "--channels", "4", "--depth", "1",
                 "--batch-size", "8", "--proxies", "meco_opt", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasflow: error: meco_opt: a module outputs 4 channels") and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- dedup

def test_representatives_keep_the_first_cell_of_each_isomorphism_class():
    from nasflow.spaces import nb201

    a = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    a_swapped = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"  # the same string
    # node 2 does not reach the output: its op cannot matter
    b = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    b_dead = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    # skip-then-conv == conv straight from the input; the two sums in another edge order
    c = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    c_direct = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"
    zero, zero_too = NO_PATH, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    archs = [a, b, a_swapped, b_dead, c, zero, c_direct, zero_too, ALL_CONV]
    assert nb201.representatives(archs) == [0, 1, 4, 5, 8]


def test_meco_reads_each_output_before_a_later_in_place_op():
    # BN then ReLU(inplace=True), as NB201's head: MeCo's hook reduces the BN output before the ReLU overwrites it
    torch.manual_seed(3)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
    model = nn.Sequential(conv, bn, nn.ReLU(inplace=True))
    x, _ = _data(n=4)
    with torch.no_grad():
        c = conv(x)
        b = bn(c)
        r = torch.relu(b)

    def term(t):
        return np.linalg.eigvalsh(np.corrcoef(t[0].double().numpy().reshape(4, -1)))[0]

    # conv, BN (pre-ReLU), ReLU, and the Sequential (its output: the ReLU's)
    expected = term(c) + term(b) + 2 * term(r)
    assert z22.meco(model, x) == pytest.approx(expected, rel=1e-9, abs=1e-12)
