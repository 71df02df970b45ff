"""Anomaly-detection metrics in plain numpy: ROC curve, AUC, signal efficiency at fixed background efficiency.

Conventions (fixed, never adapted to the data):

* A score is "higher = more anomalous". Background jets are the negatives, signal jets the positives.
* **No label flipping.** An AUC below 0.5 is reported as it is, with an :class:`InvertedScoreWarning`: it
  means the score ranks background above signal (e.g. the autoencoder reconstructs the signal *better*, the
  Finke et al. failure mode). The LGAE reference code silently reports ``max(AUC, 1 - AUC)``; we do not.
* **Ties.** Jets with equal scores enter the ROC together: every distinct score value is one ROC vertex, and
  the straight segment between two vertices is what a threshold placed *at* the tied value achieves when ties
  are broken at random. The AUC is the Mann-Whitney statistic with ties counted one half, equal to the
  trapezoidal area under that ROC (and to ``sklearn.metrics.roc_auc_score``).
* **Signal efficiency at a background efficiency** (``eps_s(eps_b)``) is interpolated *linearly in eps_b*
  between the two ROC vertices that bracket the target. This is exact, not a smoothing choice: a threshold
  chosen at random between the two neighbouring cuts (the randomised classifier) achieves every point of that
  segment. (The reference code reads the first ROC point with ``eps_b >= target`` instead, which biases
  ``eps_s`` upwards by one step.)
* **Resolution.** A working point ``eps_b`` is *resolved* when at least :data:`MIN_BKG_PASS` = 10 background
  jets pass the cut, i.e. ``n_bkg * eps_b >= 10`` (equivalently ``n_bkg >= 10 / eps_b``); the relative
  statistical uncertainty of ``eps_b`` itself is then at most ~1/sqrt(10) ~ 32 %. Unresolved values are still
  reported, flagged ``resolved: False``, and the report marks them.
* **Uncertainties.** ``err_binomial = sqrt(eps_s (1 - eps_s) / n_sig)`` (signal counting at a fixed cut) and,
  when ``n_boot > 0``, ``err_bootstrap``: the standard deviation over ``n_boot`` resamplings (with
  replacement) of *both* classes, which also includes the fluctuation of the cut from the background. ``err``
  is the bootstrap value when available, else the binomial one. The AUC gets the same pair (Hanley-McNeil 1982
  as the analytic estimate).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

#: default background efficiencies at which the signal efficiency is reported
EPS_B_TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
#: a working point eps_b is "resolved" when at least this many background jets pass (n_bkg * eps_b >= it)
MIN_BKG_PASS: int = 10


class InvertedScoreWarning(UserWarning):
    """The score ranks background above signal (AUC < 0.5). Reported as is: never flipped."""


def _as_scores(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{what}: no jets")
    if np.isnan(a).any():
        raise ValueError(f"{what}: {int(np.isnan(a).sum())} of {a.size} scores are NaN")
    return a


def eps_key(eps_b: float) -> str:
    """The key a background efficiency gets in JSON output: ``0.1 -> "0.1"``, ``1e-3 -> "0.001"``."""
    return f"{float(eps_b):g}"


def roc_curve(scores_bkg, scores_sig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a score (higher = more signal-like), one vertex per distinct score value.

    Parameters
    ----------
    scores_bkg, scores_sig : array_like
        Scores of the background (negative) and signal (positive) jets. NaN raises; +-inf is allowed.

    Returns
    -------
    eps_b, eps_s, thresholds : ndarray
        Background and signal efficiencies of the cut ``score >= threshold``, for decreasing thresholds; the
        first vertex is ``(0, 0)`` with threshold ``+inf``, the last ``(1, 1)``. Same vertices as
        ``sklearn.metrics.roc_curve(y, s, drop_intermediate=False)`` (fpr, tpr).
    """
    b = _as_scores(scores_bkg, "background scores")
    s = _as_scores(scores_sig, "signal scores")
    values = np.concatenate([b, s])
    is_sig = np.concatenate([np.zeros(b.size, bool), np.ones(s.size, bool)])
    order = np.argsort(-values, kind="mergesort")
    values, is_sig = values[order], is_sig[order]
    # last index of each run of equal values (descending order)
    last = np.r_[np.nonzero(values[1:] != values[:-1])[0], values.size - 1]
    tp = np.cumsum(is_sig)[last]
    fp = (last + 1) - tp
    eps_s = np.r_[0.0, tp / s.size]
    eps_b = np.r_[0.0, fp / b.size]
    thresholds = np.r_[np.inf, values[last]]
    return eps_b, eps_s, thresholds


