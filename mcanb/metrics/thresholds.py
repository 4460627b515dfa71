"""Decision thresholds: the fixed 0.5 of CAML, or one tuned on the dev split and then applied to test.

A code is predicted when its score is strictly above the threshold (``score > t``), as CAML's
``np.round`` does at 0.5 and as Edin et al. do. ``Threshold.fit`` only ever sees dev labels; the
metrics take a threshold value or a fitted ``Threshold`` and never a second label matrix, and they
refuse a ``Threshold`` fitted on the very labels they are asked to score (pass ``thr.threshold``,
the plain value, to score the dev split on purpose).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._arrays import (Prepared, cast_threshold, code_candidates, count_below_global, count_below_sorted,
                      sortable_keys)

OBJECTIVES = ("micro_f1",)


@dataclass(frozen=True, eq=False)
class Threshold:
    """A decision threshold fitted on dev scores: one global value, or one per code.

    Attributes: ``threshold`` (float, or (n_codes,) array when ``per_code``), ``objective``, ``dev_score``
    (the objective on dev at this threshold), ``n_fallback`` (codes without dev positives, which get the
    global threshold). Example::

        thr = Threshold.fit(y_true_dev, y_score_dev)      # dev only
        metrics = evaluate(y_true_test, y_score_test, threshold=thr)
    """

    threshold: float | np.ndarray
    per_code: bool = False
    objective: str = "micro_f1"
    dev_score: float = float("nan")
    n_fallback: int = 0
    fitted_on: str = field(default="", repr=False)  # fingerprint of the dev labels

    @classmethod
    def fit(cls, y_true_dev, y_score_dev, *, per_code: bool = False, objective: str = "micro_f1") -> Threshold:
        """Fit on the dev split: the exact threshold maximising dev micro-F1 over every cut between dev scores.

        y_true_dev, y_score_dev: (n_dev_docs, n_codes). With ``per_code=True`` each code gets the cut that
        maximises its own dev F1 (codes without dev positives fall back to the global threshold). Among
        equally good cuts the highest is taken. The returned value lies halfway between the lowest
        predicted dev score and the next lower dev score, so it does not sit on a dev score.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        d = Prepared(y_true_dev, y_score_dev)
        if d.rows.size == 0:
            raise ValueError("cannot fit a threshold: the dev labels have no positive entry")
        value, best = _fit_global(d)
        if not per_code:
            return cls(value, False, objective, best, 0, d.fingerprint)
        values, n_fallback = _fit_per_code(d, value)
        dev = _micro_f1_at(d, values)
        return cls(values, True, objective, dev, n_fallback, d.fingerprint)

    def apply(self, y_score) -> np.ndarray:
        """Binary predictions ``y_score > threshold``, (n_docs, n_codes) bool."""
        y_score = np.asarray(y_score)
        t = np.asarray(self.threshold, dtype=np.float64)
        if t.ndim and (y_score.ndim != 2 or y_score.shape[1] != t.shape[0]):
            raise ValueError(f"per-code threshold has {t.shape[0]} codes, y_score has shape {y_score.shape}")
        return y_score > (cast_threshold(t, y_score.dtype) if y_score.dtype == np.float32 else t)


def resolve_threshold(threshold, d: Prepared) -> float | np.ndarray:
    """A float or (n_codes,) array from a float, an array or a ``Threshold``; refuses one fitted on ``d``'s labels."""
    if isinstance(threshold, Threshold):
        if threshold.fitted_on and threshold.fitted_on == d.fingerprint:
            raise ValueError("this Threshold was fitted on the labels being evaluated (tuning on the test set "
                             "inflates scores); fit it on dev, or pass threshold=thr.threshold to score dev "
                             "on purpose")
        threshold = threshold.threshold
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim == 0:
        if not np.isfinite(t):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        return float(t)
    if t.shape != (d.n_codes,) or not np.isfinite(t).all():
        raise ValueError(f"a per-code threshold must be a finite ({d.n_codes},) array, got shape {t.shape}")
    return t


def _midpoint(cut: np.ndarray, below: np.ndarray) -> np.ndarray:
    """A value t with below ≤ t < cut (halfway where float precision allows); below = -inf if none."""
    cut, below = np.asarray(cut, np.float64), np.asarray(below, np.float64)
    has_below = np.isfinite(below)
    lower = np.where(has_below, below, cut)
    t = lower + (cut - lower) / 2
    t = np.where((t >= lower) & (t < cut), t, lower)
    return np.where(has_below, t, np.nextafter(cut, -np.inf))


def _fit_global(d: Prepared) -> tuple[float, float]:
    """Global cut maximising micro-F1 = 2·TP / (#predicted + #gold); returns (threshold, dev micro-F1)."""
    keys, bits = sortable_keys(d.score.ravel())
    gold = keys[d.rows * d.n_codes + d.cols]
    all_less, _ = count_below_global(keys, bits, gold)
    pos_less, _ = count_below_sorted(np.sort(gold), gold)
    n_gold = d.rows.size
    f1 = 2.0 * (n_gold - pos_less) / (d.score.size - all_less + n_gold)
    best = np.flatnonzero(f1 == f1.max())
    i = best[np.argmax(d.gold_scores[best])]  # highest of the equally good cuts
    cut = d.gold_scores[i]
    lower = d.score[d.score < cut]
    below = lower.max() if lower.size else -np.inf
    return float(_midpoint(cut, below)), float(f1[i])


def _fit_per_code(d: Prepared, fallback: float) -> tuple[np.ndarray, int]:
    """Per-code cut maximising that code's dev F1; codes without dev positives get ``fallback``."""
    all_sorted, gold_packed, n_cand = code_candidates(d)
    all_less, _ = count_below_sorted(all_sorted, gold_packed)
    pos_less, _ = count_below_sorted(np.sort(gold_packed), gold_packed)
    n_pos = d.per_code[d.cols]
    predicted = n_cand[d.cols] - (all_less - (np.cumsum(n_cand) - n_cand)[d.cols])
    tp = n_pos - (pos_less - (np.cumsum(d.per_code) - d.per_code)[d.cols])
    f1 = 2.0 * tp / (predicted + n_pos)
    order = np.lexsort((-d.gold_scores, -f1, d.cols))  # best F1 first, then highest cut, per code
    first = order[np.r_[True, d.cols[order][1:] != d.cols[order][:-1]]]
    cut = np.full(d.n_codes, np.inf)
    cut[d.cols[first]] = d.gold_scores[first]
    below = np.where(d.score < cut[None, :].astype(d.score.dtype), d.score, -np.inf).max(axis=0)
    has = d.per_code > 0
    values = np.full(d.n_codes, fallback)
    values[has] = _midpoint(cut[has], below[has])
    return values, int((~has).sum())


def _micro_f1_at(d: Prepared, t: float | np.ndarray) -> float:
    """Micro-F1 of ``score > t`` (helper for ``Threshold.dev_score``)."""
    tc = cast_threshold(t, d.score.dtype)
    tp = int((d.gold_scores > (tc if tc.ndim == 0 else tc[d.cols])).sum())
    predicted = int(np.count_nonzero(d.score > tc))
    return 2.0 * tp / (predicted + d.rows.size) if predicted + d.rows.size else 0.0
