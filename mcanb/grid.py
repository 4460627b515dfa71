"""One study API for both model families: rows × seeds over a processed dataset, in one run store.

A *row* is one line of a results table: a CNN-family model (:class:`mcanb.cnn_study.CnnRow`) or an (encoder, BERT
architecture) pair (:class:`mcanb.bert_study.BertRow`). Each row knows its family's part, :meth:`Row.prepare`
(the model, its datasets, training settings and identity parts for one seed); everything else is here, once:

* :func:`run_grid` trains every row for every seed and returns one :func:`record` per training run;
* :func:`train` puts each run in the run store ``outputs/runs/<row key>/<identity>/seed<k>/``. The folder comes
  from the run's identity (:mod:`mcanb.identity`, seed left out so the seeds of one setting sit together);
  ``mcanb.train.fit(resume=True)`` reuses or continues a run only when its ``identity.json`` matches exactly,
  and the notebook run records that its results come from it (:func:`mcanb.identity.record_use`);
* :func:`flat_metrics` writes the one metric-key scheme of every notebook's ``metrics.json``:
  ``<row key>/<split>/<metric>/mean`` and ``/sd`` over seeds, ``<row key>/<split>/<metric>/seed<k>`` per seed, and
  ``<row key>/fit/<field>/seed<k>`` for how each run ended (epochs, best epoch, stop reason, dev threshold).

Explained in docs/runs.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from . import identity
from .paths import RUNS, resolve
from .reporting import summarise_seeds
from .train import TrainConfig, fit

# How a run ended, per seed: ``<row>/fit/<field>/seed<k>`` in metrics.json.
FIT_FIELDS = ("epochs", "best_epoch", "stop_reason", "dev_threshold", "warning")
RECORD_KEYS = ("row", "label", "model", "encoder", "architecture", "seed", "dir", "predictions", "seconds",
               *FIT_FIELDS)


@dataclass
class Prepared:
    """One seed of a row, ready to train: what :meth:`Row.prepare` returns."""

    model: Any                               # torch.nn.Module
    data: dict[str, Any]                     # {"train", "dev", "test"}: datasets
    config: TrainConfig                      # the seed already set
    parts: dict[str, Any]                    # identity parts (mcanb.identity.run_parts)
    extra_params: dict[str, Any]             # written to params.yaml (data_dir, label_space, label, ...)
    param_groups: list[dict] | None = None   # optimizer groups (BERT: layer-wise learning rates)


class Row(Protocol):
    """A row of the study: ``key`` (metrics.json prefix and run-store folder), ``label`` (tables),
    ``model`` (the ``mcanb.models`` name), ``encoder`` and ``architecture`` (empty for the CNN family)."""

    key: str
    label: str
    model: str
    encoder: str
    architecture: str

    def prepare(self, processed, seed: int) -> Prepared: ...


def per_data(cache: dict, processed, name: str, make: Callable[[], Any]) -> Any:
    """``make()`` once per processed dataset and ``name``, kept in a row's ``cache``: the seeds of a row share its
    datasets (and tokenizer) instead of rebuilding them for every seed."""
    if cache.get("processed") is not processed:
        cache.clear()
        cache["processed"] = processed
    if name not in cache:
        cache[name] = make()
    return cache[name]


def store(root: str | Path | None = None) -> Path:
    """The run store: ``root`` (a notebook's ``runs_dir``), or ``outputs/runs``."""
    return resolve(root) if root else RUNS


def run_dir(row_key: str, parts: Mapping[str, Any], seed: int, root: str | Path | None = None) -> Path:
    """``<store>/<row key>/<identity without the seed, 8 hex>/seed<k>/``: one folder per content identity."""
    return store(root) / row_key / identity.run_identity(parts, leave_out=("seed",))[:8] / f"seed{int(seed)}"


def record(row: Row, seed: int | None, folder: Path, metrics: Mapping[str, Any], seconds: float,
           **fit_fields: Any) -> dict[str, Any]:
    """The one result record of a run (both families and the baselines): :data:`RECORD_KEYS` and every
    ``dev/<metric>`` and ``test/<metric>``."""
    out = {"row": row.key, "label": row.label, "model": row.model, "encoder": row.encoder,
           "architecture": row.architecture, "seed": None if seed is None else int(seed), "dir": str(folder),
           "predictions": str(folder / "predictions_test.parquet"), "seconds": round(seconds, 1),
           **{k: fit_fields.get(k) for k in FIT_FIELDS}}
    out["dev_threshold"] = metrics.get("dev_threshold", out["dev_threshold"])
    out.update({k: v for k, v in metrics.items() if k.startswith(("dev/", "test/"))})
    return out


def train(processed, row: Row, seed: int, *, out_dir: str | Path | None = None,
          runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Train (or reuse, or continue) one row for one seed in the run store; its :func:`record`.

    ``out_dir``: the notebook run folder (``outputs/<notebook>/<run>``) whose results use this training run; it is
    recorded there (``training_runs.json``). ``runs_dir``: another store than ``outputs/runs``."""
    prep = row.prepare(processed, seed)
    folder = run_dir(row.key, prep.parts, seed, runs_dir)
    notebook, run = (Path(out_dir).parent.name, Path(out_dir).name) if out_dir else (None, None)
    t0 = time.perf_counter()
    res = fit(prep.model, prep.data["train"], prep.data["dev"], prep.config, folder, test_ds=prep.data["test"],
              resume=True, param_groups=prep.param_groups, notebook=notebook, run=run, run_identity=prep.parts,
              extra_params={**prep.extra_params, "row": row.key})
    if out_dir is not None:
        identity.record_use(out_dir, folder)
    return record(row, seed, folder, res.metrics, time.perf_counter() - t0, epochs=res.epochs_run,
                  best_epoch=res.best_epoch, stop_reason=res.stop_reason, warning=res.metrics.get("fit/warning"))


def run_grid(processed, rows: Sequence[Row], seeds: Sequence[int], *, out_dir: str | Path | None = None,
             runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """:func:`train` for every seed and row (rows inside seeds); the records in that order."""
    return [train(processed, row, seed, out_dir=out_dir, runs_dir=runs_dir) for seed in seeds for row in rows]


def flat_metrics(results: Sequence[Mapping[str, Any]], splits: Sequence[str] = ("test",)) -> dict[str, Any]:
    """``metrics.json`` entries of ``results`` (records of any family, baselines included).

    Per row and split: ``<row>/<split>/<metric>/mean`` and ``/sd`` (:func:`mcanb.reporting.summarise_seeds`) and
    ``<row>/<split>/<metric>/seed<k>`` per seed; per seeded run ``<row>/fit/<field>/seed<k>`` (:data:`FIT_FIELDS`,
    where set). A deterministic baseline (seed None) has mean and sd only."""
    out: dict[str, Any] = {}
    for r in results:
        if r.get("seed") is None:
            continue
        tail = f"seed{r['seed']}"
        for split in splits:
            out.update({f"{r['row']}/{k}/{tail}": v for k, v in r.items()
                        if k.startswith(f"{split}/") and v is not None})
        out.update({f"{r['row']}/fit/{f}/{tail}": r[f] for f in FIT_FIELDS if r.get(f) is not None})
    for split in splits:
        summary = summarise_seeds(results, split=split)
        for key, metric, mean, sd in summary[["row", "metric", "mean", "sd"]].itertuples(index=False):
            out[f"{key}/{split}/{metric}/mean"], out[f"{key}/{split}/{metric}/sd"] = mean, sd
    return out


@dataclass
class Baseline:
    """A non-neural reference row (``mcanb.cnn_study.run_baselines``): deterministic, no seed, no store folder."""

    key: str
    label: str
    model: str = field(default="")
    encoder: str = ""
    architecture: str = ""

    def __post_init__(self):
        self.model = self.model or self.key
