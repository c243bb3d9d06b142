rule found_ground_truth:
    input:
        searches=RLNAS_SEARCHES + SEARCHES + DIFFERENTIABLE_SEARCHES,
        table=TABLE_INPUT,
        code=code("stages/found_ground_truth.py", "nasflow/bench.py") + TRAIN_CODE,
    output:
        "results/found/shard-{i}-of-{n}.json",
    log:
        "results/logs/found_ground_truth/{i}-of-{n}.log",
    conda:
        "../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=1 if config["ground_truth"]["source"] == "retrain" else 0,
    params:
        params_file=PARAMS,
        ground_truth=ground_truth_params,
        data=config["data"],
        seed=config["seed"],
    shell:
        "NASFLOW_LOG={log} python -m stages.found_ground_truth --params {params.params_file} --search-dir results/search"
        " --shard {wildcards.i}/{wildcards.n} --out {output}"


rule gather_found:
    input:
        shards("results/found/shard-{i}-of-{n}.json", n=GT_SHARDS),
    output:
        "results/found.json",
    log:
        "results/logs/gather/found.log",
    conda:
        "../envs/nasflow.yaml"
    shell:
        "NASFLOW_LOG={log} python -m stages.gather --out {output} {input}"


rule correlate:
    input:
        proxy=expand("results/proxy/{setting}.json", setting=PROXY_SETTINGS),
        scores=expand("results/scores/{labels}-{arch_set}.json", labels=LABELS, arch_set=ARCH_SETS),
        zero_cost=expand("results/zero_cost/{zc_set}.json", zc_set=ZERO_COST_SETS),
        differentiable=[
            f"results/search/{m}.json" for m in DIFFERENTIABLE if f"alpha_{m}" in config["estimators"]["extra"]
        ],
        ground_truth="results/ground_truth.json",
        table=TABLE_INPUT,
        code=code(
            "stages/correlate.py",
            "stages/estimation.py",
            "nasflow/analysis/correlation.py",
            "nasflow/estimators/registry.py",
            "nasflow/estimators/builtin.py",
            "nasflow/estimators/estimate.py",
            "nasflow/estimators/learning_curve.py",
            "nasflow/estimators/table.py",
        )
        + PLUGIN_CODE
        + STAGE_CODE,
    output:
        estimates=report("results/estimates.csv", category=REPORT_TABLES, caption="../report/estimates.rst"),
        correlation=report("results/correlation.csv", category=REPORT_TABLES, caption="../report/correlation.rst"),
    log:
        "results/logs/correlate.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        report=config["report"],
        seed=config["seed"],
        proxy=PROXY_SETTINGS,
        supernet=config["supernet"],
        estimators=config["estimators"],
        zero_cost=ZERO_COST,
        table_column=config["search"]["table_column"],
    shell:
        "NASFLOW_LOG={log} python -m stages.correlate --params {params.params_file} --proxy-dir results/proxy --scores-dir results/scores"
        " --zero-cost-dir results/zero_cost --ground-truth {input.ground_truth} --estimates {output.estimates}"
        " --correlation {output.correlation}"


rule report:
    input:
        estimates="results/estimates.csv",
        correlation="results/correlation.csv",
        found="results/found.json",
        searches=SEARCHES + DIFFERENTIABLE_SEARCHES,
        # the per-arch results behind estimates.csv: the `diverged` sheet reads their epochs
        proxy=expand("results/proxy/{setting}.json", setting=PROXY_SETTINGS),
        scores=expand("results/scores/{labels}-sampled.json", labels=LABELS) if "sampled" in ARCH_SETS else [],
        ground_truth="results/ground_truth.json",
        bpe_search=BPE_SEARCH_OUTPUTS,
        table=TABLE_INPUT,
        predictors=PREDICTOR_OUTPUTS,
        code=code(
            "stages/report.py",
            "nasflow/analysis/report.py",
            "nasflow/analysis/frontier.py",
            "nasflow/analysis/html.py",
            "nasflow/analysis/workbook.py",
            "nasflow/analysis/plots.py",
            "nasflow/analysis/result_warnings.py",
            "nasflow/analysis/predictor_sheet.py",
            "nasflow/estimators/registry.py",
            "nasflow/estimators/builtin.py",
            "nasflow/estimators/estimate.py",
        )
        + PLUGIN_CODE
        + STAGE_CODE,
    output:
        xlsx=report("results/report.xlsx", category=REPORT_TABLES, caption="../report/workbook.rst"),
        metrics="results/metrics.json",
        # every figure and page of the folder in the HTML report, each under its family with its own caption
        plots=report(
            directory("results/plots"),
            patterns=["{figure}.png", "{page}.html"],
            category=report_category,
            caption="../report/plots.rst",
        ),
    log:
        "results/logs/report.log",
    conda:
        "../envs/nasflow.yaml"
    params:
        params_file=PARAMS,
        settings=lambda w: {s: config["settings"].get(s, CHOSEN_BUDGET_FILE) for s in PROXY_SETTINGS},
        ground_truth=config["ground_truth"],
        search=config["search"],
        differentiable=config["differentiable"]["methods"],
        supernet=config["supernet"],
        bpe_search=config.get("bpe_search"),
        version=NASFLOW_VERSION,  # the workbook's about sheet names it: a new version rewrites the report
    shell:
        "NASFLOW_LOG={log} python -m stages.report --params {params.params_file} --estimates {input.estimates} --correlation {input.correlation}"
        " --found {input.found} --search-dir results/search --xlsx {output.xlsx} --plots {output.plots} --metrics {output.metrics}"
        " --proxy-dir results/proxy --scores-dir results/scores --ground-truth {input.ground_truth}"
