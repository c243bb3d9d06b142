# Multi-trial searches (strategy x estimator) and the NAS-Bench-201 table baselines (benchmark mode).
SEARCH = config["search"]
SEARCHES = [f"results/search/{s}_{e}.json" for s in SEARCH["strategies"] for e in SEARCH["estimators"]]
HAS_TABLE = bool(config["bench_search"].get("table") or config["ground_truth"]["source"] == "table")

import re


wildcard_constraints:
    strategy="rs|rea|reinforce|bohb",
    estimator="|".join(re.escape(e) for e in SEARCH["estimators"]) or "none",


rule search_setting:
    """The setting (or table) one estimator reads, as a file its searches depend on (see stages/search_setting.py)."""
    input:
        lambda w: (
            [CHOSEN_BUDGET_FILE]
            if w.estimator == f"proxy_{CHOSEN_BUDGET}" and CHOSEN_BUDGET not in config["settings"]
            else []
        ),
        code=code("stages/search_setting.py") + STAGE_CODE,
    output:
        "results/search_setting/{estimator}.json",
    log:
        "results/logs/search_setting/{estimator}.log",
    localrule: True
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        setting=lambda w: estimator_setting(config, w.estimator, resolve=False),
    shell:
        "NASFLOW_LOG={log} python -m stages.search_setting --params {params.params_file} --estimator {wildcards.estimator} --out {output}"


rule search:
    input:
        search_inputs,
        setting="results/search_setting/{estimator}.json",
        table=TABLE_INPUT,
        code=code("stages/search.py", "stages/estimation.py", "nasflow/search/*.py", "nasflow/estimators/*.py")
        + PLUGIN_CODE
        + TRAIN_CODE,
    output:
        "results/search/{strategy}_{estimator}.json",
    log:
        "results/logs/search/{strategy}_{estimator}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        search=SEARCH,
        data=config["data"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.search --params {params.params_file} --strategy {wildcards.strategy} --estimator {wildcards.estimator}"
        " --out {output}"


rule bench_search:
    input:
        table=TABLE_INPUT,
        code=code("stages/bench_search.py", "nasflow/search/*.py", "nasflow/estimators/table.py") + STAGE_CODE,
    output:
        csv="results/bench_search.csv",
        summary="results/bench_search.json",
        report="results/bench_search.md",
    log:
        "results/logs/bench_search.log",
    conda:
        "../envs/nasflow.yaml"
    threads: 2
    params:
        params_file=PARAMS,
        bench_search=config["bench_search"],
        ground_truth=config["ground_truth"],
    shell:
        "NASFLOW_LOG={log} python -m stages.bench_search --params {params.params_file} --out {output.csv} --summary {output.summary}"
        " --report {output.report} >> {log}"


DIFFERENTIABLE = config["differentiable"]["methods"]
DIFFERENTIABLE_SEARCHES = [f"results/search/{m}.json" for m in DIFFERENTIABLE]


rule differentiable_search:
    input:
        code=code(
            "stages/differentiable_search.py",
            "nasflow/search/differentiable.py",
            "nasflow/search/enas.py",
            "nasflow/models/nb201_search.py",
        )
        + TRAIN_CODE,
    output:
        "results/search/{method}.json",
    log:
        "results/logs/differentiable_search/{method}.log",
    wildcard_constraints:
        method="gdas|darts-v1|darts-v2|rsps|setn|enas",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        differentiable=config["differentiable"],
        space=config["space"],
        data=config["data"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.differentiable_search --params {params.params_file} --method {wildcards.method} --out {output}"
