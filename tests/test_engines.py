"""The real engines on a tiny study in a temporary directory: Snakemake runs the DAG (sharded, then a no-op
second run), DVC reproduces the same stages and reruns only what a params edit touches, and the two
engines' definitions stay in step."""
import base64
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook

import nasflow

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ["Snakefile", "dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", "workflow", "stages", "nasflow"]

OPT = {"momentum": 0.9, "nesterov": True, "grad_clip": 5.0}  # the schema's defaults before they became neutral
TINY = {
    "seed": 0, "device": "cpu", "threads": 1,
    "data": {"dataset": "digits", "root": "data", "path": None, "download": False, "subset": 300},
    "space": "nb201",
    "sample": {"n_archs": 4},
    "settings": {  # every setting states its optimiser (momentum, nesterov, grad_clip): no defaults filled in
        "bpe1": {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, **OPT, "channels": 4,
                 "cells_per_stage": 1, "image_size": 8, "cutout": 0, "precision": 32},
        "bpe2": {"epochs": 2, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, **OPT, "channels": 4,
                 "cells_per_stage": 1, "image_size": 8, "cutout": 0, "precision": 32},
        "full": {"epochs": 2, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, **OPT, "channels": 4,
                 "cells_per_stage": 1, "image_size": 16, "cutout": 0, "precision": 32},
        "supernet": {"epochs": 2, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, **OPT, "channels": 4,
                     "cells_per_stage": 1, "image_size": 8, "cutout": 0, "precision": 32, "eval_split": "valid"},
    },
    "proxy": {"settings": ["bpe1", "bpe2"]},
    "ground_truth": {"source": "retrain", "setting": "full", "build_from": None},
    "supernet": {"setting": "supernet", "labels": ["random", "true"], "arch_sets": ["sampled", "all"],
                 "bn_batches": 1, "max_eval": 64, "grad_reset": "zeros"},
    "evolution": {"indicators": ["angle", "supernet_acc"], "population": 4, "topk": 2, "mutations": 2,
                  "crossovers": 2, "mutation_prob": 0.5, "generations": 2},
    "search": {"strategies": ["rs", "rea"], "estimators": ["proxy_bpe1", "angle_random"], "budget": {"evaluations": 3},
               "rea": {"population_size": 2, "sample_size": 1}},
    "differentiable": {"methods": ["gdas", "darts-v2"], "channels": 4, "cells_per_stage": 1, "image_size": 8,
                       "batch_size": 64, "epochs": 1, "w_lr": 0.025, "w_wd": 5e-4, "a_lr": 3e-4, "a_wd": 1e-3,
                       "select_num": 4},
    "bench_search": {"table": None},
    "predictors": {"names": []},
    "estimators": {},
    "zero_cost": {"proxies": [], "arch_sets": ["sampled"]},
    "parallel": {"shards": 2},
    "report": {"bootstrap": 50},
}


# a tiny budget search (the BPE paper's MIP): 2 rounds of 2 settings, each training the 4 sampled archs
BPE_SEARCH = {"space": {"epochs": [1, 2], "channels": [2, 4], "batch_size": [32, 64]}, "n_settings": 2,
              "n_archs": 4, "rounds": 2, "objective": "kendall_tau", "budget_seconds_per_arch": None, "base": "bpe1"}


def with_budget_search(params=TINY, *, as_proxy: bool = True) -> dict:
    """TINY with the budget search on and (as_proxy) its choice among the proxies."""
    p = yaml.safe_load(yaml.safe_dump(params))
    p["bpe_search"] = dict(BPE_SEARCH)
    if as_proxy:
        p["proxy"]["settings"] = [*p["proxy"]["settings"], "bpe_search"]
    return p


def make_study(tmp_path, params=TINY) -> Path:
    study = tmp_path / "study"
    study.mkdir(parents=True)
    for name in PIPELINE_FILES:
        src, dst = ROOT / name, study / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return study


