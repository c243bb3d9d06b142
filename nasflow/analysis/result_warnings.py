"""Warnings: results a researcher must not read as findings (sheet `warnings` of the workbook, a yellow box on the
plot concerned, the end-of-run summary); thresholds:
- `alpha_static`: a differentiable search whose final softmax(α) stays within ALPHA_MIN_MOVE (0.05) of uniform
  (1/#ops) on every edge: the architecture weights have barely moved, the derived arch is close to a coin toss;
- `chance_accuracy`: a supernet accuracy (RLNAS `supernet_acc_*` over the sampled archs, or a differentiable
  search's per-epoch `valid_acc`) whose best value stays below chance (100/#classes) + CHANCE_MARGIN (5) points;
- `tau_includes_zero`: an estimator whose 95% bootstrap interval of Kendall τ contains 0 (no evidence of any
  rank correlation);
- `few_archs`: an estimator correlated over fewer than MIN_ARCHS (10) archs: τ's interval is wide."""

from __future__ import annotations

import math

import numpy as np

ALPHA_MIN_MOVE = 0.05   # max |softmax(α) - 1/#ops| below this: α barely moved
CHANCE_MARGIN = 5.0     # percentage points above chance (100/#classes) still read as chance level
MIN_ARCHS = 10          # fewer archs than this: τ's interval is too wide to read


def _warning(kind, subject, message, value=None, threshold=None) -> dict:
    return {"kind": kind, "subject": subject, "message": message, "value": value, "threshold": threshold}


def alpha_movement(search: dict) -> float | None:
    """max |softmax(α) - 1/#ops| over the edges (and cell types) at the last epoch with α; None without α."""
    last = next((h["alphas"] for h in reversed(search.get("history") or []) if h.get("alphas")), None)
    if last is None:
        last = search.get("alphas")
    if not last:
        return None
    try:
        probs = np.asarray(last, float)
    except (TypeError, ValueError):  # ragged or not numbers: plot_alphas reports the file
        return None
    if probs.ndim < 2 or not np.isfinite(probs).all():
        return None
    return float(np.abs(probs - 1.0 / probs.shape[-1]).max())


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def find_warnings(*, correlation: list[dict], estimates: list[dict] | None = None,
                  differentiable: dict[str, dict] | None = None, num_classes: int | None = None) -> list[dict]:
    """Every result that must not be read as a finding (module docstring: kinds and thresholds), as
    {"kind", "subject", "message", "value", "threshold"}. differentiable: method -> its search document (history
    with `alphas` and `valid_acc`); num_classes None: no chance-level check."""
    out = []
    chance = 100.0 / num_classes if num_classes else None
    for method, doc in (differentiable or {}).items():
        move = alpha_movement(doc)
        if move is not None and move < ALPHA_MIN_MOVE:
            epochs = sum(1 for h in doc.get("history") or [] if h.get("alphas"))
            out.append(_warning(
                "alpha_static", method,
                f"{method}: softmax(α) barely moved (max |α − uniform| {move:.3f} < {ALPHA_MIN_MOVE} after "
                f"{epochs} epochs): the derived arch is close to arbitrary, not a search result", move,
                f"< {ALPHA_MIN_MOVE}"))
        out += _chance_warning(method, [h["valid_acc"] for h in doc.get("history") or []
                                        if isinstance(h.get("valid_acc"), (int, float))], chance, num_classes,
                               "the supernet's validation accuracy stays at chance", "its ranking of archs is noise")
    columns = list(estimates[0]) if estimates else []
    for col in (c for c in columns if c.startswith("supernet_acc") and not c.endswith(("_seconds", "_status"))):
        out += _chance_warning(col, [_number(r[col]) for r in estimates], chance, num_classes,
                               "every arch's supernet accuracy is at chance", "its τ measures noise")
    for c in correlation:
        name, n = c["estimator"], c.get("n")
        lo, hi = c.get("kendall_tau_low"), c.get("kendall_tau_high")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo) and \
                math.isfinite(hi) and lo <= 0 <= hi:
            out.append(_warning("tau_includes_zero", name,
                                f"{name}: τ's 95% interval [{lo:.2f}, {hi:.2f}] includes 0: no evidence of a rank "
                                f"correlation", _number(c.get("kendall_tau")), "low ≤ 0 ≤ high"))
        if isinstance(n, (int, float)) and math.isfinite(n) and 1 < n < MIN_ARCHS:
            out.append(_warning("few_archs", name,
                                f"{name}: only {int(n)} archs (< {MIN_ARCHS}): τ's interval is wide", int(n),
                                f"< {MIN_ARCHS}"))
    return out


def _chance_warning(subject: str, accuracies, chance: float | None, num_classes, what: str, so: str) -> list[dict]:
    """[a chance_accuracy warning] when the best finite accuracy stays below chance + CHANCE_MARGIN, else []."""
    accs = np.array(accuracies, float)
    accs = accs[np.isfinite(accs)]
    if chance is None or not len(accs) or accs.max() >= chance + CHANCE_MARGIN:
        return []
    return [_warning("chance_accuracy", subject,
                     f"{subject}: {what} (best {accs.max():.1f}% vs chance {chance:.1f}% for {num_classes} classes): "
                     f"{so}", float(accs.max()), f"< {chance:.1f} + {CHANCE_MARGIN:g}")]


def warning_lines(warnings: list[dict], *subjects: str, kinds: tuple[str, ...] = ()) -> list[str]:
    """The messages of the warnings about `subjects` (all when none given), optionally only of `kinds`."""
    return [w["message"] for w in warnings
            if (not subjects or w["subject"] in subjects) and (not kinds or w["kind"] in kinds)]


def summary_lines(warnings: list[dict]) -> list[str]:
    """The τ warnings of every estimator in two lines (for the τ-vs-cost plot), plus the chance-level ones."""
    out = []
    zero = [w["subject"] for w in warnings if w["kind"] == "tau_includes_zero"]
    if zero:
        out.append(f"τ's 95% interval includes 0 for {', '.join(zero)}: no evidence of a rank correlation")
    few = [f"{w['subject']} ({w['value']})" for w in warnings if w["kind"] == "few_archs"]
    if few:
        out.append(f"fewer than {MIN_ARCHS} archs for {', '.join(few)}: τ's interval is wide")
    chance = [w["subject"] for w in warnings if w["kind"] == "chance_accuracy" and w["subject"].startswith("supernet_acc")]
    if chance:
        out.append(f"supernet accuracy at chance for {', '.join(chance)}: its τ measures noise")
    return out
