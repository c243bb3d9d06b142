# Zero-cost proxies on an untrained network and one seeded batch, sharded per arch set (`--shard i/n`, every n-th
# arch): `all` (15,625 NB201 cells) spreads over zero_cost.shards jobs, so a cluster runs it in parallel.
ZERO_COST = config["zero_cost"]
ZERO_COST_SETS = ZERO_COST["arch_sets"] if ZERO_COST["proxies"] else []
ZERO_COST_CODE = (
    code(
        "stages/zero_cost.py",
        "stages/estimation.py",
        "stages/training.py",
        "nasflow/estimators/zero_cost.py",
        "nasflow/estimators/zero_cost_2022.py",
        "nasflow/estimators/zero_cost_hooks.py",
        "nasflow/data.py",
        "nasflow/devices.py",
        "nasflow/counting.py",
        "nasflow/registry.py",
        "nasflow/spaces/*.py",
        "nasflow/models/*.py",
    )
    + STAGE_CODE
)


wildcard_constraints:
    zc_set="sampled|extra|all",


rule zero_cost:
    input:
        archs="results/archs.jsonl",
        code=ZERO_COST_CODE,
    output:
        "results/zero_cost/{zc_set}/shard-{i}-of-{n}.json",
    log:
        "results/logs/zero_cost/{zc_set}-{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        zero_cost=ZERO_COST,
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.zero_cost --params {params.params_file} --arch-set {wildcards.zc_set}"
        " --shard {wildcards.i}/{wildcards.n} --archs {input.archs} --out {output}"


rule gather_zero_cost:
    input:
        lambda w: shards("results/zero_cost/{zc_set}/shard-{i}-of-{n}.json", n=ZERO_COST["shards"], zc_set=w.zc_set),
    output:
        "results/zero_cost/{zc_set}.json",
    log:
        "results/logs/gather/zero_cost-{zc_set}.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"
