"""Which metric early stopping watches, and in which direction: the default per label space, whether higher
is better, and a check that a metric function really produces the requested name (before training, not
after the last epoch)."""
from __future__ import annotations

import warnings
from typing import Callable, Mapping

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]  # (y_true (n, C), y_score (n, C)) -> {name: v}


def default_stopping_metric(num_codes: int) -> str:
    """``"micro_f1"`` for <= 50 codes (CAML's default criterion), ``"p@8"`` for larger label spaces (CAML's and
    MultiResCNN's full-code runs). CAML's top-50 script asked for P@8, which is not computed there, so it never
    stopped early (docs/reference.md §Known traps); ``fit`` validates the name before training instead."""
    return "micro_f1" if num_codes <= 50 else "p@8"


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
