"""Model-based predictors: encodings, regressors, the protocol's splits and metrics, and `nasflow predictors`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nasflow.cli import main
from nasflow.estimators import predictors as pred
from nasflow.spaces import darts, encodings, mobilenet, nb201


def cell(*ops):
    return nb201.format(ops)


def test_encodings_on_hand_made_cells():
    a = cell("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1")
    v = encodings.onehot(nb201, a)
    assert v.shape == (30,) and v.sum() == 6
    assert [int(np.argmax(v[5 * e:5 * e + 5])) for e in range(6)] == [nb201.OPS.index(o) for o in nb201.parse(a)]
    assert encodings.nb201_paths(cell(*["none"] * 6)).sum() == 0
    # only the input -> output edge (3 <- 0) is live: one bit, the one-op sequence (nor_conv_3x3,)
    only = encodings.nb201_paths(cell("none", "none", "none", "nor_conv_3x3", "none", "none"))
    assert only.sum() == 1 and encodings._SEQUENCES[("nor_conv_3x3",)] == int(np.argmax(only))
    # a: paths 0->3 (avg_pool), 0->1->2->3 (conv3x3, skip, conv1x1); 0->1->3 and 0->2->3 pass through none
    bits = encodings.nb201_paths(a)
    assert bits.sum() == 2 and bits[encodings._SEQUENCES[("avg_pool_3x3",)]] == 1
    assert bits[encodings._SEQUENCES[("nor_conv_3x3", "skip_connect", "nor_conv_1x1")]] == 1
    # isomorphic cells (a dead edge differs) share the path encoding, not the one-hot
    b1 = cell("none", "none", "none", "skip_connect", "nor_conv_3x3", "none")
    b2 = cell("none", "none", "none", "skip_connect", "avg_pool_3x3", "none")
    assert nb201.unique_key(b1) == nb201.unique_key(b2)
    assert (encodings.nb201_paths(b1) == encodings.nb201_paths(b2)).all()
    assert (encodings.onehot(nb201, b1) != encodings.onehot(nb201, b2)).any()
    adj, types = encodings.nb201_graph(a)
    assert adj.shape == (8, 8) and adj[0, 1] == 1 and adj[1, 3] == 1 and adj[6, 7] == 1 and adj[2, 7] == 0
    assert types.sum() == 8


def test_darts_path_encoding_on_a_hand_made_genotype():
    """Paths from each cell input through the intermediate nodes, listed by hand (15 in the normal cell)."""
    normal = [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 2), ("avg_pool_3x3", 0),
              ("dil_conv_3x3", 3), ("sep_conv_5x5", 1), ("dil_conv_5x5", 4), ("skip_connect", 2)]
    reduce = [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4  # nodes 3-5 read only the cell inputs: 8 paths, 2 distinct
    g = darts.format(darts.Genotype(tuple(normal), (2, 3, 4, 5), tuple(reduce), (2, 3, 4, 5)))
    s, m, a, d3, s5, d5, k = ("sep_conv_3x3", "max_pool_3x3", "avg_pool_3x3", "dil_conv_3x3", "sep_conv_5x5",
                              "dil_conv_5x5", "skip_connect")
    by_hand = {(0, (s,)), (1, (k,)), (0, (s, m)), (1, (k, m)), (0, (a,)), (0, (s, m, d3)), (1, (k, m, d3)),
               (0, (a, d3)), (1, (s5,)), (0, (s, m, d3, d5)), (1, (k, m, d3, d5)), (0, (a, d3, d5)), (1, (s5, d5)),
               (0, (s, k)), (1, (k, k))}
    bits = encodings.darts_paths(g)
    block = len(encodings._DARTS_SEQUENCES)
    assert bits.shape == (11200,) == (encodings.N_DARTS_PATH_BITS,) and bits.sum() == len(by_hand) + 2
    assert {(i, seq) for i in (0, 1) for seq, j in encodings._DARTS_SEQUENCES.items() if bits[i * block + j]} == by_hand
    assert bits[2 * block + encodings._DARTS_SEQUENCES[(m,)]] == bits[3 * block + encodings._DARTS_SEQUENCES[(m,)]] == 1
    # the two inputs of a node in the other order: the same network, the same paths (the one-hot differs)
    swapped = list(normal)
    swapped[4], swapped[5] = swapped[5], swapped[4]
    g2 = darts.format(darts.Genotype(tuple(swapped), (2, 3, 4, 5), tuple(reduce), (2, 3, 4, 5)))
    assert (encodings.darts_paths(g2) == bits).all()
    x = encodings.encode_many(darts, darts.sample(5, seed=1), "path")
    assert x.shape == (5, 11200) and (x.sum(1) > 0).all()
    with pytest.raises(Exception, match="defined for NB201 and DARTS"):
        encodings.encode_many(mobilenet, mobilenet.sample(1, seed=0), "path")


@pytest.mark.parametrize("space,width", [(nb201, 30), (darts, 152), (mobilenet, 141)])
def test_onehot_round_trip(space, width):
    for arch in space.sample(30, seed=3):
        v = encodings.onehot(space, arch)
        assert v.shape == (width,) and v.sum() == len(space.choices())
        assert encodings.from_onehot(space, v) == space.canonical(arch)


@pytest.fixture(scope="module")
def pool():
    archs = nb201.sample(400, seed=7)
    x = encodings.encode_many(nb201, archs)
    w = np.random.default_rng(0).normal(size=x.shape[1])
    return archs, x @ w  # a known (linear) function of the encoding


@pytest.mark.parametrize("name", pred.PREDICTORS)
def test_each_predictor_learns_a_function_of_the_encoding_and_not_noise(name, pool):
    archs, y = pool
    kw = dict(predictors=[name], sizes=[100], test_size=80, trials=1, seed=1, encoding="onehot")  # gcn: its graph
    good = pred.run_protocol(nb201, archs, y, **kw)
    noise = np.random.default_rng(5).normal(size=len(y))
    bad = pred.run_protocol(nb201, archs, noise, **kw)
    floor = 0.45 if name == "gcn" else 0.7  # the gcn reads the graph, which forgets nothing but learns slower
    assert good[0]["kendall_tau"] > floor, good
    assert abs(bad[0]["kendall_tau"]) < 0.2, bad


def test_splits_are_disjoint_nested_and_seeded():
    tr5, te = pred.splits(100, 5, 20, trial=3, seed=0)
    tr8, te8 = pred.splits(100, 8, 20, trial=3, seed=0)
    assert not set(tr8) & set(te) and (te == te8).all() and set(tr5) <= set(tr8)
    assert (pred.splits(100, 8, 20, trial=4, seed=0)[1] != te).any()
    with pytest.raises(Exception, match="exceeds"):
        pred.splits(100, 90, 20, trial=0, seed=0)


def test_sharding_and_reruns_change_nothing(pool):
    archs, y = pool
    kw = dict(predictors=["rf", "lgb"], sizes=[20, 40], test_size=50, trials=2, seed=3)
    whole = pred.run_protocol(nb201, archs, y, **kw)
    shard = pred.run_protocol(nb201, archs, y, **kw, jobs=[("lgb", 40, 1), ("rf", 20, 0)])
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith("_seconds")}
    by = {(r["predictor"], r["train_size"], r["trial"]): strip(r) for r in whole}
    assert [strip(r) for r in shard] == [by[("lgb", 40, 1)], by[("rf", 20, 0)]]
    assert [strip(r) for r in pred.run_protocol(nb201, archs, y, **kw)] == [strip(r) for r in whole]


def test_metrics_against_scipy_and_by_hand():
    rng = np.random.default_rng(2)
    t, p = rng.normal(size=50), rng.normal(size=50)
    m = pred.metrics(t, p)
    assert m["kendall_tau"] == pytest.approx(stats.kendalltau(t, p).statistic)
    assert m["spearman_rho"] == pytest.approx(stats.spearmanr(t, p).statistic)
    assert m["regret"] == pytest.approx(t.max() - t[np.argmax(p)])
    assert m["mae"] == pytest.approx(np.abs(t - p).mean())
    truth = np.arange(20.0)  # top 10% = cells 19, 18; predicted top 2 = 19 and 0
    guess = truth.copy()
    guess[0] = 100
    assert pred.metrics(truth, guess)["precision_at_10"] == 0.5 and pred.metrics(truth, guess)["regret"] == 19.0


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.csv"
    archs = nb201.enumerate_all()
    x = encodings.encode_many(nb201, archs)
    y = x @ np.random.default_rng(1).normal(size=30)
    path.write_text("index,arch,acc\n" + "".join(f"{i},{a},{v}\n" for i, (a, v) in enumerate(zip(archs, y))))
    return path


def test_command_line_contract(table, tmp_path, capsys):
    assert main(["predictors", "--table", str(table), "--column", "acc", "--predictors", "rf,lgb", "--train-sizes",
                 "10,30", "--test-size", "40", "--trials", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 * 2 * 2
    assert set(rows[0]) == {"predictor", "train_size", "trial", "kendall_tau", "spearman_rho", "precision_at_10",
                            "regret", "mae", "fit_seconds", "query_seconds"}
    # a features file: its cells are the pool, its numeric columns join the encoding, its seconds the query cost
    archs = nb201.sample(120, seed=2)
    feats = tmp_path / "zc.csv"
    feats.write_text("arch,synflow,synflow_seconds\n" + "".join(f"{a},{i % 7},0.5\n" for i, a in enumerate(archs)))
    assert main(["predictors", "--table", str(table), "--column", "acc", "--predictors", "rf", "--train-sizes", "20",
                 "--test-size", "50", "--trials", "1", "--features", f"path,{feats}", "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)
    assert row["query_seconds"] >= 0.5
    assert main(["predictors", "--table", str(table), "--column", "acc", "--predictors", "rf", "--train-sizes", "20",
                 "--test-size", "50", "--trials", "1"]) == 0
    assert "kendall_tau" in capsys.readouterr().out

    def fails(*args, needle):
        assert main(["predictors", "--table", str(table), "--column", "acc", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err

    fails("--predictors", "xgb", needle="unknown predictor 'xgb'")
    fails("--train-sizes", "20000", needle="exceeds")
    fails("--features", f"{feats}", "--train-sizes", "100", "--test-size", "50", needle="exceeds the 120 cells")
    assert main(["predictors", "--table", str(table), "--column", "nope"]) == 2
    assert "'nope' is not a column" in capsys.readouterr().err
    holes = tmp_path / "holes.csv"
    holes.write_text("arch,synflow\n" + f"{archs[0]},1\n{archs[1]},\n")
    fails("--features", str(holes), needle="no value for 1 cells")
    alien = tmp_path / "alien.csv"
    alien.write_text("arch,synflow\n|x~0|,1\n")
    fails("--features", str(alien), needle="not in the table")


def test_a_predictor_is_an_estimator_by_name(table):
    """pred_<predictor>_n<k> in the registry: trained on k table cells that are not the ones it scores."""
    from nasflow.estimators import registry
    from stages.estimation import _Common

    ctx = _Common({"seed": 0, "ground_truth": {"source": "table", "path": str(table), "column": "acc"},
                   "bench_search": {}})
    archs = nb201.sample(60, seed=9)
    entry = registry.get("pred_rf_n200")
    assert entry.family == "model-based"
    first = entry(archs, ctx)
    truth = [float(v) for v in np.loadtxt(table, delimiter=",", skiprows=1, usecols=2)[[nb201.index_of(a) for a in archs]]]
    assert stats.kendalltau([e.score for e in first], truth).statistic > 0.5
    assert [e.score for e in entry(archs, ctx)] == [e.score for e in first]  # seeded
    with pytest.raises(Exception, match="other cells"):
        registry.get("pred_rf_n20000")(archs, ctx)


def test_predictor_guided_search_finds_good_cells_within_the_budget(table):
    """BANANAS-style on a table whose value is a known function of the cell: it beats random search's pick."""
    from nasflow.estimators.table import TableEstimator
    from nasflow.search import Budget, get_strategy

    est = TableEstimator(table, "acc", cost_model="constant")
    budget = Budget(evaluations=25)
    guided = [get_strategy("bananas")(nb201, est, budget, seed, predictor="lgb", candidates=50) for seed in range(2)]
    rs = [get_strategy("rs")(nb201, est, budget, seed) for seed in range(2)]
    assert all(r.n_evals == 25 for r in guided)
    assert len({e.arch for e in guided[0].history}) == 25  # never pays twice for one cell
    best = lambda runs: np.mean([r.best_score for r in runs])
    assert best(guided) > best(rs)
    assert guided[0].history == get_strategy("bananas")(nb201, est, budget, 0, predictor="lgb", candidates=50).history


