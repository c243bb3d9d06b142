"""The built-in estimators (see nasflow.estimators.registry for the families and the Context they ask)."""
from __future__ import annotations

import math

from nasflow.errors import ParamsError
from nasflow.estimators.estimate import Estimate

# (name, family, needs, fn) of every built-in estimator, in order: nasflow.estimators.registry registers them on its
# first lookup. This module never imports the registry, so the two do not import each other.
BUILTINS: list[tuple] = []


def register(name: str, *, family: str, needs=()):
    """Decorator: list `fn` as the built-in estimator `name` (the registry's `register` takes them from BUILTINS)."""

    def wrap(fn):
        BUILTINS.append((name, family, tuple(needs), fn))
        return fn

    return wrap

ZERO_COST = ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "zen", "params", "flops",
             # since 2022 (nasflow.estimators.zero_cost_2022); az_nas and te_nas are population aggregates
             "meco", "meco_opt", "zico", "swap", "swap_reg", "az_expressivity", "az_progressivity", "az_trainability",
             "az_complexity", "az_nas", "te_nas_ntk", "te_nas_lr", "te_nas", "epe_nas", "l2_norm", "plain")
SUPERNET_LABELS = ("random", "true")


def _status(result: dict) -> str:
    return result.get("status", "ok")


@register("proxy_<setting>", family="budgeted training", needs=["proxy:{setting}"])
def proxy(archs, ctx, *, setting):
    """The accuracy on the evaluation split after the setting's last epoch; cost: its training seconds."""
    return [Estimate(r["final_acc"] if _status(r) == "ok" else math.nan, r["seconds"], _status(r))
            for r in ctx.trained(setting, archs)]


def _curve(kind: str, archs, ctx, setting: str, k: int | None = None):
    from nasflow.estimators.learning_curve import estimate

    target = ctx.params.get("estimators", {}).get("learning_curve", {}).get("extrapolate_to", 200)
    out = []
    for r in ctx.trained(setting, archs):
        if k is not None and k > len(r.get("history", [])) and _status(r) == "ok":
            raise ParamsError(f"acc_{setting}_e{k}: the {setting} setting trains {len(r['history'])} epochs, fewer than {k}")
        score, seconds = estimate(kind, r, k=k, target_epoch=target)
        out.append(Estimate(score, seconds, _status(r)))
    return out


@register("sotl_e_<setting>", family="learning curve", needs=["proxy:{setting}"])
def sotl_e(archs, ctx, *, setting):
    """Minus the last epoch's training loss (Ru et al. 2021, SoTL-E)."""
    return _curve("sotl_e", archs, ctx, setting)


@register("sotl_<setting>", family="learning curve", needs=["proxy:{setting}"])
def sotl(archs, ctx, *, setting):
    """Minus the sum of the training losses over the setting's epochs (Ru et al. 2021, SoTL)."""
    return _curve("sotl", archs, ctx, setting)


@register("acc_<setting>_e<k>", family="learning curve", needs=["proxy:{setting}"])
def acc_after(archs, ctx, *, setting, k):
    """The evaluation accuracy after epoch k of the setting's run; cost: its first k epochs."""
    return _curve("acc", archs, ctx, setting, int(k))


@register("lce_<setting>", family="learning curve", needs=["proxy:{setting}"])
def lce(archs, ctx, *, setting):
    """The setting's evaluation-accuracy curve extrapolated (pow3, Domhan et al. 2015) to
    `estimators.learning_curve.extrapolate_to` epochs."""
    return _curve("lce", archs, ctx, setting)


def _zero_cost(name):
    def fn(archs, ctx):
        return ctx.zero_cost(name, archs)

    fn.__doc__ = f"The zero-cost proxy {name} (nasflow.estimators.zero_cost) on one seeded batch."
    return fn


for _name in ZERO_COST:
    register(_name, family="zero-cost", needs=["batch"])(_zero_cost(_name))


def _only_labels(ctx) -> str:
    labels = ctx.params["supernet"]["labels"]
    if len(labels) != 1:
        raise ParamsError(f"supernet.labels: {labels}: name the label kind (angle_<labels>, supernet_acc_<labels>)")
    return labels[0]


def _supernet(indicator):
    def fn(archs, ctx, labels=None):
        return ctx.supernet(labels or _only_labels(ctx), indicator, archs)

    return fn


for _ind in ("angle", "supernet_acc"):
    register(_ind, family="supernet", needs=["supernet"])(_supernet(_ind))
    register(f"{_ind}_<labels>", family="supernet", needs=["supernet:{labels}"])(_supernet(_ind))


