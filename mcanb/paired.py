"""Paired tests of two finished runs over the test notes (:func:`paired_on_test`): the one test behind the floor
check, the BERT verdicts and the report's comparisons.

A notebook tests each run against several others on several metrics (the floor check, the verdicts): the prepared
scores of one (test labels, scores, threshold, metric) are kept for the next test, keyed by their content
(:data:`KEEP_BYTES`; at MIMIC-III's full codes the micro-AUC's preparation takes seconds per model and its test under
one). Each comparison's result is kept on disk too (:data:`STORE`), keyed by the content of all it was computed from,
so `mcanb report` reads the notebooks' comparisons back instead of computing them again. A training run never imports
this module (``mcanb.identity.TRAINING_CODE``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from . import identity
from .metrics import PairedComparison
from .metrics.bootstrap import AUC_MAX_BYTES, AUCS, Scored, auc_resamplable, compare, scored
from .paths import OUTPUTS
from .predictions import load_predictions

# Every comparison paired_on_test makes, kept on disk under the identity of what it was computed from: the bytes of
# both prediction files, their thresholds, the test labels and order, the metric, the resamples, the seed and the code
# (identity.code_version). The notebooks compute them; `mcanb report`, and a notebook run again, read them back (at
# MIMIC-III's full codes a first comparison takes seconds to a quarter of a minute per metric: benchmarks/bench_metrics.py).
# Each answer names its two prediction files (relative to the store, so a moved outputs folder keeps them), and
# `mcanb runs --prune` drops the answers whose files are gone (:func:`prune`).
STORE = OUTPUTS / ".cache" / "paired"
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
    for run in (a, b):
        if tuned and run.get("dev_threshold") is None:
            raise ValueError(f"{run['predictions']}: its run has no dev-tuned threshold for {metric}")
    thresholds = [float(run["dev_threshold"]) if tuned else 0.5 for run in (a, b)]
    order = processed.hadm_ids("test")
    y_true = processed.multi_hot("test")
    y_true_key = identity.digest(y_true.tobytes(), str(y_true.shape))
    key = identity.of_settings({"test": [y_true_key, identity.digest(np.ascontiguousarray(order).tobytes())],
                                "runs": [[identity.file_sha256(r["predictions"]), t] for r, t in zip((a, b), thresholds)],
                                "metric": metric, "n_resamples": int(n_resamples), "seed": int(seed),
                                "code": identity.code_version("paired")})
    found = _stored(key)
    if found is not None:
        return found
    models = []
    for run, threshold in zip((a, b), thresholds):
        hadm, y_score = load_predictions(run["predictions"])
        if not np.array_equal(hadm, order):
            raise ValueError(f"{run['predictions']}: its documents are not the test split's, in its order")
        models.append(_prepared(y_true, y_true_key, y_score, name, threshold))
    return _store(key, compare(*models, name, n_resamples=n_resamples, seed=seed), (a, b))


def _stored(key: str) -> PairedComparison | None:
    """The comparison :func:`paired_on_test` stored under ``key``, or None (not there, or unreadable)."""
    try:
        return PairedComparison(**json.loads((STORE / f"{key}.json").read_text())["result"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _store(key: str, result: PairedComparison, runs: Iterable[Mapping[str, Any]]) -> PairedComparison:
    try:
        STORE.mkdir(parents=True, exist_ok=True)
        tmp = STORE / f".{key}.{os.getpid()}.tmp"
        sources = [os.path.relpath(Path(r["predictions"]).resolve(), STORE.resolve()) for r in runs]
        tmp.write_text(json.dumps({"predictions": sources, "result": dataclasses.asdict(result)}))
        os.replace(tmp, STORE / f"{key}.json")
    except (OSError, ValueError):         # ValueError: no relative path (another drive on Windows)
        pass                             # a read-only outputs folder only costs time
    return result


def prune(store: Path | None = None, dry_run: bool = False, removed: Iterable[Path] = ()) -> list[Path]:
    """The stored answers of :func:`paired_on_test` in ``store`` (default :data:`STORE`) that no run can ask for
    again: one of its prediction files is gone (its training run pruned or deleted; ``removed``: folders to count as
    gone, for a dry run), or the answer is unreadable or of an earlier format. Removed unless ``dry_run``; returns
    them either way."""
    store = STORE if store is None else Path(store)
    removed = [Path(d).resolve() for d in removed]
    gone = []
    for f in sorted(store.glob("*.json")):
        try:
            sources = [(store / s).resolve() for s in json.loads(f.read_text())["predictions"]]
            kept = all(s.exists() and not any(s.is_relative_to(d) for d in removed) for s in sources)
        except (OSError, ValueError, TypeError, KeyError):
            kept = False
        if not kept:
            gone.append(f)
            if not dry_run:
                f.unlink(missing_ok=True)
    return gone


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
