"""Notebook 04's glue (the CNN-family study): datasets, one training run per (model, seed), baselines, Table 6.

Everything a cell of ``notebooks/04_cnn_retraining.ipynb`` would otherwise hold lives here, so the notebook
reads as a recipe; the generic seed summaries and learning curves are in :mod:`mcanb.reporting`. Each run writes
``<out_dir>/<model>/seed<k>/`` (``mcanb.train.fit``'s files: history.csv, metrics.json, params.yaml,
predictions_{dev,test}.parquet, checkpoints/). Paper: Ji, Hölttä & Marttinen 2021, §4.4 "Reproducing CNNs" and
Ji et al. 2021, Table 6; published numbers in :mod:`mcanb.published`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import comparison, identity, metrics, published, text
from .batching import CodingDataset
from .models import build_model
from .models.baselines import MostFrequentCodesBaseline, TfidfLogisticBaseline
from .predictions import load_predictions, save_predictions
from .processed import Processed
from .reporting import metric_key, split_metrics, summarise_seeds
from .splits import SPLITS
from .train import TrainConfig, fit


# Per-model learning rates used when the notebook's ``lr`` is None: settings that learn on a few hundred documents
# in a few epochs (measured on the toy fixtures, README "Your own coded notes"). They are NOT the published
# ones: the paper's and CAML's settings are written out in parameters/04_cnn_retraining/mimic3_*.yaml
# (``PUBLISHED_LR`` holds them, with sources), which is what reproduces Table 6.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"lr": 0.01},            # toy corpus: 0.003 and 0.01 learn with trained embeddings (static ones do not)
    "caml": {"lr": 0.01},           # toy corpus: 0.01 learns in ~10 epochs; 1e-4 (CAML's) barely moves in 20
    "dr_caml": {"lr": 0.01},        # as CAML
    "multirescnn": {"lr": 0.01},    # toy corpus: 0.01 ahead of 0.003 and 0.03
    "laat": {"lr": 0.01},           # toy corpus: 0.003 ended at its first epoch (no_improvement); 0.01 learns
}
PUBLISHED_LR = {
    "cnn": 0.003,           # paper §4.4: "the learning rate is 0.003"
    "caml": 1e-4,           # docs/reference.md §Models and hyperparameters, CAML: lr 1e-4
    "dr_caml": 1e-4,        # same optimiser as CAML (docs/reference.md §Models and hyperparameters)
    "multirescnn": 1e-4,    # docs/reference.md §Models and hyperparameters, MultiResCNN: lr 1e-4
    "laat": 1e-3,           # Vu et al. 2020 as read by mcanb.models.laat (check its §4.3)
}
# Ji et al. 2021, Table 6 row names (mcanb.published owns them).
ROW_NAMES = published.CNN_ROWS
ROW_ORDER = published.CNN_ROW_ORDER
BASELINES = ("most_frequent", "tfidf_lr")


def datasets(processed: Processed, max_length: int) -> dict[str, CodingDataset]:
    """``{split: CodingDataset}`` for train, dev and test, documents cut to ``max_length`` tokens."""
    return {s: CodingDataset(processed.token_ids(s, max_length), processed.label_ids(s), processed.hadm_ids(s),
                             processed.num_codes, max_length) for s in SPLITS}


def description_ids(processed: Processed, max_desc_len: int = 30) -> torch.Tensor:
    """``(num_codes, max_desc_len)`` long token ids of each code's description (0 = PAD, unknown = UNK), for DR-CAML.

    Descriptions are tokenised like the notes (``mcanb.text.tokenize`` with the ``token_rule`` and ``regex_engine``
    preprocessing recorded for ``processed``); a code without a description is all PAD.
    """
    w2i = {w: i for i, w in enumerate(processed.vocab, start=1)}
    unk = processed.vocab_size - 1
    out = torch.zeros((processed.num_codes, max_desc_len), dtype=torch.long)
    for row, desc in enumerate(processed.labels["description"].fillna("")):
        tokens = text.tokenize(desc, processed.token_rule, processed.regex_engine)
        ids = [w2i.get(t, unk) for t in tokens][:max_desc_len]
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def model_overrides(model_name: str, *, num_filters: int | None = None,
                    filter_sizes: Sequence[int] | None = None,
                    freeze_embeddings: bool | None = None) -> dict[str, Any]:
    """Model config overrides from the notebook's parameters (``None`` = the model's published default).

    ``freeze_embeddings``: True keeps the word2vec vectors fixed, False trains them, None is each model's own
    choice (the paper's CNN: static; CAML, MultiResCNN, LAAT: trained)."""
    out: dict[str, Any] = {}
    if freeze_embeddings is not None:
        out["freeze_embeddings"] = bool(freeze_embeddings)
    if num_filters is not None and model_name != "laat":   # LAAT has no filters (a BiLSTM)
        out["num_filters"] = int(num_filters)
    if filter_sizes is not None and model_name == "multirescnn":
        out["filter_sizes"] = tuple(int(k) for k in filter_sizes)
    return out


def learning_rate(model_name: str, lr: float | Mapping[str, float] | None = None) -> float:
    """``lr`` for ``model_name``: one number for every model, a ``{model: lr}`` mapping (a model it leaves out
    takes its default), or None for ``MODEL_DEFAULTS`` (settings that learn on small corpora)."""
    if isinstance(lr, Mapping):
        unknown = sorted(set(lr) - set(MODEL_DEFAULTS))
        if unknown:
            raise ValueError(f"lr: unknown model(s) {unknown}; valid: {sorted(MODEL_DEFAULTS)}")
        lr = lr.get(model_name)
    return float(MODEL_DEFAULTS[model_name]["lr"] if lr is None else lr)


def train_config(model_name: str, *, lr: float | Mapping[str, float] | None = None, **fields: Any) -> TrainConfig:
    """A ``TrainConfig`` for ``model_name``, its learning rate from :func:`learning_rate`. Other ``fields`` pass
    through with ``TrainConfig``'s meaning of ``None``: ``patience=None`` never stops early, ``max_steps=None``
    has no limit, ``early_stopping_metric=None`` is the engine's default (dev ``map``)."""
    return TrainConfig(lr=learning_rate(model_name, lr), **fields)


def train_model(processed: Processed, model_name: str, model_overrides: dict[str, Any],
                train_config: TrainConfig, out_dir: str | Path, seed: int, *,
                data: dict[str, CodingDataset], run: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Train ``model_name`` with word2vec embeddings for one seed; outputs in ``<out_dir>/<model>/seed<seed>/``.

    ``data`` is :func:`datasets`' output; its ``max_length`` is recorded in ``params.yaml``. ``resume=True`` continues
    from ``checkpoints/last.pt`` when it exists and the run's ``identity.json`` (data content, model and training
    settings, seed, code version: :mod:`mcanb.identity`) is the same; a finished run only reloads its best weights
    and predicts. Otherwise the run starts afresh and says why. This is how ``mcanb study`` resumes an interrupted
    notebook.

    Returns a flat dict: ``model``, ``seed``, ``dir``, ``predictions`` (test parquet: hadm_id, scores),
    ``epochs``, ``best_epoch``, ``stop_reason``, ``seconds`` and every ``dev/<metric>`` and ``test/<metric>``.
    """
    max_lengths = {ds.max_length for ds in data.values()}
    if len(max_lengths) != 1:
        raise ValueError(f"the datasets were cut at different max_length values {sorted(max_lengths)}")
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
    parts = identity.run_parts(data=identity.of_processed(processed, words=True),
                               model={"model": model_name, "model_overrides": shown, "max_length": max(max_lengths)},
                               train=identity.train_settings(train_config), seed=seed)
    res = fit(model, data["train"], data["dev"], cfg, run_dir, test_ds=data["test"], run=run, resume=resume,
              notebook="04_cnn_retraining", run_identity=parts,
              extra_params={"model": model_name, "model_overrides": shown, "max_length": max_lengths.pop(),
                            "data_dir": str(processed.data_dir), "label_space": processed.label_space,
                            "token_rule": processed.token_rule})
    identity.record_use(out_dir, run_dir)        # the notebook run's results come from this training run
    return {"model": model_name, "seed": int(seed), "dir": str(run_dir),
            "predictions": str(run_dir / "predictions_test.parquet"), "epochs": res.epochs_run,
            "best_epoch": res.best_epoch, "stop_reason": res.stop_reason,
            "dev_threshold": res.metrics.get("dev_threshold"), "warning": res.metrics.get("fit/warning"),
            "seconds": round(time.perf_counter() - t0, 1),
            **{metric_key(s, k): v for s in ("dev", "test") for k, v in split_metrics(res.metrics, s).items()}}


def run_baselines(processed: Processed, out_dir: str | Path, names: Sequence[str] = BASELINES) -> list[dict]:
    """Fit the non-neural baselines on train, score dev and test with ``mcanb.metrics.evaluate``.

    Predictions go to ``<out_dir>/<name>/predictions_{dev,test}.parquet``; results have ``train_model``'s keys,
    F1 at the dev-tuned threshold included (``dev_threshold``, ``test/micro_f1@dev_threshold``, ...).
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
        scored = {}
        for split in ("dev", "test"):
            y_score = model.predict_proba(texts[split]).astype(np.float32)
            save_predictions(run_dir / f"predictions_{split}.parquet", processed.hadm_ids(split), y_score)
            scores = metrics.evaluate(processed.multi_hot(split), y_score)
            row.update({metric_key(split, k): v for k, v in scores.items()})
            scored[split] = (processed.multi_hot(split), y_score)
        row.update(metrics.dev_threshold_scores(*scored.pop("dev"), scored))   # F1 at the dev-tuned threshold
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out.append(row)
    return out


def table6(this_run: pd.DataFrame, label_space: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Ji et al. 2021, Table 6 for one label space with this run's rows under the paper's (percent, strings).

    ``this_run``: ``summarise_seeds`` output (model names as in ``ROW_NAMES``). A rendering of
    :func:`mcanb.comparison.build`, the table the report and the README show too: index ``model``; columns
    source ("paper", "original" where a model's own publication differs, "this run", "not run"), stands for, the
    paper's metrics, seeds; and a ``Δ <metric>`` column per metric when ``data_dir`` was made from MIMIC-III.
    """
    comp = comparison.build(6, label_space, comparison.measured_from_summary(this_run),
                            data=comparison.data_source(data_dir))
    return comp.frame().set_index("model")


FLOOR_METRICS = ("micro_auc", "macro_auc", "map", "micro_f1@dev_threshold", "micro_f1")  # threshold-free first


def floor_check(summary: pd.DataFrame, models: Sequence[str], floor: str = "most_frequent",
                names: Sequence[str] = FLOOR_METRICS) -> pd.DataFrame:
    """Each model's mean test score beside the ``floor`` baseline's, per metric in ``names`` (where both have it).

    A fact about this run, not a check of the code: a weak model on a hard corpus may sit at the floor. Columns
    model, metric, value, floor, above (``value > floor``); one row per (model, metric)."""
    means = summary.set_index(["model", "metric"])["mean"]
    rows = [{"model": m, "metric": k, "value": means[(m, k)], "floor": means[(floor, k)],
             "above": bool(means[(m, k)] > means[(floor, k)])}
            for m in models for k in names if (m, k) in means.index and (floor, k) in means.index]
    return pd.DataFrame(rows, columns=["model", "metric", "value", "floor", "above"])


def compare_best_two(processed: Processed, results: Sequence[dict], metric: str = "micro_f1",
                     n_resamples: int = 1000) -> tuple[str, str, metrics.PairedComparison]:
    """Paired bootstrap on the test set between the two models with the best mean *dev* ``metric``.

    Ranking on dev keeps the test set out of the choice. Both models are compared on their first common seed
    (one trained model each: averaging scores over seeds would test an ensemble instead). A ``ValueError`` if
    fewer than two models have the metric: a run of one model has nothing to compare (the notebook skips it).
    """
    table = summarise_seeds(results, split="dev")
    ranked = table[table["metric"] == metric].sort_values("mean", ascending=False)["model"].tolist()
    if len(ranked) < 2:
        raise ValueError(f"need two models with {metric_key('dev', metric)}, have {ranked}")
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
