# Per-architecture training, fanned out in shards (`--shard i/n`) and merged by a gather rule.
# Training rules ask for one `gpu` each: `--resources gpu=N` bounds how many run at once; the stage itself
# claims a free device (Snakemake assigns no device ids). With `parallel.jobs_per_gpu: K` up to K jobs share
# one GPU (each claims one of its K slots, spreading over the GPUs first), so on G GPUs run
# `snakemake --resources gpu=<G*K>`: `gpu` then counts slots, not GPUs. More jobs than G*K just wait for a slot.


rule proxy_train:
    input:
        chosen_budget,
        archs="results/archs.jsonl",
        code=code("stages/proxy_train.py") + TRAIN_CODE,
    output:
        "results/proxy/{setting}/shard-{i}-of-{n}.json",
    log:
        "results/logs/proxy_train/{setting}-{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        params_file=PARAMS,
        setting=lambda w: config["settings"].get(w.setting, CHOSEN_BUDGET_FILE),
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.proxy_train --params {params.params_file} --setting {wildcards.setting}"
        " --shard {wildcards.i}/{wildcards.n} --archs {input.archs} --out {output}"


rule gather_proxy:
    input:
        lambda w: shards("results/proxy/{setting}/shard-{i}-of-{n}.json", setting=w.setting),
    output:
        "results/proxy/{setting}.json",
    log:
        "results/logs/gather/proxy-{setting}.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"


GT_SHARDS = SHARDS if config["ground_truth"]["source"] == "retrain" else 1


rule build_table:
    input:
        code=code("stages/build_table.py", "nasflow/bench_build.py") + STAGE_CODE,
    output:
        directory("results/table"),
    log:
        "results/logs/build_table.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        build_from=config["ground_truth"].get("build_from"),
    shell:
        "NASFLOW_LOG={log} python -m stages.build_table --params {params.params_file} --out {output}"


rule ground_truth:
    input:
        archs="results/archs.jsonl",
        table=TABLE_INPUT,
        code=code("stages/ground_truth.py", "nasflow/bench.py") + TRAIN_CODE,
    output:
        "results/ground_truth/shard-{i}-of-{n}.json",
    log:
        "results/logs/ground_truth/{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1 if config["ground_truth"]["source"] == "retrain" else 0,
    params:
        params_file=PARAMS,
        ground_truth=ground_truth_params,
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.ground_truth --params {params.params_file} --shard {wildcards.i}/{wildcards.n}"
        " --archs {input.archs} --out {output}"


rule gather_ground_truth:
    input:
        shards("results/ground_truth/shard-{i}-of-{n}.json", n=GT_SHARDS),
    output:
        "results/ground_truth.json",
    log:
        "results/logs/gather/ground_truth.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"
