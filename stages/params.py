"""params.yaml: loading it, validating it against workflow/schemas/params.schema.yaml (plus the cross-references
the schema cannot state), filling the schema's defaults, and reading what the stages need from it."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from nasflow.errors import CheckpointError, ParamsError
from stages.artifacts import atomic_path, read_results

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
# setting keys whose defaults (neutral: momentum 0.9, no Nesterov, no clipping) a protocol should not leave
# implicit: validate_params says on stderr which of them it filled in
PROTOCOL_KEYS = ("momentum", "nesterov", "grad_clip")
# proxy.settings (and proxy_<setting> estimators) may name the budget search's choice, read from its best.json
CHOSEN_BUDGET = "bpe_search"
CHOSEN_BUDGET_FILE = "results/bpe_search/best.json"


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_error(error) -> tuple[list, str]:
    """(path, message) of a jsonschema error; an unknown key names itself and the nearest allowed key."""
    import difflib
    import re

    known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and error.validator_value is False and isinstance(error.instance, dict):
        patterns = error.schema.get("patternProperties", {})
        unknown = [k for k in error.instance if k not in known and not any(re.search(p, str(k)) for p in patterns)]
        if unknown:
            key = str(unknown[0])
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {near[0]}?" if near else (f"known: {', '.join(known)}" if known else "no keys allowed")
            return [*error.absolute_path, key], f"unknown key ({hint})"
    return list(error.absolute_path), error.message


@functools.lru_cache(maxsize=2)
def _parsed_schema(stamp) -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _schema() -> dict:
    """The params schema, parsed once per version of the file (a copy: validation fills defaults from it)."""
    import copy

    st = SCHEMA.stat()
    return copy.deepcopy(_parsed_schema((st.st_mtime_ns, st.st_size)))


def validate_params(params: Any, source: str = "params.yaml") -> dict:
    """Check params against the JSON schema and the cross-references the schema cannot express.

    Raises ParamsError with one line naming the offending key. Fills schema defaults into settings;
    when one of PROTOCOL_KEYS was left out, one line per setting on stderr names what was filled in.
    """
    import jsonschema

    schema = _schema()
    sn = params.get("supernet") if isinstance(params, dict) else None
    if isinstance(sn, dict) and isinstance(sn.get("labels"), list):  # YAML reads an unquoted true as a boolean
        sn["labels"] = ["true" if v is True else v for v in sn["labels"]]
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        path, message = _schema_error(error)
        raise ParamsError(f"{source}: {_dotted(path)}: {message}")
    settings = params["settings"]
    params.setdefault("bpe_search", None)
    if params["bpe_search"]:
        from nasflow.bpe_search import validate as validate_bpe_search

        try:
            params["bpe_search"] = validate_bpe_search(params["bpe_search"], space_name=params["space"],
                                                       settings=settings)
        except ParamsError as e:
            raise ParamsError(f"{source}: {e}") from None
        if params["bpe_search"]["n_archs"] > params["sample"]["n_archs"]:
            raise ParamsError(f"{source}: bpe_search.n_archs: {params['bpe_search']['n_archs']} archs, but "
                              f"sample.n_archs samples only {params['sample']['n_archs']}")
    chosen = [CHOSEN_BUDGET] if params["bpe_search"] and CHOSEN_BUDGET not in settings else []
    for name in params["proxy"]["settings"]:
        if name not in settings and name not in chosen:
            raise ParamsError(f"{source}: proxy.settings: unknown setting {name!r} (defined: {', '.join(settings)})")
    gt = params["ground_truth"]
    gt.setdefault("build_from", None)
    if gt["build_from"]:
        if gt["source"] != "table":
            raise ParamsError(f"{source}: ground_truth.build_from: a release to convert needs source: table")
        if gt.get("path") not in (None, BUILT_TABLE):
            raise ParamsError(f"{source}: ground_truth.path: give path (a table) or build_from (a release), not both")
        gt["path"] = BUILT_TABLE  # the build_table stage's output
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
    params["search"].setdefault("table_column", "cifar10_test_acc_12ep_one_seed")
    for section in ("estimators", "zero_cost", "predictors"):
        params[section] = _with_defaults(params.get(section) or {}, schema["properties"][section])
    if params["predictors"]["names"] and gt["source"] != "table":
        raise ParamsError(f"{source}: predictors.names: the predictors train on a ground-truth table "
                          "(ground_truth.source: table)")
    _check_estimators(params, settings=[*settings, *chosen], source=source)
    _check_hybrids(params, source)
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
    if params["space"] == "mobilenet" and params["differentiable"]["methods"]:
        raise ParamsError(f"{source}: differentiable.methods: the differentiable searches run in the nb201 and darts spaces only (use [] in the mobilenet space)")
    if params["evolution"].get("max_flops") is not None and params["space"] != "mobilenet":
        raise ParamsError(f"{source}: evolution.max_flops: a FLOPs limit applies in the mobilenet space only (use null)")
    if params["space"] == "mobilenet":
        _check_mobilenet_settings(settings, source)
    else:
        _check_depth_keys(params, schema, source)
    if params["data"]["dataset"] in ("npz", "imagenet") and not params["data"].get("path"):
        raise ParamsError(f"{source}: data.path: required when data.dataset is {params['data']['dataset']!r}")
    for key, spec in schema["properties"]["data"]["properties"].items():
        if "default" in spec:
            params["data"].setdefault(key, spec["default"])
    params["report"].setdefault("bootstrap", 1000)
    params["parallel"].setdefault("jobs_per_gpu", 1)
    return params


def _with_defaults(section: dict, spec: dict) -> dict:
    """`section` with the schema's defaults filled in, nested objects included."""
    out = dict(section)
    for key, sub in spec.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = _with_defaults(out.get(key) or {}, sub)
        elif "default" in sub:
            out.setdefault(key, sub["default"])
    return out


