"""Bootstrap over documents: confidence intervals, and a paired test of "model A beats model B".

Vectorised: a block of resamples is a (n_resamples, n_docs) count matrix W (how often each document is
drawn); per-code TP / predicted / gold counts of all resamples are W times sparse per-document indicator
matrices, and per-document metrics (P@k, R@k, R-precision, AP) are W times their vectors. The AUCs are
Mann-Whitney sums with each document counted as often as it was drawn: every code's scores are sorted once, and a
resample's sums are cumulative weights along that order (ties count 1/2, as ``evaluate``); a resample's macro-AUC
averages the codes with a positive and a negative among the drawn documents, as ``evaluate`` would on them. They
cost O(n_docs × n_codes) per resample, so they are resampled up to ``AUC_MAX_ENTRIES`` (MIMIC-III's top-50 test
set, 1,729 × 50, is well inside; its full-code one, 3,372 × 8,922, is not). The point estimate is the same
computation with W = 1, so it equals ``evaluate``. Percentile intervals; seeded (results depend on ``seed`` and
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
AUC_MAX_ENTRIES = 5_000_000   # n_docs × n_codes up to which the AUCs are resampled (a test costs seconds there)
_BLOCK = 100  # resamples drawn per block; fixed so that results depend on seed and n_resamples only
_CHUNK = 2_000_000  # weights gathered at once by the AUCs (16 MB of float64)


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


class _Model:
    """One model's per-document ingredients at one threshold: sparse indicator matrices and per-doc vectors."""

    def __init__(self, d: Prepared, threshold, names: Sequence[str]):
        self.n_docs, self.n_codes = d.n_docs, d.n_codes
        self.names = list(names)
        self.mats = None
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
            if not auc_resamplable(d.n_docs, d.n_codes):
                raise ValueError(f"cannot bootstrap the AUCs of {d.n_docs:,} × {d.n_codes:,} scores: over "
                                 f"AUC_MAX_ENTRIES ({AUC_MAX_ENTRIES:,}) document-code pairs")
            gold, score = d.gold, d.score
            if "macro_auc" in names:
                self.aucs["macro_auc"] = _Ranked(score, gold, np.arange(d.n_docs)[:, None])
            if "micro_auc" in names:
                self.aucs["micro_auc"] = _Ranked(score.reshape(-1, 1), gold.reshape(-1, 1),
                                                 np.repeat(np.arange(d.n_docs), d.n_codes)[:, None])

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


def auc_resamplable(n_docs: int, n_codes: int) -> bool:
    """Whether the bootstrap resamples the AUCs of ``n_docs × n_codes`` scores (see ``AUC_MAX_ENTRIES``)."""
    return n_docs * n_codes <= AUC_MAX_ENTRIES


