"""A model's scores for a dataset, and the metrics ``mcanb.train.fit`` reports on them.

:func:`predict` scores every document (length-bucketed batches, sharded over the processes of an
``accelerate.Accelerator`` and gathered again); :func:`metrics_with_loss` turns scores into ``metric_fn``'s metrics
plus ``loss``, the mean binary cross-entropy of the scores (:func:`bce`; ``early_stopping_metric="loss"`` stops on
it). Explained in notebooks/04_cnn_retraining.ipynb (training).
"""
from __future__ import annotations

import contextlib
import numpy as np
import torch

from . import batching
from .metrics.stopping import MetricFn


def bce(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (the dev "loss" metric)."""
    p = np.clip(y_score.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


@torch.no_grad()
def predict(model: torch.nn.Module, ds, batch_size: int, *, accelerator=None,
            num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores for every document of ``ds``: ``(hadm_ids (n,), y_score (n, C) float32)``, dataset order.

    With an ``accelerator`` of several processes each one scores a share of every batch and the shares are
    gathered (``gather_for_metrics``), so every process returns the full result.
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    if accelerator is not None:
        model = accelerator.unwrap_model(model)   # no DDP collectives: processes may run different batch counts
    device = next(model.parameters()).device
    sampler = batching.BucketBatchSampler(ds.lengths, batch_size, shuffle=False, num_shards=world, shard_index=rank)
    loader = batching.loader(ds, sampler, num_workers, device, seed=0)
    was_training = model.training
    model.eval()
    index, scores = [np.zeros(0, dtype=np.int64)], [np.zeros((0, ds.num_codes), dtype=np.float32)]
    autocast = accelerator.autocast if accelerator else contextlib.nullcontext
    for batch, global_batch in zip(loader, sampler.batches()):
        n = sampler.shard_sizes(global_batch)[rank]
        if n == 0:
            continue
        with autocast():
            out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device), None)
        scores.append(torch.sigmoid(out.logits.float()).cpu().numpy()[:n])
        index.append(batch["index"].numpy()[:n])
    model.train(was_training)
    parts = [(np.concatenate(index), np.concatenate(scores))]
    if world > 1:
        parts = accelerator.gather_for_metrics(parts, use_gather_object=True)
    index, scores = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    y_score = np.empty((len(ds), ds.num_codes), dtype=np.float32)
    y_score[index] = scores
    return np.asarray(ds.hadm_ids, dtype=np.int64).copy(), y_score


def metrics_with_loss(ds, y_score: np.ndarray, metric_fn: MetricFn) -> dict[str, float | None]:
    """``metric_fn(labels, y_score)`` as plain floats (None kept) and ``loss`` (:func:`bce`) for dataset ``ds``."""
    y_true = ds.labels_matrix()
    out = {k: (None if v is None else float(v)) for k, v in metric_fn(y_true, y_score).items()}
    return {**out, "loss": bce(y_true, y_score)}
