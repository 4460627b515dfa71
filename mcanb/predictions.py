"""Saved scores of a run: ``predictions_{dev,test}.parquet`` with one row per document.

Columns: ``hadm_id`` (int64) and ``scores`` (fixed-size list<float32>[C], column order = label index of the
label space's ``labels.csv``). Written by ``mcanb.train.fit`` and the baselines, read by the notebooks'
comparisons (paired bootstrap, thresholds) without Python loops; :func:`paired_on_test` is that comparison for two
result records (:func:`mcanb.grid.record`). A notebook tests each run against several others on several metrics
(the floor check, the verdicts): the prepared scores of one (test labels, scores, threshold, metric) are kept for the
next test, keyed by their content (:data:`KEEP_BYTES`; at MIMIC-III's full codes the micro-AUC's preparation takes
seconds per model and its test under one).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import identity
from .metrics import PairedComparison
from .metrics.bootstrap import AUC_MAX_BYTES, AUCS, Scored, auc_resamplable, compare, scored


def save_predictions(path: str | Path, hadm_ids: np.ndarray, y_score: np.ndarray) -> Path:
    """Write ``hadm_ids (n,)`` and ``y_score (n, C)`` (stored as float32) to the parquet file ``path``."""
    flat = pa.array(np.ascontiguousarray(y_score, dtype=np.float32).reshape(-1))
    table = pa.table({"hadm_id": pa.array(hadm_ids, pa.int64()),
                      "scores": pa.FixedSizeListArray.from_arrays(flat, y_score.shape[1])})
    pq.write_table(table, path)
    return Path(path)


def load_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``save_predictions``: ``(hadm_ids (n,), y_score (n, C) float32)`` without Python loops."""
    table = pq.read_table(path)
    col = table.column("scores").combine_chunks()
    y_score = col.flatten().to_numpy(zero_copy_only=False).reshape(len(table), col.type.list_size)
    return table.column("hadm_id").to_numpy(), y_score


AT_DEV = "@dev_threshold"   # a metric name with this suffix is scored at each run's own dev-tuned threshold
KEEP_BYTES = AUC_MAX_BYTES  # prepared scores kept between tests, least recently used dropped first
_kept: OrderedDict[str, Scored] = OrderedDict()


def _prepared(y_true: np.ndarray, y_true_key: str, y_score: np.ndarray, name: str, threshold: float) -> Scored:
    """``scored(...)`` of these labels and scores, kept while they fit in :data:`KEEP_BYTES`."""
    key = identity.digest(y_true_key, np.ascontiguousarray(y_score).tobytes(), str(y_score.shape), name,
                          repr(float(threshold)))
    if key in _kept:
        _kept.move_to_end(key)
        return _kept[key]
    model = _kept[key] = scored(y_true, y_score, name, threshold)
    while len(_kept) > 1 and sum(m.nbytes for m in _kept.values()) > KEEP_BYTES:
        _kept.popitem(last=False)
    return model


def paired_on_test(processed: Any, a: Mapping[str, Any], b: Mapping[str, Any], metric: str = "micro_f1", *,
                   n_resamples: int = 1000, seed: int = 0) -> PairedComparison:
    """Paired bootstrap over the test documents: does run ``a`` score higher than run ``b`` on ``metric``?

    ``a``, ``b``: result records (``predictions``, the test predictions' path, and ``dev_threshold``), of one trained
    model each. ``metric``: a name :func:`mcanb.metrics.paired_bootstrap` takes (``micro_f1``, ``map``, ``p@5``...),
    scored at 0.5, or with the suffix ``@dev_threshold`` (``micro_f1@dev_threshold``) at each run's own threshold
    tuned on dev, so the test set plays no part in either threshold. ``processed``: the label space's data
    (``multi_hot("test")``, ``hadm_ids("test")``), whose test order both prediction files must have.
    """
    name, tuned = (metric[:-len(AT_DEV)], True) if metric.endswith(AT_DEV) else (metric, False)
    order = processed.hadm_ids("test")
    scores = []
    for run in (a, b):
        hadm, y_score = load_predictions(run["predictions"])
        if not np.array_equal(hadm, order):
            raise ValueError(f"{run['predictions']}: its documents are not the test split's, in its order")
        if tuned and run.get("dev_threshold") is None:
            raise ValueError(f"{run['predictions']}: its run has no dev-tuned threshold for {metric}")
        scores.append((y_score, float(run["dev_threshold"]) if tuned else 0.5))
    y_true = processed.multi_hot("test")
    y_true_key = identity.digest(y_true.tobytes(), str(y_true.shape))
    models = [_prepared(y_true, y_true_key, y_score, name, threshold) for y_score, threshold in scores]
    return compare(*models, name, n_resamples=n_resamples, seed=seed)


def resamplable(metric: str, processed: Any) -> bool:
    """Whether :func:`paired_on_test` can test ``metric`` on ``processed``'s test set: every metric; the AUCs while
    their comparison matrices fit :data:`mcanb.metrics.bootstrap.AUC_MAX_BYTES` (MIMIC-III's full codes do: 0.27 GB
    per model)."""
    if metric.split("@")[0] not in AUCS:
        return True
    return auc_resamplable(len(processed.hadm_ids("test")), sum(map(len, processed.label_ids("test"))))


def worst_p(processed: Any, pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], metric: str, *,
            n_resamples: int = 1000) -> float:
    """The largest one-sided p of :func:`paired_on_test` over ``(a, b)`` pairs of runs (one per seed): a difference
    stands beyond test-set noise only if every seed shows it."""
    return max(paired_on_test(processed, a, b, metric, n_resamples=n_resamples).p_value for a, b in pairs)
