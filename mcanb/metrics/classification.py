"""Thresholded metrics: micro/macro precision, recall and F1 (the three macro-F1 definitions), per-code F1,
F1 by training-set code frequency.

A code is predicted when ``score > threshold`` (see ``thresholds``). Zero denominators give 0, never NaN:
precision with nothing predicted is 0, recall with no gold entry is 0, F1 with P + R = 0 is 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._arrays import Prepared, cast_threshold
from .thresholds import resolve_threshold

# Training-set frequency bins [lower, upper) for F1 by code frequency (the paper's Figure 3 does not print
# its edges): codes never seen in training, then 1-9, 10-49, 50-99, 100-499, 500-999, 1000+ documents.
DEFAULT_BINS: tuple[float, ...] = (0, 1, 10, 50, 100, 500, 1000, float("inf"))


@dataclass(frozen=True)
class CodeCounts:
    """Per-code confusion counts at one threshold, each (n_codes,) int64: true positives, predicted, gold."""

    tp: np.ndarray
    predicted: np.ndarray
    gold: np.ndarray

    @property
    def fp(self) -> np.ndarray:
        """False positives per code."""
        return self.predicted - self.tp

    @property
    def fn(self) -> np.ndarray:
        """False negatives per code."""
        return self.gold - self.tp


def _ratio(num, den) -> np.ndarray:
    """num / den elementwise, 0 where den == 0. Example: ``_ratio([1, 0], [2, 0])`` -> ``[0.5, 0.]``."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def predict_positions(d: Prepared, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted entries ``score > t`` as flat row-major indices, and whether each gold entry is predicted.

    Returns ``(flat_indices, (n_gold,) bool)``.
    """
    tc = cast_threshold(t, d.score.dtype)
    return np.flatnonzero(d.score > tc), d.gold_scores > (tc if tc.ndim == 0 else tc[d.cols])


def _code_counts(d: Prepared, t: float | np.ndarray) -> CodeCounts:
    pred_flat, tp_gold = predict_positions(d, t)
    return CodeCounts(tp=np.bincount(d.cols[tp_gold], minlength=d.n_codes),
                      predicted=np.bincount(pred_flat % d.n_codes, minlength=d.n_codes),
                      gold=d.per_code.astype(np.int64))


def code_counts(y_true, y_score, threshold=0.5) -> CodeCounts:
    """Per-code TP / predicted / gold counts of ``y_score > threshold``; y_true, y_score: (n_docs, n_codes)."""
    d = Prepared(y_true, y_score)
    return _code_counts(d, resolve_threshold(threshold, d))


def scores_from_counts(c: CodeCounts) -> dict[str, float]:
    """Micro and macro precision/recall/F1 from per-code counts (the three macro-F1 definitions; see package doc)."""
    tp, pp, g = c.tp.sum(), c.predicted.sum(), c.gold.sum()
    mp, mr = _ratio(c.tp, c.predicted).mean(), _ratio(c.tp, c.gold).mean()
    present = c.gold > 0
    f1 = _ratio(2 * c.tp, c.predicted + c.gold)
    out = {"micro_precision": float(_ratio(tp, pp)), "micro_recall": float(_ratio(tp, g)),
           "micro_f1": float(_ratio(2 * tp, pp + g)),
           "macro_precision": float(mp), "macro_recall": float(mr),
           "macro_f1_caml": float(_ratio(2 * mp * mr, mp + mr)), "macro_f1_all": float(f1.mean())}
    if present.any():
        out["macro_f1_present"] = float(f1[present].mean())
    return out


def _scores(y_true, y_score, threshold) -> dict[str, float]:
    return scores_from_counts(code_counts(y_true, y_score, threshold))


def micro_f1(y_true, y_score, threshold=0.5) -> float:
    """Micro-F1 over the flattened matrix: 2·TP / (#predicted + #gold); 0 if both are 0."""
    return _scores(y_true, y_score, threshold)["micro_f1"]


def micro_precision_recall_f1(y_true, y_score, threshold=0.5) -> tuple[float, float, float]:
    """(micro precision, micro recall, micro F1); precision is 0 when nothing is predicted."""
    s = _scores(y_true, y_score, threshold)
    return s["micro_precision"], s["micro_recall"], s["micro_f1"]


def macro_f1_caml(y_true, y_score, threshold=0.5) -> float:
    """CAML macro-F1: harmonic mean of macro-P and macro-R, each averaged over ALL codes (0/0 counts 0)."""
    return _scores(y_true, y_score, threshold)["macro_f1_caml"]


def macro_f1_present(y_true, y_score, threshold=0.5) -> float:
    """Edin et al. macro-F1: mean per-code F1 over codes with ≥ 1 gold document; ValueError if there is none."""
    s = _scores(y_true, y_score, threshold)
    if "macro_f1_present" not in s:
        raise ValueError("macro_f1_present undefined: no code has a gold document in this split")
    return s["macro_f1_present"]


def macro_f1_all(y_true, y_score, threshold=0.5) -> float:
    """Macro-F1 as the mean of per-code F1 over ALL codes of the label space, a code with no gold document and no
    prediction counting 0 (scikit-learn's ``f1_score(average="macro", zero_division=0)`` over every label)."""
    return _scores(y_true, y_score, threshold)["macro_f1_all"]


def per_code_f1(y_true, y_score, threshold=0.5) -> np.ndarray:
    """F1 of each code, (n_codes,) float64: 2·TP / (#predicted + #gold), 0 for codes never gold nor predicted."""
    c = code_counts(y_true, y_score, threshold)
    return _ratio(2 * c.tp, c.predicted + c.gold)


# ---------------------------------------------------------------- F1 by training-set code frequency

def frequency_bin_labels(bins: Sequence[float] = DEFAULT_BINS) -> list[str]:
    """Names of the [lower, upper) bins of integer counts. Example: ``(0, 1, 10, inf)`` -> ``["0", "1-9", "10+"]``."""
    edges = check_bins(bins)
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if np.isinf(hi):
            labels.append(f"{lo:g}+")
        elif hi - lo == 1:
            labels.append(f"{lo:g}")
        else:
            labels.append(f"{lo:g}-{hi - 1:g}")
    return labels


def check_bins(bins: Sequence[float]) -> np.ndarray:
    """Bin edges as a float array: ≥ 2, strictly increasing, integers except a final inf."""
    edges = np.asarray(bins, dtype=np.float64)
    finite = edges[np.isfinite(edges)]
    if (edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or np.any(finite != np.round(finite))
            or np.isnan(edges).any() or np.isinf(edges[:-1]).any()):
        raise ValueError(f"bins must be ≥ 2 strictly increasing integer edges (last may be inf), got {bins!r}")
    return edges


def _bin_index(train_counts, n_codes: int, bins) -> tuple[np.ndarray, np.ndarray]:
    """(bin index of each code, edges); ValueError if counts are malformed or outside the bins."""
    counts = np.asarray(train_counts, dtype=np.float64)
    edges = check_bins(bins)
    if counts.shape != (n_codes,):
        raise ValueError(f"train_counts must have shape ({n_codes},), got {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("train_counts must be finite and non-negative")
    if counts.min() < edges[0] or counts.max() >= edges[-1]:
        raise ValueError(f"train_counts span [{counts.min():g}, {counts.max():g}], outside the bins "
                         f"[{edges[0]:g}, {edges[-1]:g})")
    return np.searchsorted(edges, counts, side="right") - 1, edges


def _by_frequency(c: CodeCounts, train_counts, bins) -> dict[str, np.ndarray]:
    idx, edges = _bin_index(train_counts, len(c.tp), bins)
    nb = len(edges) - 1

    def per_bin(x):
        return np.bincount(idx, weights=x, minlength=nb)

    present = c.gold > 0
    n_codes, n_present = per_bin(np.ones(len(idx))), per_bin(present)
    tp, pp, g = per_bin(c.tp), per_bin(c.predicted), per_bin(c.gold)
    f1_sum = per_bin(np.where(present, _ratio(2 * c.tp, c.predicted + c.gold), 0.0))
    micro = np.where(n_codes > 0, _ratio(2 * tp, pp + g), np.nan)
    macro = np.where(n_present > 0, f1_sum / np.maximum(n_present, 1), np.nan)
    return {"bin": np.array(frequency_bin_labels(edges)), "lower": edges[:-1], "upper": edges[1:],
            "n_codes": n_codes.astype(np.int64), "n_codes_present": n_present.astype(np.int64),
            "micro_f1": micro, "macro_f1_present": macro}


def f1_by_frequency(y_true, y_score, train_counts, *, bins: Sequence[float] = DEFAULT_BINS,
                    threshold=0.5) -> dict[str, np.ndarray]:
    """F1 per training-frequency bin (the paper's Figure 3), one entry per bin in each array.

    train_counts: (n_codes,) training documents per code. A code falls in bin i when
    ``bins[i] <= count < bins[i + 1]``. Returns ``bin`` (labels), ``lower``, ``upper``, ``n_codes``,
    ``n_codes_present`` (codes with a gold document in this split), ``micro_f1`` (pooled over the bin's
    codes) and ``macro_f1_present`` (mean per-code F1 over present codes). A bin with no code (or no
    present code, for ``macro_f1_present``) holds NaN, the only NaN this package returns; ``n_codes``
    says why. ``pandas.DataFrame(f1_by_frequency(...))`` gives the figure's table.
    """
    return _by_frequency(code_counts(y_true, y_score, threshold), train_counts, bins)
