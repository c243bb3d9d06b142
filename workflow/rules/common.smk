import glob
from pathlib import Path

from stages.bpe_search import round_settings
from stages.search_setting import estimator_setting

SHARDS = config["parallel"]["shards"]
PROXY_SETTINGS = config["proxy"]["settings"]


def code(*patterns):
    """The source files a stage runs: editing one of them reruns the stage (and only the stages using it)."""
    return sorted(f for p in patterns for f in glob.glob(p))


def plugin_files(modules):
    """The source files of `estimators.plugins` (modules under this folder); an installed package is not tracked."""
    return [f for m in modules for f in glob.glob(str(Path(*m.split("."))) + ".py")]


PLUGIN_CODE = plugin_files(config["estimators"]["plugins"])
# what every stage runs: params, artifacts, provenance, the guard and the device claim (stages/common.py re-exports them)
STAGE_CODE = [
    "stages/common.py",
    "stages/params.py",
    "stages/artifacts.py",
    "stages/provenance.py",
    "stages/guard.py",
    "stages/devices.py",
    "nasflow/errors.py",
    "workflow/schemas/params.schema.yaml",
]
TRAIN_CODE = (
    code(
        "stages/training.py",
        "nasflow/estimators/proxy.py",
        "nasflow/train.py",
        "nasflow/data.py",
        "nasflow/devices.py",
        "nasflow/spaces/*.py",
        "nasflow/models/*.py",
    )
    + STAGE_CODE
)


# the ground-truth table the build_table stage converts from an official release (ground_truth.build_from):
# an input of every rule that reads the table. Without a release the stage writes only its manifest, in a
# second: both engines always have the node and the same outputs (DVC's adoption of Snakemake's results).
TABLE_INPUT = ["results/table"]


def shards(pattern, n=SHARDS, **wildcards):
    return [pattern.format(i=i, n=n, **wildcards) for i in range(n)]


wildcard_constraints:
    setting="[a-z][a-z0-9_]*",
    i="[0-9]+",
    n="[0-9]+",


# `snakemake --report results/report.html`: one self-contained page of the study's results, by family
REPORT_TABLES = "6. Tables and workbook"


def report_category(wildcards):
    """The HTML report's section for a file of results/plots, from its name."""
    name = getattr(wildcards, "figure", None) or getattr(wildcards, "page", "")
    if name.startswith(("frontier", "correlation_")):
        return "1. Cost–quality frontier"
    if name.endswith("_vs_ground_truth"):
        return "2. Estimators against the ground truth"
    if name.startswith("search_"):
        return "3. Searches"
    if name.startswith("alphas_"):
        return "4. Differentiable searches"
    if name.startswith("bpe_search_"):
        return "5. Budget search"
    return "7. Other figures"


# ------------------------------------------------------------------ helpers of the rule files (input and params
# functions), kept here so that every other .smk holds rules only


# train.smk
def chosen_budget(w):
    """`bpe_search` in proxy.settings, not defined under settings: the budget search's choice (its best.json)."""
    return [CHOSEN_BUDGET_FILE] if w.setting not in config["settings"] else []


def ground_truth_params(_):
    gt = config["ground_truth"]
    return {"ground_truth": gt, "setting": config["settings"].get(gt.get("setting"))}


# search.smk
def search_inputs(w):
    """What the estimator needs upstream (nasflow.estimators.registry): a supernet estimator its trained supernet,
    alpha_<method> its differentiable search; a proxy or learning-curve estimator nothing (it shares the cache)."""
    from nasflow.estimators import registry

    files = []
    for need in registry.get(w.estimator).needs:
        kind, _, what = need.partition(":")
        if kind == "supernet":
            files += [f"results/supernet/{what or config['supernet']['labels'][0]}/final.pt"]
        elif kind == "differentiable":
            files += [f"results/search/{what}.json"]
    return files


# bpe_search.smk
def previous_round(w):
    r = int(w.r)
    return [f"results/bpe_search/round-{r - 1}/round.json"] if r > 0 else []


def round_trainings(w):
    settings = checkpoints.bpe_search_sample.get(r=w.r).output[0]
    return [f"results/bpe_search/round-{w.r}/train/{name}.json" for name in round_settings(settings)]