def auc(scores_bkg, scores_sig, warn: bool = True) -> float:
    """Area under the ROC: P(score_sig > score_bkg) + 0.5 P(equal). Never flipped; warns when below 0.5.

    Parameters
    ----------
    scores_bkg, scores_sig : array_like
        Background and signal scores (higher = more anomalous).
    warn : bool
        Emit :class:`InvertedScoreWarning` when the AUC is below 0.5.
    """
    b = _as_scores(scores_bkg, "background scores")
    s = _as_scores(scores_sig, "signal scores")
    value = _auc_ranks(b, s)
    if warn and value < 0.5:
        warnings.warn(
            f"AUC = {value:.4f} < 0.5: the score ranks background above signal. "
            "Reported as is (not flipped).",
            InvertedScoreWarning,
            stacklevel=2,
        )
    return value


def _auc_ranks(b: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC from average ranks (ties count 1/2)."""
    values = np.concatenate([b, s])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # average rank (1-based) of each distinct value
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    rank_sum_sig = avg_rank[inverse[b.size :]].sum()
    u = rank_sum_sig - s.size * (s.size + 1) / 2.0
    return float(u / (s.size * b.size))


def auc_hanley_mcneil_err(value: float, n_bkg: int, n_sig: int) -> float:
    """Analytic standard error of an AUC (Hanley & McNeil 1982)."""
    a = min(max(value, 1e-12), 1 - 1e-12)
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_sig - 1) * (q1 - a * a) + (n_bkg - 1) * (q2 - a * a)) / (n_sig * n_bkg)
    return float(math.sqrt(max(var, 0.0)))


def interp_eps_s(eps_b: np.ndarray, eps_s: np.ndarray, target: float) -> float:
    """Signal efficiency at background efficiency ``target``, linear in eps_b between the bracketing vertices.

    At a vertical ROC segment (several vertices with the same eps_b) the highest eps_s at ``eps_b <= target``
    is taken.
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"eps_b target must be in [0, 1], got {target}")
    i = int(np.searchsorted(eps_b, target, side="right")) - 1  # last vertex with eps_b <= target
    i = max(i, 0)
    if eps_b[i] == target or i + 1 >= eps_b.size:
        return float(eps_s[i])
    x0, x1, y0, y1 = eps_b[i], eps_b[i + 1], eps_s[i], eps_s[i + 1]
    return float(y0 + (y1 - y0) * (target - x0) / (x1 - x0))


def eps_s_at_eps_b(
    scores_bkg,
    scores_sig,
    targets: Sequence[float] = EPS_B_TARGETS,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, dict]:
    """Signal efficiency at each background efficiency in ``targets``, with uncertainties and resolution flag.

    Returns
    -------
    dict
        ``{eps_key(t): {"eps_b", "eps_s", "err", "err_binomial", "err_bootstrap", "resolved", "n_bkg_pass",
        "rejection"}}``; ``n_bkg_pass = n_bkg * eps_b`` is the number of background jets passing the cut;
        ``rejection = 1 / eps_b``. See the module docstring for the interpolation and the ``resolved`` rule.
    """
    b = _as_scores(scores_bkg, "background scores")
    s = _as_scores(scores_sig, "signal scores")
    fpr, tpr, _ = roc_curve(b, s)
    boot = _bootstrap(b, s, targets, n_boot, seed)[1] if n_boot > 0 else None
    out = {}
    for k, t in enumerate(targets):
        value = interp_eps_s(fpr, tpr, float(t))
        err_bin = math.sqrt(max(value * (1 - value), 0.0) / s.size)
        err_boot = float(boot[:, k].std(ddof=1)) if boot is not None and n_boot > 1 else None
        out[eps_key(t)] = {
            "eps_b": float(t),
            "eps_s": value,
            "err": err_boot if err_boot is not None else err_bin,
            "err_binomial": err_bin,
            "err_bootstrap": err_boot,
            "resolved": bool(b.size * t >= MIN_BKG_PASS),
            "n_bkg_pass": float(b.size * t),
            "rejection": float(1.0 / t) if t > 0 else math.inf,
        }
    return out


