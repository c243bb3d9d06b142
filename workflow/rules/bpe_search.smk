# The BPE paper's budget search (Minimum Importance Pruning), stages/bpe_search.py. A round's settings are known
# only once its `sample` step ran (they depend on the previous round's pruning), so `bpe_search_sample` is a
# checkpoint and `bpe_search_round` asks it for the names of the trainings it waits for; each sampled setting
# trains in its own job (one `gpu` each), through the same per-arch cache as proxy_train.
BPE_SEARCH = config.get("bpe_search") or None
BPE_ROUNDS = BPE_SEARCH["rounds"] if BPE_SEARCH else 0
BPE_SEARCH_OUTPUTS = (
    expand("results/bpe_search/{name}", name=["settings.csv", "accuracies.csv", "importance.csv", "best.json"])
    if BPE_SEARCH
    else []
)
BPE_SEARCH_CODE = code("stages/bpe_search.py", "nasflow/bpe_search.py", "nasflow/analysis/correlation.py") + TRAIN_CODE


wildcard_constraints:
    r="[0-9]+",
    bpe_setting="[a-z0-9.\-]+",


rule bpe_search_base:
    """The named setting the search builds on, as a file (DVC needs it to narrow its params; kept in step)."""
    input:
        code=code("stages/bpe_search.py", "nasflow/bpe_search.py") + STAGE_CODE,
    output:
        "results/bpe_search_base.json",
    log:
        "results/logs/bpe_search/base.log",
    localrule: True
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        base=lambda w: config["settings"][BPE_SEARCH["base"]],
    shell:
        "NASFLOW_LOG={log} python -m stages.bpe_search base --params {params.params_file} --out {output}"


checkpoint bpe_search_sample:
    input:
        previous_round,
        base="results/bpe_search_base.json",
        code=code("stages/bpe_search.py", "nasflow/bpe_search.py") + STAGE_CODE,
    output:
        "results/bpe_search/round-{r}/settings.json",
    log:
        "results/logs/bpe_search/sample-{r}.log",
    localrule: True
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        bpe_search=BPE_SEARCH,
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.bpe_search sample --params {params.params_file} --round {wildcards.r}"


rule bpe_search_train:
    input:
        settings="results/bpe_search/round-{r}/settings.json",
        archs="results/archs.jsonl",
        code=BPE_SEARCH_CODE,
    output:
        "results/bpe_search/round-{r}/train/{bpe_setting}.json",
    log:
        "results/logs/bpe_search/train-{r}-{bpe_setting}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.bpe_search train --params {params.params_file} --round {wildcards.r}"
        " --setting {wildcards.bpe_setting} --archs {input.archs}"


rule bpe_search_round:
    input:
        round_trainings,
        settings="results/bpe_search/round-{r}/settings.json",
        ground_truth="results/ground_truth.json",
        code=BPE_SEARCH_CODE,
    output:
        "results/bpe_search/round-{r}/round.json",
    log:
        "results/logs/bpe_search/round-{r}.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        bpe_search=BPE_SEARCH,
    shell:
        "NASFLOW_LOG={log} python -m stages.bpe_search evaluate --params {params.params_file} --round {wildcards.r}"
        " --ground-truth {input.ground_truth}"


rule bpe_search_report:
    input:
        rounds=expand("results/bpe_search/round-{r}/round.json", r=range(BPE_ROUNDS)),
        ground_truth="results/ground_truth.json",
        code=BPE_SEARCH_CODE,
    output:
        BPE_SEARCH_OUTPUTS,
    log:
        "results/logs/bpe_search/report.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        bpe_search=BPE_SEARCH,
    shell:
        "NASFLOW_LOG={log} python -m stages.bpe_search report --params {params.params_file} --ground-truth {input.ground_truth}"
