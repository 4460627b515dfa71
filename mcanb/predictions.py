"""Saved scores of a run: ``predictions_{dev,test}.parquet`` with one row per document.

Columns: ``hadm_id`` (int64) and ``scores`` (fixed-size list<float32>[C], column order = label index of the
label space's ``labels.csv``). Written by ``mcanb.train.fit`` and the baselines, read by the notebooks'
comparisons (paired bootstrap, thresholds) without Python loops; :func:`paired_on_test` is that comparison for two
result records (:func:`mcanb.grid.record`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import PairedComparison, paired_bootstrap
from .metrics.bootstrap import AUCS, auc_resamplable


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
    scores, thresholds = [], []
    for run in (a, b):
        hadm, y_score = load_predictions(run["predictions"])
        if not np.array_equal(hadm, order):
            raise ValueError(f"{run['predictions']}: its documents are not the test split's, in its order")
        if tuned and run.get("dev_threshold") is None:
            raise ValueError(f"{run['predictions']}: its run has no dev-tuned threshold for {metric}")
        scores.append(y_score)
        thresholds.append(float(run["dev_threshold"]) if tuned else 0.5)
    return paired_bootstrap(processed.multi_hot("test"), scores[0], scores[1], metric=name,
                            threshold_a=thresholds[0], threshold_b=thresholds[1], n_resamples=n_resamples, seed=seed)


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
