rule correlate:
    input:
        proxy=expand("results/proxy/{setting}.json", setting=PROXY_SETTINGS),
        ground_truth="results/ground_truth.json",
        code=code("stages/correlate.py", "nasflow/analysis/correlation.py") + STAGE_CODE,
    output:
        estimates="results/estimates.csv",
        correlation="results/correlation.csv",
    params:
        report=config["report"],
        seed=config["seed"],
        proxy=PROXY_SETTINGS,
    shell:
        "python -m stages.correlate --params {PARAMS} --proxy-dir results/proxy"
        " --ground-truth {input.ground_truth} --estimates {output.estimates} --correlation {output.correlation}"


rule report:
    input:
        estimates="results/estimates.csv",
        correlation="results/correlation.csv",
        code=code("stages/report.py", "nasflow/analysis/report.py") + STAGE_CODE,
    output:
        xlsx="results/report.xlsx",
        metrics="results/metrics.json",
        plots=directory("results/plots"),
    params:
        settings=lambda w: {s: config["settings"][s] for s in PROXY_SETTINGS},
        ground_truth=config["ground_truth"],
    shell:
        "python -m stages.report --params {PARAMS} --estimates {input.estimates} --correlation {input.correlation}"
        " --xlsx {output.xlsx} --plots {output.plots} --metrics {output.metrics}"
