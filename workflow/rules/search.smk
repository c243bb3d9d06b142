# Multi-trial searches (strategy x estimator) and the NAS-Bench-201 table baselines (benchmark mode).
SEARCH = config["search"]
SEARCHES = [f"results/search/{s}_{e}.json" for s in SEARCH["strategies"] for e in SEARCH["estimators"]]
HAS_TABLE = bool(config["bench_search"].get("table") or config["ground_truth"]["source"] == "table")

import re

from stages.search_setting import estimator_setting


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


wildcard_constraints:
    strategy="rs|rea|reinforce|bohb",
    estimator="|".join(re.escape(e) for e in SEARCH["estimators"]) or "none",


rule search_setting:
    """The setting (or table) one estimator reads, as a file its searches depend on (see stages/search_setting.py)."""
    input:
        lambda w: [CHOSEN_BUDGET_FILE] if w.estimator == f"proxy_{CHOSEN_BUDGET}" and CHOSEN_BUDGET not in config["settings"] else [],
        code=code("stages/search_setting.py") + STAGE_CODE,
    output:
        "results/search_setting/{estimator}.json",
    params:
        setting=lambda w: estimator_setting(config, w.estimator, resolve=False),
    localrule: True
    log:
        "results/logs/search_setting/{estimator}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.search_setting --params {PARAMS} --estimator {wildcards.estimator} --out {output}"


rule search:
    input:
        search_inputs,
        setting="results/search_setting/{estimator}.json",
        table=TABLE_INPUT,
        code=code("stages/search.py", "stages/estimation.py", "nasflow/search/*.py", "nasflow/estimators/*.py")
        + PLUGIN_CODE + TRAIN_CODE,
    output:
        "results/search/{strategy}_{estimator}.json",
    params:
        search=SEARCH,
        data=config["data"],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/search/{strategy}_{estimator}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.search --params {PARAMS} --strategy {wildcards.strategy} --estimator {wildcards.estimator}"
        " --out {output}"


rule bench_search:
    input:
        table=TABLE_INPUT,
        code=code("stages/bench_search.py", "nasflow/search/*.py", "nasflow/estimators/table.py") + STAGE_CODE,
    output:
        csv="results/bench_search.csv",
        summary="results/bench_search.json",
        report="results/bench_search.md",
    params:
        bench_search=config["bench_search"],
        ground_truth=config["ground_truth"],
    threads: 2
    log:
        "results/logs/bench_search.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.bench_search --params {PARAMS} --out {output.csv} --summary {output.summary}"
        " --report {output.report} >> {log}"


DIFFERENTIABLE = config["differentiable"]["methods"]
DIFFERENTIABLE_SEARCHES = [f"results/search/{m}.json" for m in DIFFERENTIABLE]


rule differentiable_search:
    input:
        code=code("stages/differentiable_search.py", "nasflow/search/differentiable.py", "nasflow/search/enas.py",
                  "nasflow/models/nb201_search.py")
        + TRAIN_CODE,
    output:
        "results/search/{method}.json",
    wildcard_constraints:
        method="gdas|darts-v1|darts-v2|rsps|setn|enas",
    params:
        differentiable=config["differentiable"],
        space=config["space"],
        data=config["data"],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/differentiable_search/{method}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.differentiable_search --params {PARAMS} --method {wildcards.method} --out {output}"
