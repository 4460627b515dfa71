"""Results on disk: ``metrics.json`` with ``params.yaml`` beside it, tables (CSV + LaTeX), figures (PNG + PDF).

Every notebook writes through these functions into its ``outputs/<notebook>/<run>/`` folder, so a result
file always sits next to the parameters that produced it.

``metrics.json`` layout (one for every notebook)::

    {"notebook": "04_cnn_retraining", "run": "toy", "created": "...", "mcanb_version": "0.1.0",
     "metrics": {"cnn/test/micro_f1/mean": 0.61, "cnn/test/micro_f1/seed13": 0.6, ...}}

Metric names are flat strings (``<row>/<split>/<metric>/mean|sd|seed<k>`` where a notebook compares rows of a
study, :func:`mcanb.grid.flat_metrics`, docs/runs.md); values
are numbers, never NaN (undefined values are written as ``null`` and their reason recorded by the
metrics module). The ``<split>/<metric>`` part (``test/micro_f1``) has one owner, :func:`metric_key` /
:func:`split_metrics`: the training engine's ``metrics.json`` and ``history.csv``, the notebooks' result rows
and the seed summaries all use it.

Across seeds: :func:`summarise_seeds` (mean, sd, count per row and metric), :func:`format_mean_sd` (the
``"mean ± sd"`` table cell), :func:`learning_curves` and :func:`plot_learning_curves` (every run's
``history.csv``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from . import __version__
from .paths import PARAMETER_FILE_ENV

# Fixed palette (Okabe-Ito, colour-blind safe) so every figure names a model with the same colour.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def metric_key(split: str, name: str) -> str:
    """The flat key of metric ``name`` on ``split``: ``metric_key("test", "micro_f1")`` -> ``"test/micro_f1"``."""
    return f"{split}/{name}"


def seed_count(metrics: Mapping[str, Any], row_key: str, split: str, metric: str) -> int:
    """How many per-seed entries ``<row>/<split>/<metric>/seed<k>`` a metrics.json dict holds (at least 1: a
    deterministic baseline has its mean only). The key scheme is :func:`mcanb.grid.flat_metrics`'."""
    prefix = f"{row_key}/{split}/{metric}/seed"
    return sum(1 for k in metrics if k.startswith(prefix) and k[len(prefix):].isdigit()) or 1


def split_metrics(row: Mapping[str, Any], split: str) -> dict[str, Any]:
    """The ``split`` metrics of a flat row, keys without the prefix: ``{"test/p@5": .5, "dev/p@5": .4}`` ->
    ``{"p@5": .5}`` for ``split="test"`` (other keys are ignored)."""
    prefix = metric_key(split, "")
    return {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers; NaN/inf -> None (JSON has no NaN)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_params(out_dir: str | Path, params: Mapping[str, Any]) -> Path:
    """Write the resolved parameters as ``params.yaml`` (sorted, plain YAML).

    Under ``mcanb run`` / ``mcanb study`` a first comment line names the parameter file they came from and what it
    extends (``$MCANB_PARAMETER_FILE``, set by ``mcanb.pipeline.execute``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "params.yaml"
    clean = {k: _plain(v) if not isinstance(v, (list, tuple, dict)) else v for k, v in params.items()}
    source = os.environ.get(PARAMETER_FILE_ENV)
    header = f"# parameter file: {source}\n" if source else ""
    path.write_text(header + yaml.safe_dump(clean, sort_keys=True, allow_unicode=True))
    return path


def save_metrics(out_dir: str | Path, metrics: Mapping[str, Any], *, notebook: str, run: str,
                 params: Mapping[str, Any] | None = None) -> Path:
    """Write ``metrics.json`` (flat ``{name: number}``) and, if given, ``params.yaml`` beside it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flat = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings, got {name!r}")
        value = _plain(value)
        if value is not None and not isinstance(value, (int, float, str, bool)):
            raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}")
        flat[name] = value
    doc = {"notebook": notebook, "run": run, "mcanb_version": __version__,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "metrics": dict(sorted(flat.items()))}
    path = out / "metrics.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    if params is not None:
        save_params(out, params)
    return path


