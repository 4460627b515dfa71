"""Which metric early stopping watches, and in which direction: the default per label space, whether higher
is better, and a check that a metric function really produces the requested name (before training, not
after the last epoch)."""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]  # (y_true (n, C), y_score (n, C)) -> {name: v}


DEFAULT_PREFERENCE = ("map", "micro_auc", "micro_f1", "loss")


def default_stopping_metric(num_codes: int, available: Sequence[str] | None = None) -> str:
    """``"map"`` (dev mean average precision, per document) for every label space; with ``available`` (the names
    a custom metric function computes) the first of ``DEFAULT_PREFERENCE`` among them.

    A ranking metric moves from the first epoch: F1 at 0.5 stays 0 while a slowly starting model's scores are
    all below 0.5, so stopping on it can quit before anything is learned (patience spent at 0). The paper's
    and CAML's criteria are set explicitly in the ``parameters/*/mimic3_*.yaml`` files instead: ``micro_f1``
    on the top-50 codes (CAML's default criterion; its top-50 script asked for P@8, which is not computed
    there, so it never stopped early, docs/reference.md §Known traps) and ``p@8`` on the full code set (CAML's
    and MultiResCNN's full-code runs). ``num_codes`` is kept for callers that choose per label space.
    """
    if available is None:
        return DEFAULT_PREFERENCE[0]
    return next((m for m in DEFAULT_PREFERENCE if m in available), "loss")


def higher_is_better(metric: str) -> bool:
    """Loss-like metrics (name contains "loss") are minimised, every other metric maximised."""
    return "loss" not in metric.lower()


def check_metric_name(metric_fn: MetricFn, name: str, num_codes: int) -> list[str]:
    """Raise ``ValueError`` at once if ``metric_fn`` (plus the engine's ``loss``) does not produce ``name``.

    ``metric_fn`` is called on 8 random documents x ``num_codes`` codes; returns the valid names, sorted.
    """
    rng = np.random.default_rng(0)
    y_true = (rng.random((8, num_codes)) < 0.5).astype(np.uint8)
    y_true[0], y_true[1] = 1, 0          # every label has a positive and a negative: AUCs are defined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = sorted(set(metric_fn(y_true, rng.random((8, num_codes)).astype(np.float32))) | {"loss"})
    if name not in names:
        raise ValueError(f"early_stopping_metric={name!r} is not computed for this label space ({num_codes} codes);"
                         f" valid names: {', '.join(names)}")
    return names
