rule sample_archs:
    input:
        code("stages/sample_archs.py", "nasflow/spaces/*.py") + STAGE_CODE,
    output:
        "results/archs.jsonl",
    params:
        space=config["space"],
        sample=config["sample"],
        seed=config["seed"],
    log:
        "results/logs/sample_archs.log",
    shell:
        "NASFLOW_LOG={log} python -m stages.sample_archs --params {PARAMS} --out {output}"