def run(cmd, cwd, env, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def git_init(study, env):
    """As a user's clone: a git repository holding the committed .dvc/config and .dvcignore."""
    (study / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"]):
        run(["git", *cmd], study, env)


def commit(study, env, message: str) -> None:
    run(["git", "add", "-A"], study, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], study, env)


def ran(out: str) -> set[str]:
    """The stages a `dvc repro` ran."""
    return set(re.findall(r"Running stage '([^']+)'", out))


def snakemake_rules() -> dict[str, str]:
    """rule name -> the stage module its shell command runs."""
    rules = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^rule |^checkpoint |\Z)", smk.read_text(),
                                     re.S | re.M):
            rules[name] = re.search(r"python -m (stages\.\w+)", body).group(1)
    return rules


def test_engines_define_the_same_stages():
    # Snakemake runs the budget search as a checkpoint (sample) + a job per setting and round; DVC as one stage
    steps = {"bpe_search_sample", "bpe_search_train", "bpe_search_round", "bpe_search_report"}
    smk = {("bpe_search" if name in steps else name): module
           for name, module in snakemake_rules().items() if not name.startswith("gather")}
    dvc = {name: re.search(r"python -m (stages\.\w+)", stage["cmd"] if "cmd" in stage else stage["do"]["cmd"]).group(1)
           for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
    assert smk == dvc


def test_slurm_profile_dry_run(tmp_path, engine_env):
    study = make_study(tmp_path)
    r = run([sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "-n", "--cores", "2"],
            study, engine_env)
    assert "proxy_train" in r.stdout and "report" in r.stdout


def test_snakefile_rejects_bad_params_in_one_line(tmp_path, engine_env):
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params["settings"]["bpe1"]["precision"] = 8
    study = make_study(tmp_path, params)
    r = run([sys.executable, "-m", "snakemake", "--cores", "1"], study, engine_env, check=False)
    assert r.returncode != 0
    assert "error: config: settings.bpe1.precision: 8 is not one of [16, 32]" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (study / "results").exists()


def with_frontier(params):
    """`params` plus a learning-curve estimator, two zero-cost proxies (a tiny network) and a vote of two."""
    return {**params, "estimators": {"learning_curve": {"kinds": ["sotl"]}, "ensembles": {"vote": ["params", "proxy_bpe1"]}},
            "zero_cost": {"proxies": ["params", "synflow"], "arch_sets": ["sampled"], "channels": 4,
                          "cells_per_stage": 1, "image_size": 8, "batch_size": 16}}


@pytest.mark.slow
def test_snakemake_runs_the_study_then_does_nothing(tmp_path, engine_env):
    study = make_study(tmp_path, with_frontier(with_budget_search()))
    done = run([sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=2"], study, engine_env)
    results = study / "results"
    est = read_csv(results / "estimates.csv")
    assert len(est) == 4
    # the end-of-run summary (stages/summary.py via onsuccess): τ per estimator as in correlation.csv, the skips
    said = done.stdout + done.stderr
    for c in read_csv(results / "correlation.csv"):
        tau = float(c["kendall_tau"]) if c["kendall_tau"] else float("nan")
        shown = "n/a" if tau != tau else f"{tau:+.3f}"
        assert re.search(rf"{re.escape(c['estimator'])}\s+τ {re.escape(shown)}", said), c
    assert "Skipped:\n  - bench_search" in said and "rlnas_random_angle: ground truth" in said
    estimators = ["proxy_bpe1", "sotl_bpe1", "proxy_bpe2", "sotl_bpe2", "proxy_bpe_search", "sotl_bpe_search",
                  "angle_random", "supernet_acc_random", "angle_true", "supernet_acc_true", "params", "synflow", "vote"]
    assert list(est[0]) == ["arch", *estimators, "ground_truth", *(f"{e}_seconds" for e in estimators),
                            "ground_truth_seconds", *(f"{e}_status" for e in estimators), "ground_truth_status"]
    assert {r[f"{e}_status"] for r in est for e in estimators} == {"ok"}
    corr = read_csv(results / "correlation.csv")
    assert [c["estimator"] for c in corr] == estimators  # no table: no all-archs row
    found = json.loads((results / "found.json").read_text())["results"]
    assert sorted(f["search"] for f in found) == sorted(
        [f"rlnas_{l}_{i}" for l in ("random", "true") for i in ("angle", "supernet_acc")]
        + [f"{s}_{e}" for s in ("rs", "rea") for e in ("proxy_bpe1", "angle_random")] + ["gdas", "darts-v2"])
    gt = {r["arch"]: float(r["ground_truth"]) for r in est}
    for f in found:  # a found arch that was also sampled gets the same retrained accuracy (shared cache)
        assert f["arch"] not in gt or f["ground_truth"] == gt[f["arch"]]
    assert len(json.loads((results / "scores" / "random-all.json").read_text())["results"]) == 15625
    # the frontier sheet holds correlation.csv's numbers, each estimator with its registry family
    sheet = list(load_workbook(results / "report.xlsx")["frontier"].iter_rows(values_only=True))
    header = list(sheet[0])
    rows = {r[0]: dict(zip(header, r)) for r in sheet[1:len(corr) + 1]}
    assert set(rows) == set(estimators)
    for c in corr:
        for key in ("kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho", "seconds_per_arch"):
            want = float(c[key]) if c[key] else None
            assert rows[c["estimator"]][key] == pytest.approx(want, rel=1e-12), (c["estimator"], key)
    assert {rows[e]["family"] for e in ("sotl_bpe1", "params", "vote", "angle_true")} == {
        "learning curve", "zero-cost", "ensemble", "supernet"}
    assert sorted(p.name for p in (results / "plots").glob("*.png")) == sorted(
        ["correlation_vs_cost.png", "frontier.png", "search_best_so_far.png", "alphas_gdas.png", "alphas_darts-v2.png",
         *(f"{e}_vs_ground_truth.png" for e in estimators),
         *(f"bpe_search_{p}.png" for p in ("objective_vs_cost", "importance", "objective_2d"))])
    assert {"rlnas", "searches", "bpe_search", "importance"} <= set(load_workbook(results / "report.xlsx").sheetnames)
    rs = json.loads((results / "search" / "rs_proxy_bpe1.json").read_text())
    assert rs["n_evals"] == 3 and len(rs["history"]) == 3
    assert (results / "proxy" / "bpe1" / "shard-1-of-2.json").exists()
    again = run([sys.executable, "-m", "snakemake", "--cores", "2", "-n"], study, engine_env)
    assert "Nothing to be done" in again.stdout + again.stderr

    # one HTML page to send (the summary names its command): every figure, the frontier page and the tables,
    # the workbook, each embedded byte for byte (a self-contained file), and the version that made them
    assert "snakemake --report results/report.html" in said
    run([sys.executable, "-m", "snakemake", "--report", "results/report.html"], study, engine_env)
    page = (results / "report.html").read_text()
    plots = results / "plots"
    for path in [*plots.glob("*.png"), *plots.glob("*.html"), results / "report.xlsx", results / "correlation.csv"]:
        assert base64.b64encode(path.read_bytes()).decode() in page, path.name
    assert {"frontier.png", "frontier.html", "correlation_table.html"} <= {p.name for p in plots.iterdir()}
    table = (plots / "correlation_table.html").read_text()
    for c in corr:
        assert f"<td>{c['estimator']}</td>" in table
        assert c["kendall_tau"] == "" or f"<td>{float(c['kendall_tau']):.3f}</td>" in table
    assert "How to read it: look up and to the left" in page  # the frontier's caption
    about = dict(load_workbook(results / "report.xlsx")["about"].iter_rows(values_only=True))
    assert about["nasflow"] == nasflow.__version__ and f"Made by nasflow {nasflow.__version__}" in table

    # the budget search: every round's settings, each setting's τ = scipy's on accuracies.csv, pruning obeyed
    from scipy import stats

    bpe = results / "bpe_search"
    rows = read_csv(bpe / "settings.csv")
    assert [r["round"] for r in rows] == ["0", "0", "1", "1"] and len({r["setting"] for r in rows}) == 4
    assert list(rows[0])[:5] == ["setting", "round", "epochs", "batch_size", "channels"]
    accs = read_csv(bpe / "accuracies.csv")
    for r in rows:
        mine = [a for a in accs if a["setting"] == r["setting"]]
        assert len(mine) == 4
        tau = stats.kendalltau([float(a["accuracy"]) for a in mine], [float(a["ground_truth"]) for a in mine]).statistic
        assert (tau != tau and r["kendall_tau"] == "") or abs(float(r["kendall_tau"]) - tau) < 1e-12
    round0 = json.loads((bpe / "round-0" / "round.json").read_text())
    (hp, value), = round0["pruned"].items()
    assert all(str(r[hp]) == str(value) for r in rows if r["round"] == "1")
    assert {r["round"] for r in read_csv(bpe / "importance.csv")} == {"0", "1"}
    best = json.loads((bpe / "best.json").read_text())
    assert best["setting"] in {r["setting"] for r in rows} and best["full"]["weight_decay"] == TINY["settings"]["bpe1"]["weight_decay"]
    chosen = {r["arch"]: r["final_acc"] for r in json.loads((results / "proxy" / "bpe_search.json").read_text())["results"]}
    assert chosen == {a["arch"]: float(a["accuracy"]) for a in accs if a["setting"] == best["setting"]}  # the cache
    assert "Budget search (bpe_search" in said and f"chose {best['setting']}" in said

    # switching to DVC as docs/engines.md says: the choice into params.yaml (DVC reads params from there only), adopt
    # what Snakemake made, then `dvc repro` runs only what it skipped (bench_search: the Snakefile leaves it out
    # without a table) and reruns nothing Snakemake ran
    run([sys.executable, "-m", "stages.bpe_search", "adopt"], study, engine_env)
    assert yaml.safe_load((study / "params.yaml").read_text())["settings"]["bpe_search"] == best["full"]
    git_init(study, engine_env)
    adopt = run([sys.executable, "workflow/dvc_adopt.py"], study, engine_env)
    assert "left for dvc repro (1): bench_search\n" in adopt.stdout
    dvc_status = lambda: json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], study, engine_env).stdout)
    assert set(dvc_status()) == {"bench_search"}
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    repro = run([sys.executable, "-m", "dvc", "repro"], study, engine_env)
    assert ran(repro.stdout) == {"bench_search"}
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert json.loads((results / "bench_search.json").read_text())["skipped"].startswith("skipped: no NAS-Bench-201")
    assert dvc_status() == {}

    # the same study unsharded gives the same accuracies: per-arch seeds, not positions
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params["parallel"]["shards"] = 1
    study1 = make_study(tmp_path / "one", params)
    run([sys.executable, "-m", "snakemake", "--cores", "2", "results/proxy/bpe1.json"], study1, engine_env)
    one = {r["arch"]: r["final_acc"] for r in json.loads((study1 / "results/proxy/bpe1.json").read_text())["results"]}
    assert one == {r["arch"]: float(r["proxy_bpe1"]) for r in est}


