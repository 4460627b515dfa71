"""Notebook 04's glue: datasets, one training run per (model, seed), baselines, seed summaries, Table 6.

Everything a cell of ``notebooks/04_cnn_retraining.ipynb`` would otherwise hold lives here, so the notebook
reads as a recipe. Each run writes ``<out_dir>/<model>/seed<k>/`` (``mcanb.train.fit``'s files: history.csv,
metrics.json, params.yaml, predictions_{dev,test}.parquet, checkpoints/). Paper: Ji, Hölttä & Marttinen 2021,
§4.4 "Reproducing CNNs" and Table 6; published numbers in :mod:`mcanb.published`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from . import metrics, published, text
from .batching import CodingDataset
from .models import build_model
from .models.baselines import MostFrequentCodesBaseline, TfidfLogisticBaseline
from .processed import Processed
from .reporting import PALETTE
from .train import TrainConfig, fit, load_predictions, save_predictions

SPLITS = ("train", "dev", "test")

# Per-model training settings used when a notebook parameter is left at 0 (TrainConfig fields).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"lr": 0.003},           # paper §4.4: "the learning rate is 0.003"
    "caml": {"lr": 1e-4},           # REFERENCE.md, CAML: lr 1e-4
    "dr_caml": {"lr": 1e-4},        # same optimiser as CAML (REFERENCE.md)
    "multirescnn": {"lr": 1e-4},    # REFERENCE.md, MultiResCNN: lr 1e-4
    "laat": {"lr": 1e-3},           # Vu et al. 2020 as read by mcanb.models.laat (check its §4.3)
}
# Table 6 row names; "CNN (retrained)" is the paper's row for the settings our "cnn" uses.
ROW_NAMES = {"cnn": "CNN (retrained)", "caml": "CAML", "dr_caml": "DR-CAML", "multirescnn": "MultiResCNN",
             "laat": "LAAT", "tfidf_lr": "TF-IDF + LR", "most_frequent": "Most frequent codes"}
ROW_ORDER = ["CNN (Kim, 2014)", "CNN (retrained)", "CAML", "DR-CAML", "MultiResCNN", "HyperCore", "LAAT",
             "TF-IDF + LR", "Most frequent codes"]
THIS_RUN = "this run"
BASELINES = ("most_frequent", "tfidf_lr")


def datasets(processed: Processed, max_length: int) -> dict[str, CodingDataset]:
    """``{split: CodingDataset}`` for train, dev and test, documents cut to ``max_length`` tokens."""
    return {s: CodingDataset(processed.token_ids(s, max_length), processed.label_ids(s), processed.hadm_ids(s),
                             processed.num_codes, max_length) for s in SPLITS}


def description_ids(processed: Processed, max_desc_len: int = 30, token_rule: str = "caml") -> torch.Tensor:
    """``(num_codes, max_desc_len)`` long token ids of each code's description (0 = PAD, unknown = UNK), for DR-CAML.

    Descriptions are tokenised like the notes (``mcanb.text.tokenize``); a code without a description is all PAD.
    """
    w2i = {w: i for i, w in enumerate(processed.vocab, start=1)}
    unk = processed.vocab_size - 1
    out = torch.zeros((processed.num_codes, max_desc_len), dtype=torch.long)
    for row, desc in enumerate(processed.labels["description"].fillna("")):
        ids = [w2i.get(t, unk) for t in text.tokenize(desc, token_rule)][:max_desc_len]
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def model_overrides(model_name: str, *, num_filters: int = 0, filter_sizes: Sequence[int] = ()) -> dict[str, Any]:
    """Model config overrides from the notebook's parameters (0 / empty = the model's published default)."""
    out: dict[str, Any] = {}
    if num_filters and model_name != "laat":   # LAAT has no filters (a BiLSTM)
        out["num_filters"] = int(num_filters)
    if filter_sizes and model_name == "multirescnn":
        out["filter_sizes"] = tuple(int(k) for k in filter_sizes)
    return out


def train_config(model_name: str, *, lr: float = 0.0, early_stopping_metric: str = "", patience: int = 0,
                 max_steps: int = 0, **fields: Any) -> TrainConfig:
    """A ``TrainConfig`` for ``model_name``: ``lr=0`` takes ``MODEL_DEFAULTS``, ``patience=0`` never stops early,
    ``max_steps=0`` means no limit, ``early_stopping_metric=""`` the engine's default (micro_f1 / p@8)."""
    return TrainConfig(lr=float(lr or MODEL_DEFAULTS[model_name]["lr"]),
                       early_stopping_metric=early_stopping_metric or None, patience=patience or None,
                       max_steps=max_steps or None, **fields)