def load_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """A training run's ``history.csv`` (one row per epoch, written by :mod:`mcanb.train`) with each cell as it was
    written: int, float, None (empty) or the text; ``[]`` when the run has none."""
    import csv

    try:
        with open(Path(run_dir) / "history.csv", newline="") as f:
            return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []


def _cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def load_metrics(out_dir: str | Path) -> dict[str, Any]:
    """The flat ``metrics`` mapping of ``<out_dir>/metrics.json``."""
    path = Path(out_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics.json; run the notebook that writes it first")
    try:
        metrics = json.loads(path.read_text())["metrics"]
        if not isinstance(metrics, dict):
            raise ValueError(f"'metrics' is a {type(metrics).__name__}, not a mapping")
        return metrics
    except (ValueError, KeyError, TypeError) as e:
        from .errors import DamagedOutput
        raise DamagedOutput(f"{path}: damaged metrics file ({type(e).__name__}: {e}); expected the JSON that the "
                            f"notebook writes ({{\"metrics\": {{name: number}}}}). Remove the run folder {path.parent} "
                            "and run that notebook again (mcanb study / mcanb run)") from e


def save_table(df, out_dir: str | Path, name: str, *, float_format: str = "{:.1f}") -> Path:
    """Write ``tables/<name>.csv`` and ``tables/<name>.tex``; return the CSV path."""
    tables = Path(out_dir) / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    csv = tables / f"{name}.csv"
    df.to_csv(csv)
    styler = df.style.format(float_format.format, na_rep="--", subset=df.select_dtypes("number").columns)
    (tables / f"{name}.tex").write_text(styler.to_latex(hrules=True))
    return csv


def save_figure(fig, out_dir: str | Path, name: str) -> Path:
    """Write ``figures/<name>.png`` (150 dpi) and ``figures/<name>.pdf``; return the PNG path."""
    figures = Path(out_dir) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    png = figures / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(figures / f"{name}.pdf", bbox_inches="tight")
    return png


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


def plot_lengths(lengths: Mapping[str, np.ndarray], cutoffs: Mapping[str, int], ax=None):
    """Histogram of document lengths in tokens, with the truncation lengths as vertical lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    top = max(max(np.max(v) for v in lengths.values() if len(v)), max(cutoffs.values()))
    bins = np.linspace(0, top, 40)
    for i, (name, v) in enumerate(lengths.items()):
        ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, color=PALETTE[i], label=name)
    for j, (name, cut) in enumerate(cutoffs.items()):
        ax.axvline(cut, color=("#000000", "#D55E00", "#CC79A7")[j % 3], linestyle="--", label=f"{name} ({cut})")
    ax.set_xlabel("tokens per document")
    ax.set_ylabel("share of documents (density)")
    ax.set_title("Document length")
    ax.legend()
    return ax.figure


def summarise_seeds(results: Sequence[dict], split: str = "test") -> pd.DataFrame:
    """Mean, sd (ddof 1; 0 for one seed) and seed count per row and metric over ``results``.

    ``results``: result records (:func:`mcanb.grid.record`: ``row``, ``seed`` and ``<split>/<metric>`` keys).
    Returns columns row, metric, mean, sd, n_seeds. Only scores are summarised (not counts ``n_*`` nor
    ``threshold``).
    """
    rows = [{"row": r["row"], "metric": k, "value": v}
            for r in results for k, v in split_metrics(r, split).items() if v is not None and _is_score(k)]
    long = pd.DataFrame(rows, columns=["row", "metric", "value"])   # no results: an empty summary
    g = long.groupby(["row", "metric"], sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n_seeds="count").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    return out


def _is_score(metric: str) -> bool:
    """A metric worth averaging over seeds (not a count such as ``n_docs`` or ``macro_auc_n_skipped``)."""
    return not (metric.startswith(("n_", "threshold")) or "_n_" in metric)


def format_mean_sd(mean: float, sd: float, n_seeds: int) -> str:
    """A table cell in percent: ``"50.0 ± 1.0"`` over several seeds, ``"25.0"`` for one (its sd is meaningless)."""
    return f"{100 * mean:.1f}" if n_seeds == 1 else f"{100 * mean:.1f} ± {100 * sd:.1f}"


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
