"""Anomaly-detection evaluation: metrics, evaluator, comparison report, latent-space analysis, ``lgae run``.

>>> from lgae.eval import evaluate_run, compare                                          # doctest: +SKIP
>>> evaluate_run("runs/lgae_mix", background="qcd_test.root", signals=["top_test.root"])  # doctest: +SKIP
>>> compare(["runs/lgae_mix", "runs/vae"], out="report")                                 # doctest: +SKIP

Conventions: a score is "higher = more anomalous"; the primary score is fixed before looking at test data;
AUCs are never flipped; eps_s at eps_b is interpolated on the ROC and flagged ``resolved: False`` when fewer
than 10 background jets pass (see :mod:`lgae.eval.metrics`). Names are imported on first use so that ``lgae
--help`` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "roc_curve": "metrics",
    "auc": "metrics",
    "eps_s_at_eps_b": "metrics",
    "binary_metrics": "metrics",
    "ad_metrics": "metrics",
    "InvertedScoreWarning": "metrics",
    "EPS_B_TARGETS": "metrics",
    "evaluate_run": "evaluate",
    "evaluate_model": "evaluate",
    "Sample": "evaluate",
    "compare": "report",
    "latent_run": "latent",
    "latent_analysis": "latent",
    "run_pipeline": "pipeline",
    "load_pipeline_config": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
