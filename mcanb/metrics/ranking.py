"""Threshold-free metrics: ROC AUC (macro, micro), P@k, R@k, R-precision, mean average precision.

Definitions are in the package docstring (``mcanb.metrics``). All functions take ``y_true`` (n_docs,
n_codes) 0/1 and ``y_score`` (n_docs, n_codes) float, and never sort the whole matrix (see ``_arrays``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._arrays import (Prepared, bit_width, code_candidates, count_below_global, count_below_sorted, dense_keys,
                      pack, sortable_keys)

K_BY_LABEL_SPACE = {"50": (5,), "full": (8, 15)}


def default_k(n_codes: int) -> tuple[int, ...]:
    """The k values the paper's tables use: (5,) for a top-50 label space (≤ 50 codes), else (8, 15).

    k is capped at n_codes (toy label spaces).
    Example: ``default_k(50)`` -> ``(5,)``; ``default_k(8921)`` -> ``(8, 15)``.
    """
    ks = K_BY_LABEL_SPACE["50"] if n_codes <= 50 else K_BY_LABEL_SPACE["full"]
    return tuple(sorted({min(k, n_codes) for k in ks}))


def k_for_label_space(label_space: str) -> tuple[int, ...]:
    """k values for a named label space, ``"50"`` or ``"full"``.

    Example: ``k_for_label_space("full")`` -> ``(8, 15)``.
    """
    if label_space not in K_BY_LABEL_SPACE:
        raise ValueError(f"label_space must be one of {sorted(K_BY_LABEL_SPACE)}, got {label_space!r}")
    return K_BY_LABEL_SPACE[label_space]


def check_k(k: int | Sequence[int], n_codes: int) -> tuple[int, ...]:
    """k as a sorted tuple of distinct ints in [1, n_codes]. Example: ``check_k(8, 50)`` -> ``(8,)``."""
    ks = (k,) if np.isscalar(k) else tuple(k)
    for v in ks:
        if int(v) != v or not 1 <= v <= n_codes:
            raise ValueError(f"k must be integers in [1, n_codes={n_codes}], got {v!r}")
    return tuple(sorted({int(v) for v in ks}))


# ---------------------------------------------------------------- AUC (rank-sum / Mann-Whitney U)

def _auc_from_counts(neg_less: np.ndarray, neg_equal: np.ndarray) -> np.ndarray:
    """2·U contributions of each positive: negatives below it count 1, tied negatives 1/2 (sklearn's ties)."""
    return 2 * neg_less + neg_equal


def _per_code_auc(d: Prepared) -> np.ndarray:
    """(n_codes,) ROC AUC per code, NaN for codes without a positive or without a negative."""
    pos, neg = d.per_code, d.n_docs - d.per_code
    out = np.full(d.n_codes, np.nan)
    if d.rows.size == 0:
        return out
    all_sorted, gold_packed, n_cand = code_candidates(d)
    all_less, all_equal = count_below_sorted(all_sorted, gold_packed)
    pos_less, pos_equal = count_below_sorted(np.sort(gold_packed), gold_packed)
    all_less -= (np.cumsum(n_cand) - n_cand)[d.cols]  # position within the code's block
    pos_less -= (np.cumsum(pos) - pos)[d.cols]
    below = (d.n_docs - n_cand)[d.cols]
    two_u = np.bincount(d.cols, weights=_auc_from_counts(below + all_less - pos_less, all_equal - pos_equal),
                        minlength=d.n_codes)
    ok = (pos > 0) & (neg > 0)
    out[ok] = two_u[ok] / (2.0 * pos[ok] * neg[ok])
    return out


def _micro_auc(d: Prepared) -> float | None:
    """ROC AUC of the flattened matrix; None if it has no positive or no negative."""
    n_pos = d.rows.size
    n_neg = d.score.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    keys, bits = sortable_keys(d.score.ravel())
    gold = keys[d.rows * d.n_codes + d.cols]
    all_less, all_equal = count_below_global(keys, bits, gold)
    pos_less, pos_equal = count_below_sorted(np.sort(gold), gold)
    two_u = _auc_from_counts(all_less - pos_less, all_equal - pos_equal).sum(dtype=np.int64)
    return float(two_u / (2.0 * n_pos * n_neg))


def per_code_auc(y_true, y_score) -> np.ndarray:
    """ROC AUC of each code (ties count 1/2, as sklearn), NaN where undefined (no positive or no negative).

    y_true, y_score: (n_docs, n_codes). Returns (n_codes,) float64.
    """
    return _per_code_auc(Prepared(y_true, y_score))


def macro_auc(y_true, y_score) -> float:
    """Mean per-code ROC AUC over codes with ≥ 1 positive and ≥ 1 negative; ValueError if there is none.

    The number of codes skipped is ``evaluate(...)["macro_auc_n_skipped"]`` or ``np.isnan(per_code_auc(...)).sum()``.
    """
    auc = per_code_auc(y_true, y_score)
    if np.isnan(auc).all():
        raise ValueError("macro AUC undefined: no code has both a positive and a negative document")
    return float(np.nanmean(auc))


def micro_auc(y_true, y_score) -> float:
    """ROC AUC of all (document, code) pairs pooled; ValueError if there is no positive or no negative."""
    value = _micro_auc(Prepared(y_true, y_score))
    if value is None:
        raise ValueError("micro AUC undefined: the matrix has no positive or no negative entry")
    return value


# ---------------------------------------------------------------- per-document ranking metrics

def _ranked_candidates(d: Prepared, k_max: int):
    """Per document with gold codes, the entries down to min(lowest gold score, k_max-th score), in rank order.

    Rank order: score descending, ties broken by lower code index (deterministic). Returns
    (rows, scores' dense keys descending, cols, is_gold, row_start), all sorted.
    """
    has_gold = d.per_doc > 0
    cut = np.full(d.n_docs, np.inf, dtype=d.score.dtype)
    starts = np.flatnonzero(np.r_[True, d.rows[1:] != d.rows[:-1]]) if d.rows.size else np.array([], int)
    if d.rows.size:
        cut[d.rows[starts]] = np.minimum.reduceat(d.gold_scores, starts)
    mask = d.score >= cut[:, None]
    short = np.flatnonzero(has_gold & (np.count_nonzero(mask, axis=1) < k_max))
    if short.size:  # documents whose gold codes all rank in the top k_max: extend to the k_max-th score
        kth = -np.partition(-d.score[short], k_max - 1, axis=1)[:, k_max - 1]
        cut[short] = np.minimum(cut[short], kth)
        mask[short] = d.score[short] >= cut[short, None]
    r, c = np.divmod(np.flatnonzero(mask), d.n_codes)
    keys, bits = sortable_keys(d.score[r, c])
    keys, _, bits = dense_keys(keys, bits)
    desc = (1 << bits) - 1 - keys
    rb, cb = bit_width(d.n_docs), bit_width(d.n_codes)
    packed = pack((r, rb), (desc, bits), (c, cb))
    if packed is None:
        order = np.lexsort((c, desc, r))
        r, desc, c = r[order], desc[order], c[order]
    else:
        packed.sort()
        r, desc, c = packed >> (bits + cb), (packed >> cb) & ((1 << bits) - 1), packed & ((1 << cb) - 1)
    n_cand = np.bincount(r, minlength=d.n_docs)
    return r, desc, c, d.gold[r, c], np.cumsum(n_cand) - n_cand


def _per_doc_ranking(d: Prepared, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-document ``p@k``, ``r@k`` (each k), ``r_precision`` and ``map`` (average precision), (n_docs,) each.

    Documents without gold codes get 0 for all of them.
    """
    n_gold = d.per_doc
    has = n_gold > 0
    out: dict[str, np.ndarray] = {}
    r, desc, c, g, start = _ranked_candidates(d, max(ks))
    cum = np.cumsum(g)
    within = cum - np.r_[0, cum][start][r]  # gold codes ranked at or above each position, per document

    def hits_at(depth: np.ndarray) -> np.ndarray:
        h = np.zeros(d.n_docs)
        h[has] = within[start[has] + depth[has] - 1]
        return h

    safe_gold = np.maximum(n_gold, 1)
    for k in ks:
        hits = hits_at(np.full(d.n_docs, k))
        out[f"p@{k}"], out[f"r@{k}"] = hits / k, hits / safe_gold
    out["r_precision"] = hits_at(n_gold) / safe_gold
    # Average precision with ties as sklearn: a gold code's precision counts every entry tied with it.
    new_run = np.r_[True, (r[1:] != r[:-1]) | (desc[1:] != desc[:-1])]
    run_last = np.r_[np.flatnonzero(new_run)[1:] - 1, len(r) - 1][np.cumsum(new_run) - 1]
    last = run_last[g]
    precision = within[last] / (last - start[r[g]] + 1)
    out["map"] = np.bincount(r[g], weights=precision, minlength=d.n_docs) / safe_gold
    return out


def ranking_per_doc(y_true, y_score, k: int | Sequence[int] = (5,)) -> dict[str, np.ndarray]:
    """Per-document ranking metrics: ``{"p@k", "r@k" for each k, "r_precision", "map"}``, (n_docs,) arrays.

    Their means over documents are the reported values; the bootstrap resamples these vectors.
    """
    d = Prepared(y_true, y_score)
    return _per_doc_ranking(d, check_k(k, d.n_codes))


def precision_at_k(y_true, y_score, k: int) -> float:
    """P@k: mean over documents of |gold ∩ top-k| / k (CAML); a document without gold codes counts 0.

    Ties at the k-th score are broken by lower code index. Example: gold {0, 2}, scores [.9, .8, .7], k=2 -> 0.5.
    """
    return float(ranking_per_doc(y_true, y_score, k)[f"p@{k}"].mean())


def recall_at_k(y_true, y_score, k: int) -> float:
    """R@k: mean over documents of |gold ∩ top-k| / |gold| (CAML); a document without gold codes counts 0."""
    return float(ranking_per_doc(y_true, y_score, k)[f"r@{k}"].mean())


def r_precision(y_true, y_score) -> float:
    """R-precision: mean over documents of |gold ∩ top-R| / R with R = |gold| (Edin et al.); no gold counts 0."""
    return float(ranking_per_doc(y_true, y_score, 1)["r_precision"].mean())


def mean_average_precision(y_true, y_score) -> float:
    """mAP: mean over documents of average precision over the document's codes (Edin et al.).

    Equals ``mean(sklearn.metrics.average_precision_score(y_true[i], y_score[i]))`` (ties as sklearn); a
    document without gold codes counts 0.
    """
    return float(ranking_per_doc(y_true, y_score, 1)["map"].mean())