def train_model(processed: Processed, model_name: str, model_overrides: dict[str, Any],
                train_config: TrainConfig, out_dir: str | Path, seed: int, *, max_length: int = 2500,
                data: dict[str, CodingDataset] | None = None, run: str | None = None,
                resume: bool = False) -> dict[str, Any]:
    """Train ``model_name`` with word2vec embeddings for one seed; outputs in ``<out_dir>/<model>/seed<seed>/``.

    ``resume=True`` continues from ``checkpoints/last.pt`` when it exists (same settings required; a finished run
    only reloads its best weights and predicts), which is how ``mcanb study`` resumes an interrupted notebook.

    Returns a flat dict: ``model``, ``seed``, ``dir``, ``predictions`` (test parquet: hadm_id, scores),
    ``epochs``, ``best_epoch``, ``stop_reason``, ``seconds`` and every ``dev/<metric>`` and ``test/<metric>``.
    """
    data = data or datasets(processed, max_length)
    emb = None if processed.embeddings is None else torch.tensor(processed.embeddings, dtype=torch.float32)
    config = {"num_codes": processed.num_codes, **model_overrides}
    if model_name == "dr_caml":
        config.setdefault("description_ids", description_ids(processed))
    torch.manual_seed(seed)                           # the model's initial weights depend on the seed too
    model = build_model(model_name, config, embeddings=emb)
    run_dir = Path(out_dir) / model_name / f"seed{seed}"
    cfg = dataclasses.replace(train_config, seed=int(seed))
    shown = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model_overrides.items()}
    t0 = time.perf_counter()
    res = fit(model, data["train"], data["dev"], cfg, run_dir, test_ds=data["test"], run=run, resume=resume,
              notebook="04_cnn_retraining",
              extra_params={"model": model_name, "model_overrides": shown, "max_length": max_length,
                            "data_dir": str(processed.data_dir), "label_space": processed.label_space})
    return {"model": model_name, "seed": int(seed), "dir": str(run_dir),
            "predictions": str(run_dir / "predictions_test.parquet"), "epochs": res.epochs_run,
            "best_epoch": res.best_epoch, "stop_reason": res.stop_reason,
            "seconds": round(time.perf_counter() - t0, 1),
            **{k: v for k, v in res.metrics.items() if k.startswith(("dev/", "test/"))}}


def run_baselines(processed: Processed, out_dir: str | Path, names: Sequence[str] = BASELINES) -> list[dict]:
    """Fit the non-neural baselines on train, score dev and test with ``mcanb.metrics.evaluate``.

    Predictions go to ``<out_dir>/<name>/predictions_{dev,test}.parquet``; results have ``train_model``'s keys.
    """
    makers = {"most_frequent": MostFrequentCodesBaseline, "tfidf_lr": TfidfLogisticBaseline}
    unknown = sorted(set(names) - set(makers))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; valid: {list(makers)}")
    texts = {s: processed.frames[s]["text"].tolist() for s in SPLITS}
    out = []
    for name in names:
        t0, run_dir = time.perf_counter(), Path(out_dir) / name
        run_dir.mkdir(parents=True, exist_ok=True)
        model = makers[name]().fit(texts["train"], processed.multi_hot("train"))
        row: dict[str, Any] = {"model": name, "seed": 0, "dir": str(run_dir),
                               "predictions": str(run_dir / "predictions_test.parquet")}
        for split in ("dev", "test"):
            y_score = model.predict_proba(texts[split]).astype(np.float32)
            save_predictions(run_dir / f"predictions_{split}.parquet", processed.hadm_ids(split), y_score)
            scores = metrics.evaluate(processed.multi_hot(split), y_score)
            row.update({f"{split}/{k}": v for k, v in scores.items()})
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out.append(row)
    return out


def summarise_seeds(results: Sequence[dict], split: str = "test") -> pd.DataFrame:
    """Mean, sd (ddof 1; 0 for one seed) and seed count per model and metric: columns model, metric, mean, sd, n_seeds.

    Only scores are summarised (keys ``<split>/<metric>`` that are not counts ``n_*`` or ``threshold``).
    """
    rows = [{"model": r["model"], "seed": r["seed"], "metric": k.split("/", 1)[1], "value": v}
            for r in results for k, v in r.items()
            if k.startswith(f"{split}/") and v is not None and _is_score(k.split("/", 1)[1])]
    long = pd.DataFrame(rows)
    g = long.groupby(["model", "metric"], sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n_seeds="count").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    return out


def _is_score(metric: str) -> bool:
    """A metric worth averaging over seeds (not a count such as ``n_docs`` or ``macro_auc_n_skipped``)."""
    return not (metric.startswith(("n_", "threshold")) or "_n_" in metric)