def _hybrid_study(tmp_path, table, *, pool=300, sampled=30, hybrids=("rf_zc",), features=None):
    """A study whose zero_cost stage 'scored' `pool` extra cells and `sampled` study cells with synflow = the table's
    value (a perfect feature) at 0.25 s per cell; params validated as the stages validate them."""
    import yaml

    from stages.common import validate_params
    from tests.test_engines import TINY

    archs = nb201.sample(pool + sampled, seed=5)
    truth = dict(np.genfromtxt(table, delimiter=",", skip_header=1, usecols=(1, 2), dtype=None, encoding=None).tolist())
    zc = tmp_path / "results" / "zero_cost"
    zc.mkdir(parents=True)
    for name, cells in (("extra", archs[:pool]), ("sampled", archs[pool:])):
        rows = [{"id": i, "arch": a, "synflow": truth[a], "synflow_seconds": 0.25} for i, a in enumerate(cells)]
        (zc / f"{name}.json").write_text(json.dumps({"proxies": ["synflow"], "results": rows}))
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params.update(ground_truth={"source": "table", "path": str(table), "column": "acc"},
                  zero_cost={"proxies": ["synflow"], "arch_sets": ["sampled", "extra"], "extra_archs": pool},
                  predictors={"names": ["rf"], "hybrids": list(hybrids), "features": features or {"zc": ["synflow"]},
                              "train_sizes": [20, 60], "test_size": 50, "trials": 2})
    return validate_params(params), archs[pool:], truth, zc