class _Ranked:
    """Columns of scores sorted once, for each column's ROC AUC under document weights.

    ``score``, ``gold``: (m, k); ``doc``: (m, 1) or (m, k), the document of each entry. Macro-AUC: the codes are the
    columns (m = n_docs); micro-AUC: one column of every (document, code) pair.
    """

    def __init__(self, score: np.ndarray, gold: np.ndarray, doc: np.ndarray):
        m, k = score.shape
        order = np.argsort(score, axis=0, kind="stable")
        ranked = np.take_along_axis(score, order, 0)
        self.gold = np.take_along_axis(gold, order, 0)
        self.doc = np.take_along_axis(np.broadcast_to(doc, (m, k)), order, 0)
        idx = np.broadcast_to(np.arange(m)[:, None], (m, k))
        differs = ranked[1:] != ranked[:-1]
        first = np.vstack([np.ones((1, k), bool), differs])       # an entry starts its tie group
        last = np.vstack([differs, np.ones((1, k), bool)])        # an entry ends it
        self.start = np.maximum.accumulate(np.where(first, idx, 0), axis=0)              # where its group starts
        self.stop = np.minimum.accumulate(np.where(last, idx, m)[::-1], axis=0)[::-1] + 1  # one past its end

    def aucs(self, w: np.ndarray) -> np.ndarray:
        """(n_resamples, k) AUCs: 2U = Σ over positives of their weight × (2 × negative weight below them + tied
        negative weight), over 2 × positive weight × negative weight; NaN for a column without both."""
        m, k = self.gold.shape
        out = np.empty((len(w), k))
        cols = max(1, min(k, _CHUNK // (m * _BLOCK)))
        rows = max(1, min(len(w), _CHUNK // (m * cols)))
        w = w.astype(np.float32)        # counts: sums of up to AUC_MAX_ENTRIES of them are exact in float32
        for c in range(0, k, cols):
            g, doc = self.gold[:, c:c + cols], self.doc[:, c:c + cols]
            kk = g.shape[1]
            col, row = np.nonzero(g.T)                                  # the positives, column by column
            by_col = np.zeros((len(col), kk))
            by_col[np.arange(len(col)), col] = 1.0
            first = self.start[:, c:c + cols][row, col] * kk + col      # into the padded (m + 1, kk) cumulative sums
            after = self.stop[:, c:c + cols][row, col] * kk + col
            for r in range(0, len(w), rows):
                wd = w[r:r + rows][:, doc]                              # (b, m, kk): each entry's weight
                neg = np.zeros((len(wd), m + 1, kk), np.float32)
                np.cumsum(np.where(g, np.float32(0), wd), axis=1, out=neg[:, 1:])
                neg = neg.reshape(len(wd), -1)                          # gathered before float64: no full copy
                w_pos = wd.reshape(len(wd), -1)[:, row * kk + col].astype(np.float64)
                below_and_to_end = neg[:, first].astype(np.float64) + neg[:, after]   # = 2 × below + tied
                two_u = (w_pos * below_and_to_end) @ by_col
                pos, n_neg = w_pos @ by_col, neg[:, -kk:].astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[r:r + rows, c:c + kk] = np.where((pos > 0) & (n_neg > 0), two_u / (2 * pos * n_neg), np.nan)
        return out


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


def _resample(models: list[_Model], n_resamples: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Metric samples of each model over the same ``n_resamples`` document resamples."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    n = models[0].n_docs
    rng = np.random.default_rng(seed)
    blocks: list[list[dict[str, np.ndarray]]] = [[] for _ in models]
    for start in range(0, n_resamples, _BLOCK):
        b = min(_BLOCK, n_resamples - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        w = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        for out, m in zip(blocks, models):
            out.append(m.samples(w))
    return [{k: np.concatenate([blk[k] for blk in out]) for k in out[0]} for out in blocks]


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
    model = _Model(d, threshold, _check_names(metrics))
    point = model.samples(np.ones((1, d.n_docs)))
    samples = _resample([model], n_resamples, seed)[0]
    out = {}
    for name in model.names:
        if not np.isfinite(point[name][0]):
            raise ValueError(f"{name} is undefined on these labels (no code has a gold document)")
        low, high, std, n_bad = _interval(samples[name], confidence)
        out[name] = ConfidenceInterval(float(point[name][0]), low, high, std, confidence, n_resamples, n_bad)
    return out


def paired_bootstrap(y_true, y_score_a, y_score_b, *, metric: str = "micro_f1", threshold_a=0.5,
                     threshold_b=None, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     alternative: str = "greater") -> PairedComparison:
    """Paired bootstrap test that model A scores higher than model B on the same test documents.

    y_true: (n_docs, n_codes); y_score_a, y_score_b: the two models' scores, same shape. threshold_b
    defaults to threshold_a. Both models are scored on the same resamples; returns the observed
    difference A − B, its percentile interval and the p-value (see ``PairedComparison``).
    """
    _check_confidence(confidence)
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    names = _check_names([metric])
    da, db = Prepared(y_true, y_score_a), Prepared(y_true, y_score_b)
    thr_b = threshold_a if threshold_b is None else threshold_b
    a, b = _Model(da, threshold_a, names), _Model(db, thr_b, names)
    ones = np.ones((1, da.n_docs))
    est_a, est_b = float(a.samples(ones)[metric][0]), float(b.samples(ones)[metric][0])
    sa, sb = _resample([a, b], n_resamples, seed)
    diff = sa[metric] - sb[metric]
    low, high, _, _ = _interval(diff, confidence)
    diff = diff[np.isfinite(diff)]
    p_not_better = (1 + np.sum(diff <= 0)) / (1 + diff.size)
    p = p_not_better if alternative == "greater" else min(1.0, 2 * min(p_not_better,
                                                                      (1 + np.sum(diff >= 0)) / (1 + diff.size)))
    return PairedComparison(metric, est_a, est_b, est_a - est_b, low, high, float(p), n_resamples, alternative)