def _bootstrap(b: np.ndarray, s: np.ndarray, targets: Sequence[float], n_boot: int, seed: int):
    """AUCs ``(n_boot,)`` and eps_s ``(n_boot, len(targets))`` over resamplings of both classes."""
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_boot)
    effs = np.empty((n_boot, len(targets)))
    for i in range(n_boot):
        bb = b[rng.integers(0, b.size, b.size)]
        ss = s[rng.integers(0, s.size, s.size)]
        aucs[i] = _auc_ranks(bb, ss)
        fpr, tpr, _ = roc_curve(bb, ss)
        effs[i] = [interp_eps_s(fpr, tpr, float(t)) for t in targets]
    return aucs, effs


def binary_metrics(
    scores_bkg,
    scores_sig,
    targets: Sequence[float] = EPS_B_TARGETS,
    n_boot: int = 0,
    seed: int = 0,
    warn: bool = True,
    name: str | None = None,
) -> dict:
    """All metrics of one score on one background-vs-signal pair.

    Returns
    -------
    dict
        ``{"auc", "auc_err", "auc_err_analytic", "auc_err_bootstrap", "below_chance", "eps_s": {...}, "n_bkg",
        "n_sig"}`` with ``eps_s`` as in :func:`eps_s_at_eps_b`.
    """
    b = _as_scores(scores_bkg, f"background scores{f' ({name})' if name else ''}")
    s = _as_scores(scores_sig, f"signal scores{f' ({name})' if name else ''}")
    value = _auc_ranks(b, s)
    if warn and value < 0.5:
        warnings.warn(
            f"AUC{f' of {name}' if name else ''} = {value:.4f} < 0.5: "
            "the score ranks background above signal. "
            "Reported as is (not flipped).",
            InvertedScoreWarning,
            stacklevel=2,
        )
    err_an = auc_hanley_mcneil_err(value, b.size, s.size)
    err_boot = None
    effs = eps_s_at_eps_b(b, s, targets, n_boot=0)
    if n_boot > 1:
        aucs, boot = _bootstrap(b, s, targets, n_boot, seed)
        err_boot = float(aucs.std(ddof=1))
        for k, t in enumerate(targets):
            e = effs[eps_key(t)]
            e["err_bootstrap"] = float(boot[:, k].std(ddof=1))
            e["err"] = e["err_bootstrap"]
    return {
        "auc": value,
        "auc_err": err_boot if err_boot is not None else err_an,
        "auc_err_analytic": err_an,
        "auc_err_bootstrap": err_boot,
        "below_chance": bool(value < 0.5),
        "eps_s": effs,
        "n_bkg": int(b.size),
        "n_sig": int(s.size),
    }


def ad_metrics(
    scores_bkg,
    scores_sig: Mapping[str, np.ndarray],
    targets: Sequence[float] = EPS_B_TARGETS,
    n_boot: int = 0,
    seed: int = 0,
    warn: bool = True,
    name: str | None = None,
) -> dict:
    """Metrics per signal and combined (all signals concatenated against the same background).

    Parameters
    ----------
    scores_bkg : array_like
        Background scores.
    scores_sig : mapping of str -> array_like
        Signal scores by signal name.

    Returns
    -------
    dict
        ``{"per_signal": {name: binary_metrics}, "combined": binary_metrics}``. With a single signal,
        ``combined`` equals that signal's entry.
    """
    per = {}
    for sig_name, sig in scores_sig.items():
        label = f"{name} / {sig_name}" if name else sig_name
        per[sig_name] = binary_metrics(scores_bkg, sig, targets, n_boot, seed, warn=warn, name=label)
    if len(scores_sig) == 1:
        combined = dict(next(iter(per.values())))
    else:
        all_sig = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in scores_sig.values()])
        label = f"{name} / combined" if name else "combined"
        combined = binary_metrics(scores_bkg, all_sig, targets, n_boot, seed, warn=warn, name=label)
    return {"per_signal": per, "combined": combined}


def median_iqr(x) -> dict:
    """``{"median", "iqr", "q25", "q75", "n"}`` of the finite values of ``x`` (NaN entries when empty)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median": math.nan, "iqr": math.nan, "q25": math.nan, "q75": math.nan, "n": 0}
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med),
        "iqr": float(q75 - q25),
        "q25": float(q25),
        "q75": float(q75),
        "n": int(a.size),
    }
