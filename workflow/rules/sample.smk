rule sample_archs:
    input:
        code("stages/sample_archs.py", "nasflow/spaces/*.py") + STAGE_CODE,
    output:
        "results/archs.jsonl",
    log:
        "results/logs/sample_archs.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        space=config["space"],
        sample=config["sample"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.sample_archs --params {params.params_file} --out {output}"
