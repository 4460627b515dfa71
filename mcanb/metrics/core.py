"""``evaluate``: every metric of the paper's tables in one flat ``{name: number}`` dict for ``metrics.json``."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ._arrays import Prepared
from .classification import DEFAULT_BINS, _by_frequency, _code_counts, code_counts, scores_from_counts
from .ranking import _micro_auc, _per_code_auc, _per_doc_ranking, check_k, default_k
from .thresholds import Threshold, resolve_threshold

# The thresholded scores reported again at the threshold tuned on dev (``<split>/<name>@dev_threshold``).
TUNED_SCORES = ("micro_f1", "macro_f1_caml", "micro_precision", "micro_recall")


def evaluate(y_true, y_score, *, k: int | Sequence[int] | None = None, threshold=0.5, train_counts=None,
             bins: Sequence[float] = DEFAULT_BINS) -> dict[str, float | int]:
    """All metrics of one split as a flat dict of Python floats and ints (never None or NaN).

    y_true: (n_docs, n_codes) multi-hot 0/1; y_score: (n_docs, n_codes) sigmoid scores.
    k: P@k/R@k cut-offs, default ``default_k(n_codes)`` ((5,) for top-50, (8, 15) for full).
    threshold: 0.5 (CAML), a per-code (n_codes,) array, or a ``Threshold`` fitted on dev.
    train_counts: (n_codes,) training documents per code; adds F1 by frequency bin (``bins``).

    Keys: ``n_docs n_codes n_gold n_predicted n_docs_no_gold n_codes_present``, ``threshold`` (or
    ``threshold_median`` if per code), ``micro_auc macro_auc macro_auc_n_skipped``,
    ``micro_precision micro_recall micro_f1 macro_precision macro_recall macro_f1_caml macro_f1_present
    macro_f1_all``,
    ``p@k r@k`` for each k, ``r_precision map``, and with train_counts ``n_codes_freq_<bin>``,
    ``micro_f1_freq_<bin>``, ``macro_f1_present_freq_<bin>`` (bin labels such as ``10-49``). An undefined
    value (micro/macro AUC without positives and negatives, macro_f1_present without present codes, an
    empty bin) is left out; the counts beside it say why. Example::

        reporting.save_metrics(out, {f"cnn/test/{k}": v for k, v in evaluate(y, s).items()}, ...)
    """
    d = Prepared(y_true, y_score)
    ks = check_k(default_k(d.n_codes) if k is None else k, d.n_codes)
    t = resolve_threshold(threshold, d)
    counts = _code_counts(d, t)
    out: dict[str, float | int] = {
        "n_docs": d.n_docs, "n_codes": d.n_codes, "n_gold": int(d.rows.size),
        "n_predicted": int(counts.predicted.sum()), "n_docs_no_gold": int((d.per_doc == 0).sum()),
        "n_codes_present": int((d.per_code > 0).sum())}
    out["threshold" if np.ndim(t) == 0 else "threshold_median"] = float(np.median(t))
    micro = _micro_auc(d)
    if micro is not None:
        out["micro_auc"] = micro
    auc = _per_code_auc(d)
    defined = ~np.isnan(auc)
    if defined.any():
        out["macro_auc"] = float(auc[defined].mean())
    out["macro_auc_n_skipped"] = int((~defined).sum())
    out.update(scores_from_counts(counts))
    for name, per_doc in _per_doc_ranking(d, ks).items():
        out[name] = float(per_doc.mean())
    if train_counts is not None:
        out.update(_flat_bins(_by_frequency(counts, train_counts, bins)))
    return out


def _flat_bins(table: dict[str, np.ndarray]) -> dict[str, float | int]:
    """``n_codes_freq_<bin>`` always, the two F1 entries only where defined."""
    out: dict[str, float | int] = {}
    for i, label in enumerate(table["bin"]):
        out[f"n_codes_freq_{label}"] = int(table["n_codes"][i])
        for name in ("micro_f1", "macro_f1_present"):
            if np.isfinite(table[name][i]):
                out[f"{name}_freq_{label}"] = float(table[name][i])
    return out


def dev_threshold_scores(y_true_dev, y_score_dev, others: Mapping[str, tuple] | None = None) -> dict[str, float]:
    """F1 at one global threshold fitted on dev (``Threshold.fit``, dev labels only), on dev and on ``others``.

    ``others``: ``{split: (y_true, y_score)}``, e.g. ``{"test": (y_test, s_test)}``; their labels never choose the
    threshold. Returns ``dev_threshold`` and ``<split>/<name>@dev_threshold`` for each name in ``TUNED_SCORES``
    (the dev values are optimistic: tuned and scored on the same split). Empty when dev has no positive label
    (no threshold can be fitted). Example: ``{"dev_threshold": 0.31, "test/micro_f1@dev_threshold": 0.48, ...}``.
    """
    if not np.asarray(y_true_dev).any():
        return {}
    thr = Threshold.fit(y_true_dev, y_score_dev)
    out: dict[str, float] = {"dev_threshold": float(thr.threshold)}
    for split, (y, s) in {"dev": (y_true_dev, y_score_dev), **dict(others or {})}.items():
        # the float, not the fitted object: fitted on dev by construction here, and a split whose labels equal dev's
        # (tiny test fixtures) must not be refused as "tuned on test"
        scores = scores_from_counts(code_counts(y, s, thr.threshold))
        out.update({f"{split}/{k}@dev_threshold": float(scores[k]) for k in TUNED_SCORES})
    return out