def test_a_hybrid_reads_its_features_and_pays_for_them(table, tmp_path):
    """pred_<predictor>_<feature set>_n<k>: trained on k cells of the zero-cost pool with their features; each
    query costs the prediction + its features; the one-off cost is the training cells' evaluation + features + fit."""
    from nasflow.estimators import registry
    from nasflow.estimators.table import ground_truth_costs
    from stages.estimation import ResultsContext

    params, archs, truth, zc = _hybrid_study(tmp_path, table)
    ctx = ResultsContext(params, zero_cost_file=zc / "sampled.json")
    hybrid = registry.get("pred_rf_zc_n100")(archs, ctx)
    plain = registry.get("pred_rf_n100")(archs, ctx)
    y = [truth[a] for a in archs]
    tau = lambda found: stats.kendalltau([e.score for e in found], y).statistic
    assert tau(hybrid) > 0.9 > tau(plain)  # the feature is the target: the hybrid ranks by it
    assert all(0.25 <= e.seconds < 0.25 + 0.05 for e in hybrid) and all(e.seconds < 0.05 for e in plain)
    # the training cells: k of the pool (not the study's cells), drawn as predicted() draws them
    pool = sorted(r["arch"] for r in json.loads((zc / "extra.json").read_text())["results"])
    train = [pool[i] for i in np.random.default_rng([params["seed"], 100]).choice(len(pool), 100, replace=False)]
    evaluation = ground_truth_costs(str(table), "acc", train)[0].sum()
    assert 0 < ctx.init_seconds["pred_rf_zc_n100"] - (evaluation + 100 * 0.25) < 10  # + the fit's seconds
    assert 0 < ctx.init_seconds["pred_rf_n100"] - ground_truth_costs(str(table), "acc", [
        a for a in [sorted(a for a in nb201.enumerate_all() if a not in set(archs))[i] for i in
                    np.random.default_rng([params["seed"], 100]).choice(15625 - len(archs), 100, replace=False)]])[0].sum() < 10
    with pytest.raises(Exception, match="only 300 other cells"):
        registry.get("pred_rf_zc_n400")(archs, ctx)


