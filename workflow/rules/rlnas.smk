# RLNAS: a supernet per label kind (random | true), archs scored by angle and supernet accuracy, and an
# evolution search per label kind x indicator (the paper's Table 1 ablation as a matrix of the DAG).
LABELS = config["supernet"]["labels"]
ARCH_SETS = config["supernet"]["arch_sets"]
INDICATORS = config["evolution"]["indicators"]
SUPERNET_SETTING = config["settings"][config["supernet"]["setting"]]
RLNAS_CODE = (
    code(
        "nasflow/estimators/rlnas.py",
        "nasflow/estimators/angle.py",
        "nasflow/estimators/darts_angle.py",
        "nasflow/estimators/mobilenet_angle.py",
        "nasflow/estimators/supernet_acc.py",
    )
    + TRAIN_CODE
)
RLNAS_SEARCHES = [f"results/search/rlnas_{l}_{i}.json" for l in LABELS for i in INDICATORS]


wildcard_constraints:
    labels="random|true",
    arch_set="sampled|all",
    indicator="angle|supernet_acc",


rule supernet_train:
    input:
        code=code("stages/supernet_train.py") + RLNAS_CODE,
    output:
        init="results/supernet/{labels}/init.pt",
        final="results/supernet/{labels}/final.pt",
    log:
        "results/logs/supernet_train/{labels}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        setting=SUPERNET_SETTING,
        grad_reset=config["supernet"]["grad_reset"],
        space=config["space"],
        data=config["data"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.supernet_train --params {params.params_file} --labels {wildcards.labels}"
        " --out-dir results/supernet/{wildcards.labels}"


rule score_archs:
    input:
        archs="results/archs.jsonl",
        final="results/supernet/{labels}/final.pt",
        code=code("stages/score_archs.py") + RLNAS_CODE,
    output:
        "results/scores/{labels}-{arch_set}/shard-{i}-of-{n}.json",
    log:
        "results/logs/score_archs/{labels}-{arch_set}-{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        supernet=config["supernet"],
    shell:
        "NASFLOW_LOG={log} python -m stages.score_archs --params {params.params_file} --labels {wildcards.labels}"
        " --supernet-dir results/supernet/{wildcards.labels} --arch-set {wildcards.arch_set} --archs {input.archs}"
        " --shard {wildcards.i}/{wildcards.n} --out {output}"


rule gather_scores:
    input:
        lambda w: shards(
            "results/scores/{labels}-{arch_set}/shard-{i}-of-{n}.json", labels=w.labels, arch_set=w.arch_set
        ),
    output:
        "results/scores/{labels}-{arch_set}.json",
    log:
        "results/logs/gather/scores-{labels}-{arch_set}.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"


rule evolution_search:
    input:
        final="results/supernet/{labels}/final.pt",
        code=code("stages/evolution_search.py", "nasflow/search/rlnas_evolution.py") + RLNAS_CODE,
    output:
        "results/search/rlnas_{labels}_{indicator}.json",
    log:
        "results/logs/evolution_search/{labels}_{indicator}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        supernet=config["supernet"],
        evolution={k: v for k, v in config["evolution"].items() if k != "indicators"},
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.evolution_search --params {params.params_file} --labels {wildcards.labels}"
        " --indicator {wildcards.indicator} --supernet-dir results/supernet/{wildcards.labels} --out {output}"
