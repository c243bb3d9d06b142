import glob

SHARDS = config["parallel"]["shards"]
PROXY_SETTINGS = config["proxy"]["settings"]


def code(*patterns):
    """The source files a stage runs: editing one of them reruns the stage (and only the stages using it)."""
    return sorted(f for p in patterns for f in glob.glob(p))


def plugin_files(modules):
    """The source files of `estimators.plugins` (modules under this folder); an installed package is not tracked."""
    return [f for m in modules for f in glob.glob(m.replace(".", "/") + ".py")]


PLUGIN_CODE = plugin_files(config["estimators"]["plugins"])
STAGE_CODE = ["stages/common.py", "nasflow/errors.py", "workflow/schemas/params.schema.yaml"]
TRAIN_CODE = code("stages/training.py", "nasflow/estimators/proxy.py", "nasflow/train.py", "nasflow/data.py",
                  "nasflow/devices.py", "nasflow/spaces/*.py", "nasflow/models/*.py") + STAGE_CODE


# the ground-truth table the build_table stage converts from an official release (ground_truth.build_from):
# an input of every rule that reads the table; nothing when the study names a table file itself
TABLE_INPUT = ["results/table"] if config["ground_truth"].get("build_from") else []


def shards(pattern, n=SHARDS, **wildcards):
    return [pattern.format(i=i, n=n, **wildcards) for i in range(n)]


wildcard_constraints:
    setting="[a-z][a-z0-9_]*",
    i="[0-9]+",
    n="[0-9]+",
