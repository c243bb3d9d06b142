# nasflow: the whole study as one DAG. `snakemake --cores all` runs the demo (params.yaml);
# `--configfile params/paper-nb201-cifar10.yaml` the paper-scale study; `--resources gpu=N` bounds
# concurrent training jobs (each claims its own GPU; CPU when there is none).
import sys

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


if workflow.overwrite_configfiles:
    # a study file given with --configfile replaces params.yaml instead of being merged into it key by key
    # (which would mix the demo's settings into, say, the DARTS study); --config values still apply on top
    import copy

    config.clear()
    config.update(copy.deepcopy(dict(workflow.config_settings.overwrite_config)))

sys.path.insert(0, workflow.basedir)
from nasflow import __version__ as NASFLOW_VERSION
from nasflow.errors import ParamsError
from stages.params import CHOSEN_BUDGET, CHOSEN_BUDGET_FILE, validate_params, write_resolved_params

try:
    validate_params(config, "config")  # the JSON schema in workflow/schemas/ plus cross-references
except ParamsError as e:
    sys.exit(f"error: {e}")

# The stages read the resolved config (params.yaml, or the --configfile study, + --config), written only when it changes.
PARAMS = write_resolved_params(config, ".snakemake/nasflow/params.yaml")


# the front page of `snakemake --report results/report.html` (the outputs marked with report() follow it)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/rlnas.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/zero_cost.smk"
include: "workflow/rules/bpe_search.smk"
include: "workflow/rules/predictors.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/estimates.csv",
        "results/correlation.csv",
        "results/report.xlsx",
        "results/metrics.json",
        "results/plots",
        "results/found.json",
        ["results/bench_search.md"] if HAS_TABLE else [],
        BPE_SEARCH_OUTPUTS,
        PREDICTOR_OUTPUTS,


onsuccess:
    # the headline and what was skipped, on the terminal (the stage only reads results/)
    shell(f"python -m stages.summary --params {PARAMS} || true")