def _this_run_cell(mean: float, sd: float, n: int) -> str:
    return f"{100 * mean:.1f}" if n == 1 else f"{100 * mean:.1f} ± {100 * sd:.1f}"


def table6(this_run: pd.DataFrame, label_space: str) -> pd.DataFrame:
    """The paper's Table 6 for one label space with three sources per metric (percent).

    Rows: the paper's models plus every model in ``this_run`` (``summarise_seeds`` output; model names as in
    ``ROW_NAMES``). Columns: (metric, source) for source in "as printed in the paper", "original publication"
    (both floats, NaN where that source reports nothing) and "this run" (``"mean ± sd"`` strings over seeds).
    """
    if label_space not in published.METRICS:
        raise ValueError(f"label_space must be one of {list(published.METRICS)}, got {label_space!r}")
    names = published.METRICS[label_space]
    run = {(ROW_NAMES.get(m, m), k): (mean, sd, n) for m, k, mean, sd, n
           in this_run[["model", "metric", "mean", "sd", "n_seeds"]].itertuples(index=False)}
    ran = {row for row, _ in run}
    paper_rows = {n.model for n in published.NUMBERS if n.label_space == label_space and n.source == "paper"}
    rows = [r for r in ROW_ORDER if r in paper_rows | ran] + sorted(ran - set(ROW_ORDER))
    columns = pd.MultiIndex.from_tuples([(published.METRIC_LABELS[m], s) for m in names
                                         for s in (*published.SOURCES.values(), THIS_RUN)],
                                        names=["metric", "source"])
    table = pd.DataFrame(index=pd.Index(rows, name="model"), columns=columns, dtype=object)
    for row in rows:
        for m in names:
            label = published.METRIC_LABELS[m]
            for key, source in published.SOURCES.items():
                v = published.value(row, label_space, m, key)
                table.loc[row, (label, source)] = np.nan if v is None else v
            cell = run.get((row, m))
            table.loc[row, (label, THIS_RUN)] = "" if cell is None else _this_run_cell(*cell)
    for col in table.columns:
        if col[1] != THIS_RUN:
            table[col] = table[col].astype(float)
    return table


def learning_curves(results: Sequence[dict]) -> pd.DataFrame:
    """Every trained run's ``history.csv`` stacked, with ``model`` and ``seed`` columns (baselines skipped)."""
    frames = [pd.read_csv(Path(r["dir"]) / "history.csv").assign(model=r["model"], seed=r["seed"])
              for r in results if (Path(r["dir"]) / "history.csv").exists()]
    return pd.concat(frames, ignore_index=True)


def plot_learning_curves(curves: pd.DataFrame, metric: str = "micro_f1"):
    """Two panels per epoch: training loss and the dev ``metric``; one colour per model, one line per seed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (model, runs) in enumerate(curves.groupby("model", sort=False)):
        for j, (_, h) in enumerate(runs.groupby("seed")):
            kw = {"color": PALETTE[i % len(PALETTE)], "label": model if j == 0 else None, "marker": "o", "ms": 3}
            axes[0].plot(h["epoch"] + 1, h["train_loss"], **kw)
            axes[1].plot(h["epoch"] + 1, h[f"dev/{metric}"], **kw)
    for ax, ylabel in zip(axes, ("training loss (BCE)", f"dev {metric}")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
    axes[0].legend()
    fig.tight_layout()
    return fig


def compare_best_two(processed: Processed, results: Sequence[dict], metric: str = "micro_f1",
                     n_resamples: int = 1000) -> tuple[str, str, metrics.PairedComparison]:
    """Paired bootstrap on the test set between the two models with the best mean *dev* ``metric``.

    Ranking on dev keeps the test set out of the choice. Both models are compared on their first common seed
    (one trained model each: averaging scores over seeds would test an ensemble instead).
    """
    table = summarise_seeds(results, split="dev")
    ranked = table[table["metric"] == metric].sort_values("mean", ascending=False)["model"].tolist()
    if len(ranked) < 2:
        raise ValueError(f"need two models with dev/{metric}, have {ranked}")
    a, b = ranked[:2]
    seed = min({r["seed"] for r in results if r["model"] == a} & {r["seed"] for r in results if r["model"] == b},
               default=None)
    pick = {r["model"]: r for r in results if r["model"] in (a, b) and (seed is None or r["seed"] == seed)}
    y = processed.multi_hot("test")
    scores = []
    for name in (a, b):
        hadm, s = load_predictions(pick[name]["predictions"])
        assert np.array_equal(hadm, processed.hadm_ids("test")), "predictions are not in test order"
        scores.append(s)
    return a, b, metrics.paired_bootstrap(y, scores[0], scores[1], metric=metric, n_resamples=n_resamples)