@pytest.mark.slow
def test_dvc_repro_reruns_only_what_changed(tmp_path, engine_env):
    from dvc.repo import Repo

    # every kind of stage once (the Snakemake test runs the whole matrix): DVC's part is what reruns
    params = with_frontier(with_budget_search(as_proxy=False))
    params.update(supernet={**params["supernet"], "labels": ["random"]},
                  evolution={**params["evolution"], "indicators": ["angle"]},
                  search={**params["search"], "strategies": ["rs"]},
                  differentiable={**params["differentiable"], "methods": ["gdas"]})
    params["estimators"]["ensembles"] = {"vote": ["params", "angle"]}
    study = make_study(tmp_path, params)
    git_init(study, engine_env)
    first = run([sys.executable, "-m", "dvc", "repro"], study, engine_env)
    setting_stages = {"search_setting@proxy_bpe1", "search_setting@angle_random"}
    assert ran(first.stdout) == {
        *setting_stages, "bpe_search_base", "sample_archs", "proxy_train@bpe1", "proxy_train@bpe2", "ground_truth",
        "supernet_train@random", "score_archs@random-sampled", "score_archs@random-all", "evolution_search@random-angle",
        "search@rs-proxy_bpe1", "search@rs-angle_random", "differentiable_search@gdas",
        "bench_search", "build_table", "predictors", "bpe_search", "found_ground_truth", "zero_cost@sampled", "correlate",
        "report"}
    assert len(read_csv(study / "results" / "estimates.csv")) == 4
    assert len(read_csv(study / "results" / "bpe_search" / "settings.csv")) == 4  # DVC: every round in one stage
    assert "bpe_search" in load_workbook(study / "results" / "report.xlsx").sheetnames

    # the baseline committed as a user would: dvc.lock, and metrics.json in Git (a metric with cache: false, not ignored)
    commit(study, engine_env, "baseline")
    assert "results/metrics.json" in run(["git", "ls-files"], study, engine_env).stdout.split()
    dvc = [sys.executable, "-m", "dvc"]
    plots = json.loads(run([*dvc, "plots", "show", "--json"], study, engine_env).stdout)["data"]
    assert {"tau_vs_cost", "per_epoch_accuracy", "budget_search_objective_vs_cost"} <= set(plots)
    assert {(p["estimator"], int(p["id"]), int(p["epoch"])) for p in plots["per_epoch_accuracy"][0]["content"]["data"]["values"]} == {
        (f"proxy_{s}", i, e) for s, epochs in (("bpe1", 1), ("bpe2", 2)) for i in range(4) for e in range(1, epochs + 1)}
    work = {p: p.stat().st_mtime_ns for p in (study / "results" / "work").rglob("*") if p.is_file()}

    # a DVC experiment (how DVC users sweep a parameter) reruns only what the edit touches: search_setting (and
    # bpe_search_base) declare all settings and rewrite their files unchanged, so no search, and not the budget
    # search (its base is bpe1), trains with bpe2
    second = run([*dvc, "exp", "run", "-S", "settings.bpe2.epochs=1", "-n", "bpe2-e1"], study, engine_env)
    assert ran(second.stdout) == {"proxy_train@bpe2", *setting_stages, "bpe_search_base", "correlate", "report"}
    # bpe2 at 1 epoch is bpe1: its archs come from bpe1's per-arch cache, nothing is trained or written there
    assert {p: p.stat().st_mtime_ns for p in (study / "results" / "work").rglob("*") if p.is_file()} == work
    accs = {s: {r["arch"]: r["final_acc"] for r in json.loads((study / f"results/proxy/{s}.json").read_text())["results"]}
            for s in ("bpe1", "bpe2")}
    assert accs["bpe2"] == accs["bpe1"]
    rows = {r["estimator"]: r for r in read_csv(study / "results" / "correlation.csv")}
    assert {"proxy_bpe1", "proxy_bpe2", "angle", "params", "vote"} <= set(rows)
    with Repo(str(study)) as repo:
        assert repo.status() == {}

    def tau(metrics: dict, name: str):
        return metrics["results/metrics.json"]["data"][name]["kendall_tau"]

    # `dvc exp show` lists the experiment beside its baseline with τ per estimator, the numbers of correlation.csv
    shown = json.loads(run([*dvc, "exp", "show", "--json"], study, engine_env).stdout)
    baseline = next(b for b in shown if b["rev"] != "workspace")
    experiment = next(r for e in baseline["experiments"] for r in e["revs"] if r["name"] == "bpe2-e1")
    for name, row in rows.items():
        want = float(row["kendall_tau"]) if row["kendall_tau"] else None
        assert tau(experiment["data"]["metrics"], name) == pytest.approx(want, rel=1e-12, nan_ok=True), name
    assert tau(experiment["data"]["metrics"], "proxy_bpe2") == tau(experiment["data"]["metrics"], "proxy_bpe1")
    before = tau(baseline["data"]["metrics"], "proxy_bpe2")
    # the experiment committed: `dvc metrics diff` between the two commits names what changed
    commit(study, engine_env, "bpe2 at 1 epoch")
    diff = json.loads(run([*dvc, "metrics", "diff", "HEAD~1", "HEAD", "--json"], study, engine_env).stdout)
    change = diff["results/metrics.json"]["proxy_bpe2.kendall_tau"]
    assert change["old"] == before and change["new"] == float(rows["proxy_bpe2"]["kendall_tau"])
    assert "proxy_bpe1.kendall_tau" not in diff["results/metrics.json"]  # unchanged: not listed
    # `dvc plots diff` draws both commits' τ against cost from correlation.csv
    drawn = json.loads(run([*dvc, "plots", "diff", "HEAD~1", "--json"], study, engine_env).stdout)["data"]
    taus = {(p["rev"], p["estimator"]): float(p["kendall_tau"])
            for p in drawn["tau_vs_cost"][0]["content"]["data"]["values"] if p["kendall_tau"]}
    assert taus[("HEAD~1", "proxy_bpe2")] == before and taus[("workspace", "proxy_bpe2")] == change["new"]
    params = yaml.safe_load((study / "params.yaml").read_text())

    # editing bpe1 reruns the searches whose estimator trains with it, not the angle's
    params["settings"]["bpe1"]["lr"] = 0.04
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run([sys.executable, "-m", "dvc", "repro", "search@rs-proxy_bpe1", "search@rs-angle_random"], study,
                engine_env)
    assert ran(third.stdout) == {*setting_stages, "search@rs-proxy_bpe1"}


