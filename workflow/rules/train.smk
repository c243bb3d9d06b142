# Per-architecture training, fanned out in shards (`--shard i/n`) and merged by a gather rule.
# Training rules ask for one `gpu` each: `--resources gpu=N` bounds how many run at once; the stage itself
# claims a free device (Snakemake assigns no device ids). With `parallel.jobs_per_gpu: K` up to K jobs share
# one GPU (each claims one of its K slots, spreading over the GPUs first), so on G GPUs run
# `snakemake --resources gpu=<G*K>`: `gpu` then counts slots, not GPUs. More jobs than G*K just wait for a slot.


def chosen_budget(w):
    """`bpe_search` in proxy.settings, not defined under settings: the budget search's choice (its best.json)."""
    return [CHOSEN_BUDGET_FILE] if w.setting not in config["settings"] else []


rule proxy_train:
    input:
        chosen_budget,
        archs="results/archs.jsonl",
        code=code("stages/proxy_train.py") + TRAIN_CODE,
    output:
        "results/proxy/{setting}/shard-{i}-of-{n}.json",
    params:
        setting=lambda w: config["settings"].get(w.setting, CHOSEN_BUDGET_FILE),
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/proxy_train/{setting}-{i}-of-{n}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.proxy_train --params {PARAMS} --setting {wildcards.setting}"
        " --shard {wildcards.i}/{wildcards.n} --archs {input.archs} --out {output}"


rule gather_proxy:
    input:
        lambda w: shards("results/proxy/{setting}/shard-{i}-of-{n}.json", setting=w.setting),
    output:
        "results/proxy/{setting}.json",
    log:
        "results/logs/gather/proxy-{setting}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"


def ground_truth_params(_):
    gt = config["ground_truth"]
    return {"ground_truth": gt, "setting": config["settings"].get(gt.get("setting"))}


GT_SHARDS = SHARDS if config["ground_truth"]["source"] == "retrain" else 1


rule build_table:
    input:
        code=code("stages/build_table.py", "nasflow/bench_build.py") + STAGE_CODE,
    output:
        directory("results/table"),
    params:
        build_from=config["ground_truth"].get("build_from"),
    log:
        "results/logs/build_table.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.build_table --params {PARAMS} --out {output}"


rule ground_truth:
    input:
        archs="results/archs.jsonl",
        table=TABLE_INPUT,
        code=code("stages/ground_truth.py", "nasflow/bench.py") + TRAIN_CODE,
    output:
        "results/ground_truth/shard-{i}-of-{n}.json",
    params:
        ground_truth=ground_truth_params,
        data=config["data"],
        space=config["space"],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        gpu=1 if config["ground_truth"]["source"] == "retrain" else 0,
    log:
        "results/logs/ground_truth/{i}-of-{n}.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.ground_truth --params {PARAMS} --shard {wildcards.i}/{wildcards.n}"
        " --archs {input.archs} --out {output}"


rule gather_ground_truth:
    input:
        shards("results/ground_truth/shard-{i}-of-{n}.json", n=GT_SHARDS),
    output:
        "results/ground_truth.json",
    log:
        "results/logs/gather/ground_truth.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"