def test_the_predictors_stage_runs_hybrids_on_the_pool(table, tmp_path):
    """The stage's hybrid rows: the pool's cells, the features' cost in both costs, shards that change nothing."""
    import subprocess
    import sys

    import yaml

    params, _, _, zc = _hybrid_study(tmp_path, table)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def stage(shard):
        out = tmp_path / f"p-{shard.replace('/', '-')}.json"
        subprocess.run([sys.executable, "-m", "stages.predictors", "--params", str(tmp_path / "params.yaml"),
                        "--zero-cost-dir", str(zc), "--shard", shard, "--out", str(out)], check=True,
                       capture_output=True, text=True)
        return json.loads(out.read_text())["results"]

    whole = stage("0/1")
    assert [(r["predictor"], r["train_size"], r["trial"]) for r in whole] == [
        (p, n, t) for p in ("rf", "rf_zc") for n in (20, 60) for t in range(2)]
    hybrid = [r for r in whole if r["predictor"] == "rf_zc"]
    assert all(r["pool"] == 300 and r["feature_seconds"] == 0.25 and r["query_seconds"] >= 0.25 for r in hybrid)
    assert all(r["pool"] == 15625 and r["feature_seconds"] == 0 for r in whole if r["predictor"] == "rf")
    assert all(r["init_seconds"] > r["train_size"] * 0.25 + r["fit_seconds"] for r in hybrid)
    mean_tau = lambda rows: np.mean([r["kendall_tau"] for r in rows])
    assert mean_tau(hybrid) > mean_tau([r for r in whole if r["predictor"] == "rf"]) + 0.1  # the perfect feature, read
    split = sorted(stage("0/2") + stage("1/2"), key=lambda r: r["id"])
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]
    assert strip(split) == strip(whole)


@pytest.mark.parametrize("change, needle", [
    ({"hybrids": ["rf_nope"]}, "no feature set 'nope'"),
    ({"features": {"zc": ["zen"]}}, "add it to zero_cost.proxies"),
    ({"features": {"zc": ["proxy_bpe1"]}}, "a feature is a zero-cost proxy or a tabular estimator"),
    ({"features": {"zc": ["nonsense_x"]}}, "unknown estimator"),
])
def test_bad_hybrid_settings_fail_in_one_line(table, tmp_path, change, needle):
    import yaml

    from nasflow.errors import ParamsError
    from stages.common import validate_params

    params, _, _, _ = _hybrid_study(tmp_path, table)
    bad = yaml.safe_load(yaml.safe_dump(params))
    bad["predictors"].update(change)
    with pytest.raises(ParamsError) as e:
        validate_params(bad)
    assert needle in str(e.value) and "\n" not in str(e.value)
    bad = yaml.safe_load(yaml.safe_dump(params))
    bad["zero_cost"]["arch_sets"] = ["sampled"]
    with pytest.raises(ParamsError, match="extra or all"):
        validate_params(bad)
