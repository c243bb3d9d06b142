"""What every stage shares: loading and validating params.yaml, the one-line error contract, atomic writes,
shard parsing and the provenance record. Stages are thin: options -> params -> library call -> artifact."""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from nasflow.errors import NasflowError, ParamsError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_params(params: Any, source: str = "params.yaml") -> dict:
    """Check params against the JSON schema and the cross-references the schema cannot express.

    Raises ParamsError with one line naming the offending key. Fills schema defaults into settings.
    """
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    sn = params.get("supernet") if isinstance(params, dict) else None
    if isinstance(sn, dict) and isinstance(sn.get("labels"), list):  # YAML reads an unquoted true as a boolean
        sn["labels"] = ["true" if v is True else v for v in sn["labels"]]
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        raise ParamsError(f"{source}: {_dotted(error.absolute_path)}: {error.message}")
    settings = params["settings"]
    for name in params["proxy"]["settings"]:
        if name not in settings:
            raise ParamsError(f"{source}: proxy.settings: unknown setting {name!r} (defined: {', '.join(settings)})")
    gt = params["ground_truth"]
    required = {"retrain": ["setting"], "table": ["path", "column"]}[gt["source"]]
    for key in required:
        if key not in gt:
            raise ParamsError(f"{source}: ground_truth.{key}: required when source is {gt['source']!r}")
    if gt["source"] == "retrain" and gt["setting"] not in settings:
        raise ParamsError(f"{source}: ground_truth.setting: unknown setting {gt['setting']!r}")
    if params["supernet"]["setting"] not in settings:
        raise ParamsError(f"{source}: supernet.setting: unknown setting {params['supernet']['setting']!r}")
    if params["supernet"]["setting"] in params["proxy"]["settings"]:
        raise ParamsError(f"{source}: supernet.setting: {params['supernet']['setting']!r} is also a proxy setting; give the supernet its own")
    for key, spec in schema["properties"]["supernet"]["properties"].items():
        if "default" in spec:
            params["supernet"].setdefault(key, spec["default"])
    for name in params["search"]["estimators"]:
        ok = (name.startswith("proxy_") and name[len("proxy_"):] in settings) or name == "table" or any(
            name == f"{ind}_{lab}" for ind in ("angle", "supernet_acc") for lab in params["supernet"]["labels"])
        if not ok:
            raise ParamsError(f"{source}: search.estimators: unknown estimator {name!r} (use proxy_<setting>, table, "
                              f"or angle_<labels> / supernet_acc_<labels> for a label kind in supernet.labels)")
        if name == "table" and not table_path(params):
            raise ParamsError(f"{source}: search.estimators: 'table' needs bench_search.table or a ground-truth table")
    params["search"].setdefault("table_column", "cifar10_test_acc_12ep_one_seed")
    if params["space"] != "nb201":  # the NB201 table and the enumeration of all cells exist for NB201 only
        if params["ground_truth"]["source"] == "table":
            raise ParamsError(f"{source}: ground_truth.source: the table holds NB201 cells; use retrain in the {params['space']} space")
        if "table" in params["search"]["estimators"]:
            raise ParamsError(f"{source}: search.estimators: 'table' holds NB201 cells only")
        if "all" in params["supernet"]["arch_sets"]:
            raise ParamsError(f"{source}: supernet.arch_sets: 'all' enumerates the nb201 space only; the {params['space']} space is too large (use [sampled])")
        if "setn" in params["differentiable"]["methods"]:
            raise ParamsError(f"{source}: differentiable.methods: setn ranks every cell of the space, nb201 only (use gdas, darts-v1, darts-v2, rsps)")
        if "enas" in params["differentiable"]["methods"]:
            raise ParamsError(f"{source}: differentiable.methods: enas runs in the nb201 space only (its controller samples NB201 cells; use gdas, darts-v1, darts-v2, rsps)")
    depth_key, other = {"nb201": ("cells_per_stage", "layers"), "darts": ("layers", "cells_per_stage")}[params["space"]]
    diff = params["differentiable"]
    section = schema["properties"]["differentiable"]
    per_method = {"type": "object", "additionalProperties": False, "properties": {
        k: v for k, v in section["properties"].items() if k not in ("methods", "overrides", "cells_per_stage", "layers")}}
    for method, values in diff.get("overrides", {}).items():
        if method not in section["properties"]["methods"]["items"]["enum"]:
            raise ParamsError(f"{source}: differentiable.overrides: unknown method {method!r}")
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(per_method).iter_errors(values))
        if error is not None:
            where = ".".join(["differentiable", "overrides", method, *map(str, error.absolute_path)])
            raise ParamsError(f"{source}: {where}: {error.message}")
    if other in diff:
        raise ParamsError(f"{source}: differentiable.{other}: not a key of the {params['space']} space (use {depth_key})")
    if depth_key not in diff:
        raise ParamsError(f"{source}: differentiable.{depth_key}: required in the {params['space']} space")
    for name, setting in settings.items():
        if other in setting:
            raise ParamsError(f"{source}: settings.{name}.{other}: not a key of the {params['space']} space (use {depth_key})")
        if depth_key not in setting:
            raise ParamsError(f"{source}: settings.{name}.{depth_key}: required in the {params['space']} space")
        for key, spec in schema["$defs"]["setting"]["properties"].items():
            if "default" in spec:
                setting.setdefault(key, spec["default"])
    if params["data"]["dataset"] == "npz" and not params["data"].get("path"):
        raise ParamsError(f"{source}: data.path: required when data.dataset is 'npz'")
    for key, spec in schema["properties"]["data"]["properties"].items():
        if "default" in spec:
            params["data"].setdefault(key, spec["default"])
    params["report"].setdefault("bootstrap", 1000)
    return params


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except yaml.YAMLError as e:
        line = f" (line {e.problem_mark.line + 1})" if getattr(e, "problem_mark", None) else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of parameters")
    return validate_params(params, str(path))


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return i, n


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    return p