@pytest.mark.slow
def test_darts_space_study_through_snakemake(tmp_path, engine_env):
    """`space: darts` runs the same DAG: BPE proxies, retrained ground truth, the RLNAS DARTS supernet (angle,
    evolution), multi-trial searches and GDAS / DARTS with 8-op mixed edges, all on DARTS genotypes."""
    small = {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, **OPT, "channels": 4, "layers": 3,
             "image_size": 8, "cutout": 0, "precision": 32, "aux_weight": 0.4, "drop_path": 0.2}
    supernet = {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, **OPT, "nesterov": False, "channels": 4,
                "layers": 3, "image_size": 8, "eval_split": "valid"}
    params = yaml.safe_load(yaml.safe_dump(TINY))
    differentiable = {k: v for k, v in TINY["differentiable"].items() if k != "cells_per_stage"}
    params.update(space="darts", sample={"n_archs": 3}, parallel={"shards": 1},
                  settings={"bpe1": small, "full": {**small, "image_size": 16}, "supernet": supernet},
                  proxy={"settings": ["bpe1"]},
                  supernet={"setting": "supernet", "labels": ["random"], "arch_sets": ["sampled"],
                            "bn_batches": 1, "max_eval": 64},
                  evolution={**TINY["evolution"], "indicators": ["angle"]},
                  search={"strategies": ["rea"], "estimators": ["proxy_bpe1", "angle_random"],
                          "budget": {"evaluations": 2}, "rea": {"population_size": 1, "sample_size": 1}},
                  differentiable={**differentiable, "methods": ["gdas"], "layers": 3,
                                  "w_nesterov": False})
    study = make_study(tmp_path, params)
    run([sys.executable, "-m", "snakemake", "--cores", "2"], study, engine_env)
    est = read_csv(study / "results" / "estimates.csv")
    assert len(est) == 3 and all(r["arch"].startswith("Genotype(normal=[(") for r in est)
    assert all(0 <= float(r["proxy_bpe1"]) <= 100 for r in est)
    assert all(0 < float(r["angle"]) < 3.15 for r in est)  # every DARTS genotype keeps paths: angle > 0
    found = json.loads((study / "results" / "found.json").read_text())["results"]
    assert sorted(f["search"] for f in found) == sorted(
        ["rlnas_random_angle", "rea_proxy_bpe1", "rea_angle_random", "gdas"])
    assert all(f["arch"].startswith("Genotype(normal=[(") for f in found)
    evo = json.loads((study / "results" / "search" / "rlnas_random_angle.json").read_text())
    assert evo["n_scored"] == 4 + 4  # population 4, then 2 mutations + 2 crossovers (or random fill)
    gdas = json.loads((study / "results" / "search" / "gdas.json").read_text())
    assert len(gdas["alphas"]) == 2 and len(gdas["alphas"][0]) == 14 and len(gdas["alphas"][0][0]) == 8
    plots = {p.name for p in (study / "results" / "plots").glob("*.png")}
    assert {"alphas_gdas.png", "angle_vs_ground_truth.png"} <= plots
    assert {"rlnas", "searches"} <= set(load_workbook(study / "results" / "report.xlsx").sheetnames)


