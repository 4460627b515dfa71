"""The notebooks' figures and what they say about training: code frequency and note lengths (notebook 01), every
run's learning curves (notebooks 02-04, from each run's ``history.csv``) and whether runs were still improving when
``num_epochs`` ended them. Written to disk by :func:`mcanb.reporting.save_figure`. A training run never imports this
module, so editing a figure retrains nothing (``mcanb.identity.TRAINING_CODE``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .reporting import metric_key

# Fixed palette (Okabe-Ito, colour-blind safe) so every figure names a model with the same colour.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def plot_code_frequency(train_counts: Mapping[str, np.ndarray], ax=None):
    """Rank-frequency plot (log-log) of training-set code counts, one line per label space."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, (name, counts) in enumerate(train_counts.items()):
        c = np.sort(np.asarray(counts))[::-1]
        ax.loglog(np.arange(1, len(c) + 1), np.maximum(c, 0.8), color=PALETTE[i], label=name)
    ax.set_xlabel("code rank")
    ax.set_ylabel("training documents with the code")
    ax.set_title("Code frequency (a long tail)")
    ax.legend()
    return ax.figure


def plot_lengths(lengths: Mapping[str, np.ndarray], cutoffs: Mapping[str, int], ax=None,
                 unit: str = "tokens per document", title: str = "Document length"):
    """Histogram of document lengths (in ``unit``), with the truncation lengths as vertical lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    top = max(max(np.max(v) for v in lengths.values() if len(v)), max(cutoffs.values()))
    bins = np.linspace(0, top, 40)
    for i, (name, v) in enumerate(lengths.items()):
        ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, color=PALETTE[i], label=name)
    for j, (name, cut) in enumerate(cutoffs.items()):
        ax.axvline(cut, color=("#000000", "#D55E00", "#CC79A7")[j % 3], linestyle="--", label=f"{name} ({cut})")
    ax.set_xlabel(unit)
    ax.set_ylabel("share of documents (density)")
    ax.set_title(title)
    ax.legend()
    return ax.figure


def learning_curves(results: Sequence[dict]) -> pd.DataFrame:
    """Every trained run's ``history.csv`` stacked, with ``model`` (the row's label) and ``seed`` columns
    (baselines skipped)."""
    frames = [pd.read_csv(Path(r["dir"]) / "history.csv").assign(model=r["label"], seed=r["seed"])
              for r in results if (Path(r["dir"]) / "history.csv").exists()]
    return pd.concat(frames, ignore_index=True)


def still_improving(results: Sequence[dict]) -> str:
    """How many trained runs (``epochs``, ``best_epoch`` counted from 0 and ``stop_reason`` of
    :func:`mcanb.grid.record`) had their best dev epoch at their last one with ``num_epochs`` ending them: they were
    still improving, so more epochs may raise their scores. "" when none did."""
    trained = [r for r in results if r.get("epochs")]
    rising = [r for r in trained if r.get("stop_reason") == "num_epochs" and r.get("best_epoch") is not None
              and r["best_epoch"] + 1 == r["epochs"]]
    if not rising:
        return ""
    return (f"{len(rising)} of {len(trained)} runs had their best dev epoch at their last one: num_epochs ended them "
            "while they were still improving, so more epochs may raise their scores")


def plot_learning_curves(curves: pd.DataFrame, metric: str = "micro_f1"):
    """Two panels per epoch: training loss and the dev ``metric``; one colour per model, one line per seed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (model, runs) in enumerate(curves.groupby("model", sort=False)):
        for j, (_, h) in enumerate(runs.groupby("seed")):
            kw = {"color": PALETTE[i % len(PALETTE)], "label": model if j == 0 else None, "marker": "o", "ms": 3}
            axes[0].plot(h["epoch"] + 1, h["train_loss"], **kw)
            axes[1].plot(h["epoch"] + 1, h[metric_key("dev", metric)], **kw)
    for ax, ylabel in zip(axes, ("training loss (BCE)", f"dev {metric}")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
    axes[0].legend()
    fig.tight_layout()
    return fig