def _check_hybrids(params: dict, source: str) -> None:
    """The hybrid predictors (predictors.hybrids, pred_<predictor>_<set>_n<k>) name feature sets of
    predictors.features, whose members are zero-cost proxies the zero_cost stage scores on the cells they need, or
    tabular estimators."""
    from nasflow.estimators import registry

    proxies = _schema()["properties"]["zero_cost"]["properties"]["proxies"]["items"]["enum"]  # no torch import here
    pr, zc = params["predictors"], params["zero_cost"]
    uses = [("predictors.hybrids", h, h.partition("_")[2]) for h in pr["hybrids"]]
    for name in params["estimators"]["extra"] + params["search"]["estimators"]:
        m = re.fullmatch(r"pred_[a-z]+_([a-z][a-z0-9]*)_n[0-9]+", name)
        if m:
            uses.append(("estimators.extra", name, m.group(1)))
    for key, name, fset in uses:
        if fset not in pr["features"]:
            raise ParamsError(f"{source}: {key}: {name}: no feature set {fset!r} in predictors.features "
                              f"(defined: {', '.join(pr['features']) or 'none'})")
    if uses and params["ground_truth"]["source"] != "table":
        raise ParamsError(f"{source}: {uses[0][0]}: {uses[0][1]}: the hybrid predictors train on a ground-truth "
                          "table (ground_truth.source: table)")
    query_sets = {fset for key, _, fset in uses if key == "estimators.extra"}
    for fset, members in pr["features"].items():
        for m in members:
            where = f"{source}: predictors.features.{fset}: {m}"
            if m in proxies:
                if m not in zc["proxies"]:
                    raise ParamsError(f"{where}: the zero_cost stage computes it: add it to zero_cost.proxies")
                if not {"extra", "all"} & set(zc["arch_sets"]):
                    raise ParamsError(f"{where}: the training cells' scores come from zero_cost.arch_sets extra or all")
                if fset in query_sets and "sampled" not in zc["arch_sets"]:
                    raise ParamsError(f"{where}: the study's cells' scores come from zero_cost.arch_sets sampled")
                continue
            try:
                family = registry.get(m).family
            except ParamsError as e:
                raise ParamsError(f"{where}: {e}") from None
            if family != "table":
                raise ParamsError(f"{where}: a feature is a zero-cost proxy or a tabular estimator (this is {family})")


def _registered(registry, name: str) -> bool:
    try:
        registry.get(name)
        return True
    except ParamsError:
        return False