@pytest.mark.slow
def test_study_from_an_official_release(tmp_path, engine_env):
    """ground_truth.build_from: both engines convert a release (NATS-Bench's archive format, written here with the
    sampled cells) once in the build_table stage, then read the ground truth and the tabular estimators from it."""
    from nasflow.spaces import nb201
    from tests import release_fixtures as rf

    params = yaml.safe_load(yaml.safe_dump(TINY))
    archs = nb201.sample(params["sample"]["n_archs"], seed=params["seed"])
    cells = rf.write_nats(tmp_path / "NATS-tss-v1_0-3ffb9-simple", [nb201.enumerate_all().index(a) for a in archs])
    params.update(proxy={"settings": ["bpe1"]}, supernet={**params["supernet"], "labels": ["random"], "arch_sets": ["sampled"]},
                  evolution={**params["evolution"], "indicators": []},
                  search={**params["search"], "strategies": [], "estimators": []},
                  differentiable={**params["differentiable"], "methods": []},
                  ground_truth={"source": "table", "setting": "full", "build_from": str(tmp_path / "NATS-tss-v1_0-3ffb9-simple"),
                                "column": "cifar10_test_acc_200ep"},
                  estimators={"extra": ["table_acc_200ep_e10", "table_sotl_12ep_e12"]},
                  predictors={"names": ["rf"], "train_sizes": [2], "test_size": 2, "trials": 2, "shards": 2})
    expect = {}
    for i, c in cells.items():
        runs = [c["200"]["all_results"][("cifar10", s)] for s in (777, 888, 999)]
        expect[nb201.enumerate_all()[i]] = sum(t["eval_acc1es"]["ori-test@199"] for t in runs) / 3
    for engine in ("snakemake", "dvc"):
        study = make_study(tmp_path / engine, params)
        if engine == "snakemake":
            run([sys.executable, "-m", "snakemake", "--cores", "2"], study, engine_env)
        else:
            git_init(study, engine_env)
            # the stages that read the table (this study has no searches, so no found archs to look up)
            did = ran(run([sys.executable, "-m", "dvc", "repro", "correlate", "bench_search", "predictors"], study,
                          engine_env).stdout)
            assert {"build_table", "ground_truth", "correlate", "bench_search", "predictors"} <= did
        results = study / "results"
        manifest = json.loads((results / "table" / "manifest.json").read_text())
        assert manifest["built"] and manifest["cells"] == len(archs) and manifest["kind"] == "nats"
        est = read_csv(results / "estimates.csv")
        assert {r["arch"]: float(r["ground_truth"]) for r in est} == pytest.approx(expect)
        assert all(float(r["table_acc_200ep_e10"]) > 0 for r in est)
        corr = {r["estimator"]: r for r in read_csv(results / "correlation.csv")}
        assert corr["table_acc_200ep_e10_all_archs"]["n"] == str(len(archs))  # every cell of the table
        assert "benchmark mode searches them all" in json.loads((results / "bench_search.json").read_text())["skipped"]
        predicted = json.loads((results / "predictors.json").read_text())["results"]
        assert [(r["predictor"], r["train_size"], r["trial"]) for r in predicted] == [("rf", 2, 0), ("rf", 2, 1)]
        assert all(r["init_seconds"] > r["fit_seconds"] and "recorded" in r["init_cost_source"] for r in predicted)
        if engine == "snakemake":  # the report: the predictors sheet and the τ-vs-training-size plot
            book = load_workbook(results / "report.xlsx")
            assert "predictors" in book.sheetnames
            about = {r[0]: r[1] for r in book["about"].iter_rows(values_only=True) if r and r[0]}
            assert "no training was run" in about["tabular_estimators"] and "recorded" in about["table_costs"]
            assert (results / "plots" / "predictors_tau_vs_train_size.png").is_file()