@register("table", family="table", needs=["table"])
def table(archs, ctx):
    """`search.table_column` of the NAS-Bench-201 table (default: the 12-epoch, one-seed CIFAR-10 accuracy, the
    benchmark's cheap search signal); cost: the cell's recorded 12-epoch training time when the table was built
    from the release, else the cost model's simulated one (nasflow.estimators.table)."""
    return ctx.table(ctx.params["search"]["table_column"], archs)


def _tabular(kind: str, archs, ctx, schedule: str, k: str):
    """A learning-curve estimator on the release's curves of the first k epochs (nasflow.estimators.table)."""
    from nasflow.estimators.learning_curve import estimate

    k = int(k)
    if str(schedule) not in ("12", "200") or not 1 <= k <= int(schedule):
        raise ParamsError(f"table_{kind}_{schedule}ep_e{k}: NB201's schedules are 12 and 200 epochs; k must be "
                          f"an epoch of the schedule (1 to {schedule})")
    target = ctx.params.get("estimators", {}).get("learning_curve", {}).get("extrapolate_to", 200)
    out = []
    for history in ctx.table_histories(str(schedule), archs):
        score, seconds = estimate(kind, {"history": history[:k]}, k=k if kind == "acc" else None,
                                  target_epoch=target)
        out.append(Estimate(score, seconds))
    return out


@register("table_acc_<schedule>ep_e<k>", family="table", needs=["table"])
def table_acc(archs, ctx, *, schedule, k):
    """Tabular (no training run): the release's validation accuracy after epoch k of NB201's 12- or 200-epoch
    schedule (cifar10-valid, mean over seeds); cost: k epochs of the cell's recorded training + evaluation time."""
    return _tabular("acc", archs, ctx, schedule, k)


@register("table_sotl_<schedule>ep_e<k>", family="table", needs=["table"])
def table_sotl(archs, ctx, *, schedule, k):
    """Tabular SoTL: minus the sum of the release's training losses over the schedule's first k epochs."""
    return _tabular("sotl", archs, ctx, schedule, k)


@register("table_sotl_e_<schedule>ep_e<k>", family="table", needs=["table"])
def table_sotl_e(archs, ctx, *, schedule, k):
    """Tabular SoTL-E: minus the release's training loss of epoch k of the schedule."""
    return _tabular("sotl_e", archs, ctx, schedule, k)


@register("table_lce_<schedule>ep_e<k>", family="table", needs=["table"])
def table_lce(archs, ctx, *, schedule, k):
    """Tabular pow3 extrapolation of the release's first k validation accuracies to
    `estimators.learning_curve.extrapolate_to` epochs."""
    return _tabular("lce", archs, ctx, schedule, k)


@register("pred_<predictor>_n<k>", family="model-based", needs=["table"])
def model_based(archs, ctx, *, predictor, k):
    """A model-based predictor (nasflow.estimators.predictors: lgb, rf, gp, ngb, mlp, gcn) on its own encoding,
    trained on k other cells of the table's ground-truth column (seeded, none of `archs`); cost: predicting one
    arch (the initialisation cost, k cells' training time + the fit, is in nasflow.estimators.predictors)."""
    return ctx.predicted(predictor, int(k), archs)


@register("alpha_<method>", family="differentiable", needs=["differentiable:{method}"])
def alpha(archs, ctx, *, method):
    """log P(arch) under a differentiable search's final softmax(α): the sum over edges of log p(op) (NB201);
    cost: the search's seconds shared out over the archs scored."""
    import numpy as np

    from nasflow.spaces import nb201

    if ctx.params["space"] != "nb201":
        raise ParamsError(f"alpha_{method}: scores NB201 cells only (the {ctx.params['space']} space has no per-edge α here)")
    doc = ctx.differentiable(method)
    if doc.get("alphas") is None:
        raise ParamsError(f"alpha_{method}: {method} learns no α (use gdas, darts-v1, darts-v2 or setn)")
    logp = np.log(np.clip(np.array(doc["alphas"], dtype=np.float64), 1e-300, None))  # [edge][op]
    share = float(doc.get("search_seconds") or doc.get("seconds") or 0.0) / max(len(archs), 1)
    ok = doc.get("status", "ok") == "ok"
    return [Estimate(float(sum(logp[e, nb201.OPS.index(op)] for e, op in enumerate(nb201.parse(a)))) if ok else math.nan,
                     share, doc.get("status", "ok")) for a in archs]