def provenance(params: dict, **extra) -> dict:
    """What made an artifact: the parameters, versions, host and command line."""
    import torch

    import nasflow

    return {
        "nasflow": nasflow.__version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "host": platform.node(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "params": params,
        **extra,
    }


def atomic_path(path: str | os.PathLike) -> "_Atomic":
    """Context manager yielding a temporary path next to `path`; renamed into place only on success."""
    return _Atomic(Path(path))


class _Atomic:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def plain(obj):
    """Only JSON types (e.g. for checkpoint metadata that torch.load(weights_only=True) must accept)."""
    return json.loads(json.dumps(obj, default=str))


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")


def read_json(path) -> Any:
    from nasflow.errors import CheckpointError

    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing input file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"corrupt input file (not JSON): {path}") from None


def main_guard(func: Callable[[], None]) -> Callable[[], None]:
    """Run a stage's main: user errors become one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper():
        try:
            func()
        except NasflowError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def configure_torch(params: dict) -> None:
    """Same thread count in every job, so results do not depend on how the work is sharded."""
    import torch

    torch.set_num_threads(params["threads"])


def write_resolved_params(config: dict, path: str | os.PathLike) -> str:
    """Write the engine's merged config for the stages to read; untouched when unchanged (no spurious reruns)."""
    path = Path(path)
    text = yaml.safe_dump(config, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)


def search_names(params: dict) -> list[str]:
    """Every search the params ask for; each writes results/search/<name>.json."""
    return ([f"rlnas_{labels}_{indicator}" for labels in params["supernet"]["labels"]
             for indicator in params["evolution"]["indicators"]]
            + [f"{s}_{e}" for s in params["search"]["strategies"] for e in params["search"]["estimators"]]
            + list(params["differentiable"]["methods"]))


def table_path(params: dict) -> str | None:
    """The NB201 table for table estimators and benchmark mode: bench_search.table, else the ground-truth table."""
    path = params.get("bench_search", {}).get("table")
    if not path and params["ground_truth"]["source"] == "table":
        path = params["ground_truth"]["path"]
    return path


def supernet_estimators(params: dict) -> list[tuple[str, str, str]]:
    """(column name, label kind, indicator) of the supernet estimators: `angle`, `supernet_acc` for one label
    kind, `<indicator>_<labels>` when both run."""
    labels = params["supernet"]["labels"]
    return [(ind if len(labels) == 1 else f"{ind}_{lab}", lab, ind) for lab in labels for ind in ("angle", "supernet_acc")]
