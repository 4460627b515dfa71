"""Notebook 04's family part (the CNN family): datasets, rows of the study, baselines.

Everything a cell of ``notebooks/04_cnn_retraining.ipynb`` would otherwise hold lives here, so the notebook
reads as a recipe. A :class:`CnnRow` is one model; :func:`mcanb.grid.run_grid` trains it per seed in the run store
``outputs/runs/<model>/<identity>/seed<k>/`` (``mcanb.train.fit``'s files: history.csv, metrics.json, params.yaml,
identity.json, predictions_{dev,test}.parquet, checkpoints/); seed summaries and learning curves are in
:mod:`mcanb.reporting`. Paper: Ji, Hölttä & Marttinen 2021, §4.4 "Reproducing CNNs" and
Ji et al. 2021, Table 6; published numbers in :mod:`mcanb.published`. What the scores say (Table 6 beside the paper,
the floor, the best two) is :mod:`mcanb.cnn_scores`'s: a training run never runs it (``identity.TRAINING_CODE``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import grid, identity, metrics, names, text
from .batching import CodingDataset
from .models import build_model
from .models.baselines import MostFrequentCodesBaseline, TfidfLogisticBaseline
from .paths import portable
from .predictions import load_predictions, save_predictions
from .processed import Processed
from .reporting import metric_key
from .splits import SPLITS
from .train import TrainConfig


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
# Ji et al. 2021, Table 6 row names (mcanb.names owns them).
ROW_NAMES = names.CNN_ROWS
BASELINES = names.BASELINES


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


@dataclasses.dataclass
class CnnRow:
    """A CNN-family row of the study (:class:`mcanb.grid.Row`): word2vec embeddings, notes cut at ``max_length``."""

    model: str                          # cnn, caml, dr_caml, multirescnn, laat
    overrides: dict[str, Any]           # model settings (:func:`model_overrides`)
    config: TrainConfig                 # the seed is set per run
    max_length: int
    encoder: str = ""
    architecture: str = ""
    _data: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)   # per Processed: grid.per_data

    @property
    def key(self) -> str:
        return self.model

    @property
    def label(self) -> str:
        return ROW_NAMES.get(self.model, self.model)

    def prepare(self, processed: Processed, seed: int) -> grid.Prepared:
        """The model (initial weights from ``seed``), the datasets and the identity parts of one run."""
        data = grid.per_data(self._data, processed, "data", lambda: datasets(processed, self.max_length))
        emb = None if processed.embeddings is None else torch.tensor(processed.embeddings, dtype=torch.float32)
        config = {"num_codes": processed.num_codes, **self.overrides}
        if self.model == "dr_caml":
            config.setdefault("description_ids", description_ids(processed))
        torch.manual_seed(seed)                       # the model's initial weights depend on the seed too
        model = build_model(self.model, config, embeddings=emb)
        shown = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.overrides.items()}
        settings = {"model": self.model, "model_overrides": shown, "max_length": self.max_length}
        parts = identity.run_parts(data=identity.of_processed(processed, words=True), model=settings,
                                   train=identity.train_settings(self.config), seed=seed)
        return grid.Prepared(model, data, dataclasses.replace(self.config, seed=int(seed)), parts,
                             {**settings, "data_dir": portable(processed.data_dir), "label_space": processed.label_space,
                              "token_rule": processed.token_rule})


def rows(models: Sequence[str], *, max_length: int, lr: float | Mapping[str, float] | None = None,
         num_filters: int | None = None, filter_sizes: Sequence[int] | None = None,
         freeze_embeddings: bool | None = None, **train_fields: Any) -> list[CnnRow]:
    """One :class:`CnnRow` per model name: its :func:`model_overrides` and :func:`train_config` (``lr`` and the
    other ``train_fields``, e.g. ``batch_size``, ``num_epochs``, ``patience``)."""
    unknown = [m for m in models if m not in MODEL_DEFAULTS]
    if unknown:
        raise ValueError(f"models: unknown model(s) {unknown}; valid: {list(MODEL_DEFAULTS)}")
    return [CnnRow(m, model_overrides(m, num_filters=num_filters, filter_sizes=filter_sizes,
                                      freeze_embeddings=freeze_embeddings),
                   train_config(m, lr=lr, **train_fields), int(max_length)) for m in models]


def run_baselines(processed: Processed, out_dir: str | Path, names: Sequence[str] = BASELINES) -> list[dict]:
    """Fit the non-neural baselines on train, score dev and test with ``mcanb.metrics.evaluate``.

    Predictions go to ``<out_dir>/<name>/predictions_{dev,test}.parquet`` (the notebook's folder, not the run
    store: a baseline is deterministic and takes seconds); the results are :func:`mcanb.grid.record` records with
    seed None, F1 at the dev-tuned threshold included (``dev_threshold``, ``test/micro_f1@dev_threshold``, ...).
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
        scores = {}
        for split in ("dev", "test"):
            scores[split] = model.predict_proba(texts[split]).astype(np.float32)
            save_predictions(run_dir / f"predictions_{split}.parquet", processed.hadm_ids(split), scores[split])
        out.append(grid.record(grid.Baseline(name, ROW_NAMES.get(name, name)), None, run_dir,
                               _baseline_metrics(processed, scores), time.perf_counter() - t0))
    return out


def _baseline_metrics(processed: Processed, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A baseline's ``dev/`` and ``test/`` metrics (``mcanb.metrics.evaluate``) and F1 at the dev-tuned threshold,
    from its ``{"dev": scores, "test": scores}``."""
    row: dict[str, Any] = {}
    for split in ("dev", "test"):
        row.update({metric_key(split, k): v for k, v in metrics.evaluate(processed.multi_hot(split),
                                                                        scores[split]).items()})
    row.update(metrics.dev_threshold_scores(processed.multi_hot("dev"), scores["dev"],
                                            {"test": (processed.multi_hot("test"), scores["test"])}))
    return row


def saved_baseline(folder: Path, processed: Processed) -> dict | None:
    """The result record of a baseline rebuilt from the predictions :func:`run_baselines` saved in ``folder`` (the
    same metrics as the record it returned), or None when they are gone."""
    try:
        scores = {s: load_predictions(Path(folder) / f"predictions_{s}.parquet")[1] for s in ("dev", "test")}
    except OSError:
        return None
    return {"row": Path(folder).name, "seed": None, "predictions": str(Path(folder) / "predictions_test.parquet"),
            **_baseline_metrics(processed, scores)}
