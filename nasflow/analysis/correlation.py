"""How well an estimator ranks architectures like the ground truth does."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def top_overlap(estimate, truth, fraction: float = 0.1) -> float:
    """Share of the top `fraction` archs by ground truth that are also in the estimator's top `fraction`."""
    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    k = max(1, math.ceil(fraction * len(truth)))
    # stable sort so ties break by position, identically for both rankings
    top_truth = set(np.argsort(-truth, kind="stable")[:k])
    top_est = set(np.argsort(-estimate, kind="stable")[:k])
    return len(top_truth & top_est) / k


def bootstrap_tau(estimate, truth, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of Kendall's tau-b (resampling archs with replacement)."""
    if n_boot <= 0:
        return math.nan, math.nan
    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    rng = np.random.default_rng(seed)
    n = len(truth)
    taus = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        taus[b] = stats.kendalltau(estimate[idx], truth[idx]).statistic
    taus = taus[~np.isnan(taus)]
    if len(taus) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


MIN_PAIRS = 3  # fewer finite (estimate, truth) pairs than this: every correlation is NaN


def correlation_row(name: str, estimate, truth, seconds=None, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """One row of results/correlation.csv. tau is scipy's default (tau-b, ties handled).

    Only the pairs where both the estimate and the truth are finite count (a diverged training is NaN, never
    a score): `n` is their number, and with fewer than `MIN_PAIRS` of them tau, rho, r and the interval are
    NaN (the top-10% overlap too when there is none). `seconds_per_arch` averages over every arch: a diverged
    training was paid for."""
    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    finite = np.isfinite(estimate) & np.isfinite(truth)
    estimate, truth = estimate[finite], truth[finite]
    few = len(truth) < MIN_PAIRS
    lo, hi = (math.nan, math.nan) if few else bootstrap_tau(estimate, truth, n_boot, seed)
    # constant input: correlations are undefined, say nan quietly
    constant = few or np.ptp(estimate) == 0 or np.ptp(truth) == 0
    with np.errstate(all="ignore"):
        tau = math.nan if constant else float(stats.kendalltau(estimate, truth).statistic)
        rho = math.nan if constant else float(stats.spearmanr(estimate, truth).statistic)
        r = math.nan if constant else float(stats.pearsonr(estimate, truth).statistic)
    return {
        "estimator": name,
        "n": int(len(truth)),
        "kendall_tau": tau,
        "kendall_tau_low": lo,
        "kendall_tau_high": hi,
        "spearman_rho": rho,
        "pearson_r": r,
        "top10_overlap": top_overlap(estimate, truth) if len(truth) else math.nan,
        "seconds_per_arch": float(np.mean(seconds)) if seconds is not None and len(seconds) else math.nan,
    }