def _check_estimators(params: dict, *, settings: list[str], source: str) -> None:
    """Every estimator named in search.estimators, estimators.extra and estimators.ensembles is registered and has
    what it needs (nasflow.estimators.registry)."""
    from nasflow.estimators import registry

    est = params["estimators"]
    try:
        registry.load_plugins(est["plugins"])
    except ParamsError as e:
        raise ParamsError(f"{source}: {e}") from None
    methods = params["differentiable"]["methods"]
    where = [("search.estimators", n) for n in params["search"]["estimators"]]
    where += [("estimators.extra", n) for n in est["extra"]]
    try:
        ensembles = registry.ensemble_specs(est["ensembles"])
    except ParamsError as e:
        raise ParamsError(f"{source}: {e}") from None
    clash = [v for v in ensembles if not v.startswith("vote") and _registered(registry, v)]
    if clash:
        raise ParamsError(f"{source}: estimators.ensembles.{clash[0]}: the name of a registered estimator; choose another")
    where += [(f"estimators.ensembles.{v}", n) for v, (_, members) in ensembles.items() for n in members]
    for key, name in where:
        try:
            needs = registry.get(name).needs
        except ParamsError as e:
            raise ParamsError(f"{source}: {key}: {e}") from None
        for need in needs:
            kind, _, what = need.partition(":")
            problem = None
            if kind == "proxy" and what not in settings:
                problem = f"unknown setting {what!r} (defined: {', '.join(settings)})"
            elif kind == "supernet" and (what not in params["supernet"]["labels"] if what else not params["supernet"]["labels"]):
                problem = f"needs a {what + '-label ' if what else ''}supernet (supernet.labels: {params['supernet']['labels']})"
            elif kind == "table" and not table_path(params):
                problem = "needs bench_search.table or a ground-truth table"
            elif kind == "differentiable" and what not in methods:
                problem = f"needs {what} in differentiable.methods ({', '.join(methods) or 'none'})"
            elif kind == "batch" and key != "search.estimators" and name not in params["zero_cost"]["proxies"]:
                problem = "is computed by the zero_cost stage: add it to zero_cost.proxies"
            if problem:
                raise ParamsError(f"{source}: {key}: {name}: {problem}")
    if est["ensembles"]:

        correlated = correlated_names(params)
        for vote, (_, members) in ensembles.items():
            missing = [m for m in members if m not in correlated]
            if missing:
                raise ParamsError(f"{source}: estimators.ensembles.{vote}: {', '.join(missing)} is not correlated "
                                  f"(add it to estimators.extra, or use one of {', '.join(correlated)})")
    if params["space"] != "nb201" and any(s != "sampled" for s in params["zero_cost"]["arch_sets"]):
        raise ParamsError(f"{source}: zero_cost.arch_sets: extra and all enumerate the nb201 space only (use [sampled])")


def _check_mobilenet_settings(settings: dict, source: str) -> None:
    """mobilenet: `channels` is the stem width (width multiplier channels / 40), the image size is the
    setting's `image_size`, the depth is fixed by the space (21 choice blocks): no depth key."""
    for name, setting in settings.items():
        # the budget's size is the width multiplier (RLNAS, ProxylessNAS) or the stem width it gives: one of them
        if "width" in setting:
            channels = round(40 * setting["width"])
            if "channels" in setting and setting["channels"] != channels:
                raise ParamsError(f"{source}: settings.{name}: width {setting['width']} means channels {channels} "
                                  f"(40 × width), but channels is {setting['channels']}; give one of them")
            if channels < 1 or abs(channels - 40 * setting["width"]) > 1e-9:
                raise ParamsError(f"{source}: settings.{name}.width: {setting['width']} × 40 is not a whole number of "
                                  f"stem channels (e.g. 0.25, 0.5, 1.0)")
            setting["channels"] = channels
        elif "channels" not in setting:
            raise ParamsError(f"{source}: settings.{name}: give width (the mobilenet width multiplier) or channels")
        for key in ("cells_per_stage", "layers"):
            if key in setting:
                raise ParamsError(f"{source}: settings.{name}.{key}: the mobilenet space has a fixed depth (21 choice "
                                  f"blocks); leave it out (channels = stem width, image_size = input size)")
        for key in ("aux_weight", "drop_path"):
            if setting.get(key):
                raise ParamsError(f"{source}: settings.{name}.{key}: DARTS space only")
    _fill_setting_defaults(settings, source)


