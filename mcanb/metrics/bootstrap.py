"""Bootstrap over documents: confidence intervals, and a paired test of "model A beats model B".

Vectorised: a block of resamples is a (n_resamples, n_docs) count matrix W (how often each document is
drawn); per-code TP / predicted / gold counts of all resamples are W times sparse per-document indicator
matrices, and per-document metrics (P@k, R@k, R-precision, AP) are W times their vectors. The AUCs are
Mann-Whitney sums with each document counted as often as it was drawn (ties count 1/2, as ``evaluate``): every
comparison of a positive with a negative is made once, before any resample, as a matrix of small integers, and a
resample's sums are that matrix times W (``_MacroAUC``, ``_MicroAUC``); a resample's macro-AUC averages the codes
with a positive and a negative among the drawn documents, as ``evaluate`` would on them. The matrices hold a byte per
(gold entry, document) and a float per pair of documents, so the AUCs are resampled up to ``AUC_MAX_BYTES`` per model
(MIMIC-III's full-code test set, 3,372 documents with about 54,000 gold codes, needs 0.27 GB). The point estimate is
the same computation with W = 1, so it equals ``evaluate``. Percentile intervals; seeded (results depend on ``seed`` and
``n_resamples`` only).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import sparse

from ._arrays import Prepared
from .classification import _ratio, predict_positions
from .ranking import _per_doc_ranking, check_k, default_k
from .thresholds import resolve_threshold

THRESHOLDED = ("micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall",
               "macro_f1_caml", "macro_f1_present", "macro_f1_all")
_PER_DOC = re.compile(r"^(p@\d+|r@\d+|r_precision|map)$")
AUCS = ("macro_auc", "micro_auc")
AUC_MAX_BYTES = 2_000_000_000  # memory per model up to which the AUCs are resampled (auc_bytes: MIMIC-III 0.27 GB)
_BLOCK = 100  # resamples drawn per block; fixed so that results depend on seed and n_resamples only
_ROWS = 4096  # positives compared or multiplied at once by the macro-AUC (a block of 4096 × n_docs)


@dataclass(frozen=True)
class ConfidenceInterval:
    """Point estimate and percentile bootstrap interval; ``n_undefined`` resamples had no value (dropped)."""

    estimate: float
    low: float
    high: float
    std: float
    confidence: float
    n_resamples: int
    n_undefined: int = 0

    def as_dict(self, name: str) -> dict[str, float]:
        """Flat entries for ``metrics.json``.

        Example: ``ci.as_dict("micro_f1")`` -> ``{"micro_f1": .5, "micro_f1_ci_low": .48, "micro_f1_ci_high": .52}``.
        """
        return {name: self.estimate, f"{name}_ci_low": self.low, f"{name}_ci_high": self.high}


@dataclass(frozen=True)
class PairedComparison:
    """Paired bootstrap of metric(A) − metric(B) on the same documents.

    ``p_value`` (one-sided, ``alternative="greater"``) is the share of resamples in which A does not beat B,
    (1 + #{diff_b ≤ 0}) / (1 + n); two-sided doubles the smaller tail. A model against itself gives diff 0, p 1.
    """

    metric: str
    estimate_a: float
    estimate_b: float
    diff: float
    low: float
    high: float
    p_value: float
    n_resamples: int
    alternative: str

    def as_dict(self, prefix: str = "") -> dict[str, float | str]:
        """Flat entries, keys prefixed. Example: ``as_dict("cnn_vs_caml/")``."""
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


class Scored:
    """One model's per-document ingredients at one threshold, ready to resample: sparse indicator matrices,
    per-document vectors and the AUCs' comparison matrices. Built once per (labels, scores, threshold, metrics):
    :func:`scored`; :func:`compare` tests two of them (``mcanb.paired`` keeps them between tests)."""

    def __init__(self, d: Prepared, threshold, names: Sequence[str]):
        self.n_docs, self.n_codes = d.n_docs, d.n_codes
        self.names = list(names)
        self.mats = None
        self._resampled: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        if any(n in THRESHOLDED for n in names):
            t = resolve_threshold(threshold, d)
            pred_flat, tp_gold = predict_positions(d, t)
            pr, pc = np.divmod(pred_flat, d.n_codes)
            self.mats = [self._codes_by_docs(d.rows[tp_gold], d.cols[tp_gold]),
                         self._codes_by_docs(pr, pc), self._codes_by_docs(d.rows, d.cols)]
        ks = sorted({int(n[2:]) for n in names if n[:2] in ("p@", "r@")})
        self.per_doc = _per_doc_ranking(d, check_k(ks or [1], d.n_codes)) if any(
            _PER_DOC.match(n) for n in names) else {}
        self.aucs = {}
        if any(n in AUCS for n in names):
            if not auc_resamplable(d.n_docs, len(d.rows)):
                raise ValueError(f"cannot bootstrap the AUCs of {d.n_docs:,} documents with {len(d.rows):,} gold "
                                 f"codes: that needs {auc_bytes(d.n_docs, len(d.rows)) / 1e9:.1f} GB per model, over "
                                 f"AUC_MAX_BYTES ({AUC_MAX_BYTES / 1e9:.1f} GB)")
            if "macro_auc" in names:
                self.aucs["macro_auc"] = _MacroAUC(d)
            if "micro_auc" in names:
                self.aucs["micro_auc"] = _MicroAUC(d)

    def resampled(self, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
        """Metric values of each of the resamples ``seed`` draws: the same documents for every model of their
        shape, so a model tested against several others (the floor) is resampled once. Returns {name: (n,)}."""
        key = (n_resamples, seed)
        if key not in self._resampled:
            blocks = [self.samples(w) for w in _draws(self.n_docs, n_resamples, seed)]
            self._resampled[key] = {k: np.concatenate([blk[k] for blk in blocks]) for k in self.names}
        return self._resampled[key]

    @property
    def nbytes(self) -> int:
        """Memory held by the matrices and vectors (the AUCs' dominate: ``auc_bytes``)."""
        held = [_sparse_bytes(m) for m in self.mats or ()]
        held += [v.nbytes for v in self.per_doc.values()] + [a.nbytes for a in self.aucs.values()]
        return sum(held)

    def _codes_by_docs(self, rows: np.ndarray, cols: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(len(rows), dtype=np.float64)
        return sparse.csr_matrix((ones, (cols, rows)), shape=(self.n_codes, self.n_docs))

    def samples(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Metric values of each resample; w: (n_resamples, n_docs) draw counts. Returns {name: (n_resamples,)}."""
        out = {}
        if self.mats is not None:
            tp, pp, g = (np.asarray(m @ w.T) for m in self.mats)  # (n_codes, n_resamples) each
            out.update(_thresholded(tp, pp, g))
        for name, v in self.per_doc.items():
            out[name] = w @ v / self.n_docs
        for name, ranked in self.aucs.items():
            auc = ranked.aucs(w)                                   # (n_resamples, columns), NaN where undefined
            ok = np.isfinite(auc)
            n_ok = ok.sum(1)
            out[name] = np.divide(np.where(ok, auc, 0.0).sum(1), n_ok, out=np.full(len(w), np.nan), where=n_ok > 0)
        return {n: out[n] for n in self.names}


def auc_bytes(n_docs: int, n_positives: int) -> int:
    """Memory the AUC resampling of one model holds: a byte per (positive note-code pair, note) and a float per pair of
    notes (see ``_MacroAUC`` and ``_MicroAUC``)."""
    return n_docs * n_positives + 8 * n_docs * n_docs


def auc_resamplable(n_docs: int, n_positives: int) -> bool:
    """Whether the bootstrap resamples the AUCs of ``n_docs`` notes with ``n_positives`` gold note-code pairs (see
    ``AUC_MAX_BYTES``)."""
    return auc_bytes(n_docs, n_positives) <= AUC_MAX_BYTES


def _sparse_bytes(m: sparse.csr_matrix) -> int:
    return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


def _positives_by_code(d: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """(note, code) of every gold entry, ordered by code."""
    order = np.lexsort((d.rows, d.cols))
    return d.rows[order], d.cols[order]


class _MacroAUC:
    """Each code's ROC AUC under note weights, from one comparison per (positive, note) pair, made once.

    For the positive entry (note p, code c), ``A[p, n]`` = 2 if note n is a negative of c scored below it, 1 if a
    negative scored the same, else 0. Under weights w, Σ over c's positives of w_p × (A[p] · w) is twice the
    count-weighted Mann-Whitney U of code c (ties 1/2), and the AUC is that over 2 × positive weight × negative weight.
    A is small integers and w counts, so every sum is exact in float32 and the result does not depend on the order of
    the sums."""

    def __init__(self, d: Prepared):
        self.n_codes = d.n_codes
        self.row, self.col = _positives_by_code(d)
        self.A = np.empty((len(self.row), d.n_docs), np.uint8)
        for a in range(0, len(self.row), _ROWS):
            r, c = self.row[a:a + _ROWS], self.col[a:a + _ROWS]
            theirs, mine = d.score[:, c].T, d.score[r, c][:, None]
            self.A[a:a + _ROWS] = ((theirs < mine).astype(np.uint8) * 2 + (theirs == mine)) * ~d.gold[:, c].T
        self.of_code = sparse.csr_matrix((np.ones(len(self.row)), (self.col, np.arange(len(self.row)))),
                                         shape=(d.n_codes, len(self.row)))

    @property
    def nbytes(self) -> int:
        return self.A.nbytes + self.row.nbytes + self.col.nbytes + _sparse_bytes(self.of_code)

    def aucs(self, w: np.ndarray) -> np.ndarray:
        """(n_resamples, n_codes) AUCs; NaN for a code without both a positive and a negative among the drawn notes."""
        w32 = w.astype(np.float32).T
        below = np.empty((len(self.row), len(w)))                       # A · w for each positive and resample
        for a in range(0, len(self.row), _ROWS):
            below[a:a + _ROWS] = self.A[a:a + _ROWS].astype(np.float32) @ w32
        w_pos = w[:, self.row].T                                        # each positive's note weight
        two_u, pos = (self.of_code @ (below * w_pos)).T, (self.of_code @ w_pos).T
        neg = w.sum(1, keepdims=True) - pos
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((pos > 0) & (neg > 0), two_u / (2 * pos * neg), np.nan)


class _MicroAUC:
    """The ROC AUC of all note-code pairs as one column, under note weights: a quadratic form in the weights.

    ``M[m, n]`` = Σ over the positives of note m of (2 × note n's negatives scored below it + those scored the same);
    under weights w, w · M · w is twice the weighted Mann-Whitney U. Each note's negatives are placed among all
    positives' scores, sorted once."""

    def __init__(self, d: Prepared):
        n = d.n_docs
        order = np.argsort(d.gold_scores, kind="stable")
        ranked, owner = d.gold_scores[order], d.rows[order]
        self.M = np.zeros((n, n))
        for note in range(n):
            negatives = d.score[note][~d.gold[note]]
            below = np.bincount(np.searchsorted(ranked, negatives, "right"), minlength=len(ranked) + 1)
            not_above = np.bincount(np.searchsorted(ranked, negatives, "left"), minlength=len(ranked) + 1)
            twice = np.cumsum(below)[:-1] + np.cumsum(not_above)[:-1]  # 2 × below + tied, each positive
            self.M[:, note] = np.bincount(owner, weights=twice, minlength=n)
        self.pos = d.per_doc.astype(np.float64)
        self.neg = d.n_codes - self.pos

    @property
    def nbytes(self) -> int:
        return self.M.nbytes + self.pos.nbytes + self.neg.nbytes

    def aucs(self, w: np.ndarray) -> np.ndarray:
        """(n_resamples, 1) AUCs; NaN where the drawn notes hold no positive or no negative pair."""
        two_u = np.einsum("rn,rn->r", w @ self.M, w)
        pos, neg = w @ self.pos, w @ self.neg
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((pos > 0) & (neg > 0), two_u / (2 * pos * neg), np.nan)[:, None]


def _thresholded(tp: np.ndarray, pp: np.ndarray, g: np.ndarray) -> dict[str, np.ndarray]:
    """The thresholded metrics of each column (resample) of per-code counts (n_codes, n_resamples)."""
    TP, PP, G = tp.sum(0), pp.sum(0), g.sum(0)
    mp, mr = _ratio(tp, pp).mean(0), _ratio(tp, g).mean(0)
    present = g > 0
    n_present = present.sum(0)
    f1 = _ratio(2 * tp, pp + g)
    f1_sum = np.where(present, f1, 0.0).sum(0)
    macro_present = np.divide(f1_sum, n_present, out=np.full(len(TP), np.nan), where=n_present > 0)
    return {"micro_precision": _ratio(TP, PP), "micro_recall": _ratio(TP, G), "micro_f1": _ratio(2 * TP, PP + G),
            "macro_precision": mp, "macro_recall": mr, "macro_f1_caml": _ratio(2 * mp * mr, mp + mr),
            "macro_f1_present": macro_present, "macro_f1_all": f1.mean(0)}


def _check_names(names: Sequence[str]) -> list[str]:
    bad = [n for n in names if n not in THRESHOLDED and n not in AUCS and not _PER_DOC.match(n)]
    if bad:
        raise ValueError(f"cannot bootstrap {bad}; choose from {THRESHOLDED}, {AUCS} or p@k, r@k, r_precision, map")
    return list(dict.fromkeys(names))


def _draws(n_docs: int, n_resamples: int, seed: int):
    """The draw counts W of ``n_resamples`` resamples of ``n_docs`` documents, in blocks of ``_BLOCK`` rows."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, _BLOCK):
        b = min(_BLOCK, n_resamples - start)
        draws = rng.integers(0, n_docs, size=(b, n_docs)) + (np.arange(b) * n_docs)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n_docs).reshape(b, n_docs).astype(np.float64)


def _resample(models: list[Scored], n_resamples: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Metric samples of each model over the same ``n_resamples`` document resamples (drawn from ``seed``)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    return [m.resampled(n_resamples, seed) for m in models]


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float, float, int]:
    """(low, high, std, n_undefined) of the finite samples."""
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        raise ValueError("every bootstrap resample left the metric undefined")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ok, [alpha, 1 - alpha])
    return float(low), float(high), float(ok.std()), int(samples.size - ok.size)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(y_true, y_score, *, metrics: Sequence[str] | None = None, threshold=0.5,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, ConfidenceInterval]:
    """Percentile bootstrap intervals over documents for thresholded and per-document metrics.

    y_true, y_score: (n_docs, n_codes). metrics: names as in ``evaluate`` (default: micro_f1,
    macro_f1_caml, macro_f1_present and P@k for ``default_k(n_codes)``). Example::

        ci = bootstrap_ci(y_true, y_score, threshold=thr)
        flat = {k: v for name, c in ci.items() for k, v in c.as_dict(name).items()}
    """
    _check_confidence(confidence)
    d = Prepared(y_true, y_score)
    if metrics is None:
        metrics = ["micro_f1", "macro_f1_caml", "macro_f1_present"] + [f"p@{k}" for k in default_k(d.n_codes)]
    model = Scored(d, threshold, _check_names(metrics))
    point = model.samples(np.ones((1, d.n_docs)))
    samples = _resample([model], n_resamples, seed)[0]
    out = {}
    for name in model.names:
        if not np.isfinite(point[name][0]):
            raise ValueError(f"{name} is undefined on these labels (no code has a gold document)")
        low, high, std, n_bad = _interval(samples[name], confidence)
        out[name] = ConfidenceInterval(float(point[name][0]), low, high, std, confidence, n_resamples, n_bad)
    return out


def scored(y_true, y_score, metric: str, threshold=0.5) -> Scored:
    """One model's scores prepared for :func:`compare` on ``metric`` at ``threshold`` (a number, or what
    ``resolve_threshold`` takes). y_true, y_score: (n_docs, n_codes)."""
    return Scored(Prepared(y_true, y_score), threshold, _check_names([metric]))


def paired_bootstrap(y_true, y_score_a, y_score_b, *, metric: str = "micro_f1", threshold_a=0.5,
                     threshold_b=None, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     alternative: str = "greater") -> PairedComparison:
    """Paired bootstrap test that model A scores higher than model B on the same test documents.

    y_true: (n_docs, n_codes); y_score_a, y_score_b: the two models' scores, same shape. threshold_b
    defaults to threshold_a. Both models are scored on the same resamples; returns the observed
    difference A − B, its percentile interval and the p-value (see ``PairedComparison``).
    """
    _check_confidence(confidence)
    _check_alternative(alternative)
    a = scored(y_true, y_score_a, metric, threshold_a)
    b = scored(y_true, y_score_b, metric, threshold_a if threshold_b is None else threshold_b)
    return compare(a, b, metric, n_resamples=n_resamples, confidence=confidence, seed=seed, alternative=alternative)


def _check_alternative(alternative: str) -> None:
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")


def compare(a: Scored, b: Scored, metric: str, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
            alternative: str = "greater") -> PairedComparison:
    """:func:`paired_bootstrap` of two prepared models (:func:`scored`, each holding ``metric``) of the same
    documents."""
    _check_confidence(confidence)
    _check_alternative(alternative)
    if metric not in a.names or metric not in b.names:
        raise ValueError(f"both models must be prepared for {metric!r}; have {a.names} and {b.names}")
    if (a.n_docs, a.n_codes) != (b.n_docs, b.n_codes):
        raise ValueError(f"shape mismatch: {(a.n_docs, a.n_codes)} vs {(b.n_docs, b.n_codes)}")
    ones = np.ones((1, a.n_docs))
    est_a, est_b = float(a.samples(ones)[metric][0]), float(b.samples(ones)[metric][0])
    sa, sb = _resample([a, b], n_resamples, seed)
    diff = sa[metric] - sb[metric]
    low, high, _, _ = _interval(diff, confidence)
    diff = diff[np.isfinite(diff)]
    p_not_better = (1 + np.sum(diff <= 0)) / (1 + diff.size)
    p = p_not_better if alternative == "greater" else min(1.0, 2 * min(p_not_better,
                                                                      (1 + np.sum(diff >= 0)) / (1 + diff.size)))
    return PairedComparison(metric, est_a, est_b, est_a - est_b, low, high, float(p), n_resamples, alternative)
