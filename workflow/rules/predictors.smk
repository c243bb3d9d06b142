# Model-based predictors trained on cells of the ground-truth table, sharded over predictor x size x trial.
PREDICTORS = config["predictors"]
PREDICTOR_OUTPUTS = ["results/predictors.json"]  # empty results when predictors.names is [] (as under DVC)
PREDICTOR_SHARDS = PREDICTORS["shards"] if PREDICTORS["names"] or PREDICTORS["hybrids"] else 1
# the hybrids train on the cells the zero_cost stage scored beyond the study's own (stages.estimation.zero_cost_pool)
HYBRID_POOL = (
    ["results/zero_cost/" + ("all" if "all" in config["zero_cost"]["arch_sets"] else "extra") + ".json"]
    if PREDICTORS["hybrids"]
    else []
)


rule predictors:
    input:
        table=TABLE_INPUT,
        zero_cost=HYBRID_POOL,
        code=code(
            "stages/predictors.py",
            "stages/estimation.py",
            "nasflow/estimators/predictors.py",
            "nasflow/estimators/table.py",
            "nasflow/spaces/encodings.py",
            "nasflow/bench.py",
        )
        + STAGE_CODE,
    output:
        "results/predictors/shard-{i}-of-{n}.json",
    log:
        "results/logs/predictors/{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: 1
    params:
        params_file=PARAMS,
        predictors=PREDICTORS,
        ground_truth=config["ground_truth"],
        zero_cost=config["zero_cost"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.predictors --params {params.params_file} --shard {wildcards.i}/{wildcards.n} --out {output}"


rule gather_predictors:
    input:
        shards("results/predictors/shard-{i}-of-{n}.json", n=PREDICTOR_SHARDS),
    output:
        "results/predictors.json",
    log:
        "results/logs/gather/predictors.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"