def _check_depth_keys(params: dict, schema: dict, source: str) -> None:
    """nb201 / darts: each setting and the differentiable section name their space's depth key, not the other."""
    import jsonschema

    settings = params["settings"]
    depth_key, other = {"nb201": ("cells_per_stage", "layers"), "darts": ("layers", "cells_per_stage")}[params["space"]]
    for name, setting in settings.items():
        if "width" in setting:
            raise ParamsError(f"{source}: settings.{name}.width: a mobilenet key; the {params['space']} space takes channels")
        if "channels" not in setting:
            raise ParamsError(f"{source}: settings.{name}.channels: required in the {params['space']} space")
    diff = params["differentiable"]
    section = schema["properties"]["differentiable"]
    per_method = {"type": "object", "additionalProperties": False, "properties": {
        k: v for k, v in section["properties"].items() if k not in ("methods", "overrides", "cells_per_stage", "layers")}}
    for method, values in diff.get("overrides", {}).items():
        if method not in section["properties"]["methods"]["items"]["enum"]:
            raise ParamsError(f"{source}: differentiable.overrides: unknown method {method!r}")
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(per_method).iter_errors(values))
        if error is not None:
            path, message = _schema_error(error)
            raise ParamsError(f"{source}: {_dotted(['differentiable', 'overrides', method, *path])}: {message}")
    if other in diff:
        raise ParamsError(f"{source}: differentiable.{other}: not a key of the {params['space']} space (use {depth_key})")
    if depth_key not in diff:
        raise ParamsError(f"{source}: differentiable.{depth_key}: required in the {params['space']} space")
    for name, setting in settings.items():
        if other in setting:
            raise ParamsError(f"{source}: settings.{name}.{other}: not a key of the {params['space']} space (use {depth_key})")
        if depth_key not in setting:
            raise ParamsError(f"{source}: settings.{name}.{depth_key}: required in the {params['space']} space")
    _fill_setting_defaults(settings, source)


def _fill_setting_defaults(settings: dict, source: str) -> None:
    schema = _schema()
    for name, setting in settings.items():
        filled = []
        for key, spec in schema["$defs"]["setting"]["properties"].items():
            if "default" in spec and key not in setting:
                setting[key] = spec["default"]
                if key in PROTOCOL_KEYS:
                    filled.append(f"{key}={json.dumps(spec['default'])}")
        if filled:  # a protocol's optimiser should be stated: say what was assumed, in one line
            print(f"{source}: settings.{name}: filled in defaults {', '.join(filled)}", file=sys.stderr)


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


def proxy_setting(params: dict, name: str) -> dict:
    """The setting a proxy named `name` trains with: `settings.<name>`, or for `bpe_search` (when params.yaml does
    not define it) the budget search's choice in results/bpe_search/best.json."""
    if name in params["settings"]:
        return params["settings"][name]
    if name != CHOSEN_BUDGET:
        raise ParamsError(f"unknown setting {name!r} (defined: {', '.join(params['settings'])})")
    if not Path(CHOSEN_BUDGET_FILE).is_file():
        raise CheckpointError(f"missing input file: {CHOSEN_BUDGET_FILE} (run the bpe_search stages first)")
    return read_results(CHOSEN_BUDGET_FILE, rows=None, top=("full",))["full"]


BUILT_TABLE = "results/table/nb201.parquet"  # the build_table stage's table (ground_truth.build_from)


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


def correlated_names(params: dict) -> list[str]:
    """Every estimator correlate scores over the sampled archs, in the order of estimates.csv's columns: the
    proxy settings, their learning-curve estimators, the supernet ones, the zero-cost proxies, the table, then
    `estimators.extra` (any registered name, a plugin's included)."""
    est = params["estimators"]
    lc = est["learning_curve"]
    names = []
    for s in params["proxy"]["settings"]:
        names.append(f"proxy_{s}")
        names += [f"{kind}_{s}" for kind in lc["kinds"]]
        epochs = proxy_setting(params, s)["epochs"] if s in params["settings"] else None
        names += [f"acc_{s}_e{k}" for k in lc["acc_epochs"] if epochs is None or k < epochs]
    if "sampled" in params["supernet"]["arch_sets"]:
        names += [column for column, _, _ in supernet_estimators(params)]
    if "sampled" in params["zero_cost"]["arch_sets"]:
        names += list(params["zero_cost"]["proxies"])
    names += [n for n in est["extra"] if n not in names]
    return names
