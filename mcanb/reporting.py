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

Across seeds: :func:`summarise_seeds` (mean, sd, count per row and metric) and :func:`format_mean_sd` (the
``"mean ± sd"`` table cell). The figures themselves are :mod:`mcanb.plots`'s: the training engine writes through
this module, so whatever is here counts in a training run's code version (``mcanb.identity.TRAINING_CODE``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import yaml

from . import __version__
from .paths import PARAMETER_FILE_ENV


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
