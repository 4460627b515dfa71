"""Notebooks 02 and 03's glue: encoders, BERT-trun / BERT-hier runs per (encoder, architecture, seed), Tables 2–5.

A run is one ``mcanb.train.fit`` of :class:`~mcanb.models.bert.BertCodingModel` in
``<runs_dir>/<encoder>/<architecture>-<settings hash>/seed<k>/`` (fit's files: history.csv, metrics.json,
params.yaml, predictions_{dev,test}.parquet, checkpoints/). The hash covers every model and training setting and
the data, and ``fit`` runs with ``resume=True``: notebook 03 reuses the BERT-hier + LAN runs that notebook 02
finished with the same settings, and a killed run continues where it stopped. Paper: Ji, Hölttä & Marttinen 2021,
§3–4.3, Tables 2–5; published numbers in :mod:`mcanb.published`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from . import encoders, published, wordpiece
from .models import build_model
from .models.bert import param_groups
from .processed import Processed
from .train import TrainConfig, fit

# The model settings of each architecture name (published.ARCHITECTURES); the rest comes from the notebook.
ARCHITECTURE_MODELS = {"trun_fcn": ("bert_trun", {"head": "fcn"}),
                       "hier_fcn": ("bert_hier", {"head": "fcn"}),
                       "hier_lan": ("bert_hier", {"head": "lan"})}


@dataclasses.dataclass
class Encoder:
    """One row of the pretraining-domain study: what to load and where it sits on the domain axis."""

    label: str                # row name in the tables, e.g. "in-domain (MLM on training notes)"
    encoder: str              # hub id or directory (mcanb.encoders.resolve_encoder)
    init: str = "pretrained"  # "pretrained" | "random"
    domain: str = ""          # "general" | "mixed" | "in-domain" | "none"


def local_encoders(processed: Processed, out_dir: str | Path, mlm: encoders.MlmConfig,
                   which: Sequence[str] = ("general", "in-domain", "random"), *,
                   progress: bool = True) -> list[Encoder]:
    """The toy stand-ins for the paper's encoders (see :mod:`mcanb.encoders`), pretrained once and cached.

    * ``in-domain``: WordPiece + MLM from scratch on the training split's notes (never dev or test);
    * ``general``: the same recipe and size on general English (the Python standard library's docstrings);
    * ``random``: the in-domain configuration and tokenizer, no pretraining;
    * ``minilm``: the packaged all-MiniLM-L6-v2 (``local:minilm``), a real general-domain BERT (slow on CPU).
    """
    out_dir = Path(out_dir)
    made: dict[str, Encoder] = {}
    for name in which:
        if name == "in-domain" or (name == "random" and "in-domain" not in made):
            path = encoders.pretrain_mlm(processed.frames["train"]["text"].tolist(), out_dir / "in_domain", mlm,
                                         progress=progress)
            made.setdefault("in-domain", Encoder("in-domain (MLM on training notes)", str(path), "pretrained",
                                                 "in-domain"))
        if name == "general":
            path = encoders.pretrain_mlm(encoders.general_english(), out_dir / "general", mlm, progress=progress)
            made["general"] = Encoder("general (MLM on English docstrings)", str(path), "pretrained", "general")
        elif name == "random":
            made["random"] = Encoder("random init (no pretraining)", made["in-domain"].encoder, "random", "none")
        elif name == "minilm":
            made["minilm"] = Encoder("general (all-MiniLM-L6-v2)", "local:minilm", "pretrained", "general")
        elif name != "in-domain":
            raise ValueError(f"unknown local encoder {name!r}; valid: general, in-domain, random, minilm")
    return [made[n] for n in which]


def model_config(architecture: str, encoder: Encoder, tokenizer, num_codes: int,
                 **overrides: Any) -> tuple[str, dict[str, Any]]:
    """``(model name, config dict)`` for ``build_model``: the architecture's head, the encoder, its special ids."""
    if architecture not in ARCHITECTURE_MODELS:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURE_MODELS)}, got {architecture!r}")
    name, fixed = ARCHITECTURE_MODELS[architecture]
    config = {"num_codes": num_codes, "encoder": encoder.encoder, "encoder_init": encoder.init,
              "cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id,
              "pad_token_id": tokenizer.pad_token_id, **overrides, **fixed}
    if name == "bert_trun":   # one segment, no second level: settings of the hierarchy do not apply
        for key in ("max_segments", "segment_layers", "segment_heads", "pooling", "lan_projection_dim"):
            config.pop(key, None)
    return name, config


def train_config(*, num_epochs: int, batch_size: int = 8, grad_accum_steps: int = 1, encoder_lr: float,
                 warmup_ratio: float = 0.1, weight_decay: float = 0.01, patience: int | None = None,
                 max_grad_norm: float | None = 1.0, **fields: Any) -> TrainConfig:
    """The paper's fine-tuning set-up (§3.4): AdamW, linear warmup then linear decay, batch 8, dropout 0.1 (in the
    model). ``lr`` is the encoder's; the head's and the layer decay go to :func:`mcanb.models.bert.param_groups`."""
    return TrainConfig(optimizer="adamw", lr=encoder_lr, weight_decay=weight_decay, num_epochs=num_epochs,
                       batch_size=batch_size, grad_accum_steps=grad_accum_steps, warmup="linear",
                       warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm, patience=patience, **fields)


def _settings_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_bert(processed: Processed, encoder: Encoder, architecture: str, config: TrainConfig,
               runs_dir: str | Path, seed: int, *, max_words: int = 2500, head_lr: float | None = None,
               layer_decay: float = 1.0, model_overrides: dict[str, Any] | None = None,
               notebook: str = "03_hierarchy", run: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Fine-tune one (encoder, architecture) for one seed; reuse or resume an earlier run with the same settings.

    Returns a flat dict: ``encoder``, ``architecture``, ``model`` (``"<encoder> · <architecture>"``), ``seed``,
    ``dir``, ``predictions``, ``epochs``, ``best_epoch``, ``stop_reason``, ``seconds`` and every ``dev/<metric>``
    and ``test/<metric>``.
    """
    tokenizer = encoders.load_tokenizer(encoder.encoder)
    name, mcfg = model_config(architecture, encoder, tokenizer, processed.num_codes, **(model_overrides or {}))
    torch.manual_seed(seed)                               # head (and random-init encoder) weights follow the seed
    model = build_model(name, mcfg)
    max_pieces = model.config.max_pieces
    data = wordpiece.datasets(processed, tokenizer, max_words=max_words, max_pieces=max_pieces, progress=progress)
    cfg = dataclasses.replace(config, seed=int(seed), progress=progress)
    head_lr = config.lr if head_lr is None else head_lr
    settings = {"model": name, "model_config": mcfg, "tokenizer": encoders.tokenizer_key(tokenizer),
                "max_words": max_words, "max_pieces": max_pieces, "head_lr": head_lr, "layer_decay": layer_decay,
                "train": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "seed")},
                "data_dir": str(processed.data_dir), "label_space": processed.label_space}
    run_dir = (Path(runs_dir) / _slug(encoder.label) / f"{architecture}-{_settings_hash(settings)}"
               / f"seed{seed}")
    groups = param_groups(model, encoder_lr=config.lr, head_lr=head_lr, layer_decay=layer_decay,
                          weight_decay=config.weight_decay)
    t0 = time.perf_counter()
    res = fit(model, data["train"], data["dev"], cfg, run_dir, test_ds=data["test"], resume=True,
              param_groups=groups, notebook=notebook, run=run,
              extra_params={**settings, "encoder_label": encoder.label, "architecture": architecture,
                            "domain": encoder.domain})
    return {"encoder": encoder.label, "architecture": architecture,
            "model": f"{encoder.label} · {published.ARCHITECTURES[architecture]}", "seed": int(seed),
            "dir": str(run_dir), "predictions": str(run_dir / "predictions_test.parquet"),
            "epochs": res.epochs_run, "best_epoch": res.best_epoch, "stop_reason": res.stop_reason,
            "seconds": round(time.perf_counter() - t0, 1),
            **{k: v for k, v in res.metrics.items() if k.startswith(("dev/", "test/"))}}


def _slug(label: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in label.lower())
    return "_".join(p for p in keep.split("_") if p)[:48]


def results_table(results: Sequence[dict], label_space: str, split: str = "test") -> pd.DataFrame:
    """This run's rows in the paper's columns: one row per (encoder, architecture), ``"mean ± sd"`` over seeds
    (percent), plus ``n_seeds``. Columns follow :data:`mcanb.published.METRICS` for the label space."""
    metrics_ = published.METRICS[label_space]
    rows = []
    frame = pd.DataFrame(results)
    for (enc, arch), g in frame.groupby(["encoder", "architecture"], sort=False):
        row = {"encoder": enc, "architecture": published.ARCHITECTURES[arch], "n_seeds": len(g)}
        for m in metrics_:
            vals = g.get(f"{split}/{m}")
            v = np.asarray([] if vals is None else vals.dropna(), dtype=float) * 100
            row[published.METRIC_LABELS[m]] = (f"{v.mean():.1f}" if len(v) == 1 else
                                               f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) else "not run")
        rows.append(row)
    return pd.DataFrame(rows)


def paper_table(table: int, label_space: str) -> pd.DataFrame:
    """One of the paper's Tables 2–5 for one label space, wide: encoder, architecture, then the metrics (percent)."""
    df = published.bert_frame(table)
    df = df[df["label_space"] == label_space]
    if df.empty:
        raise ValueError(f"Table {table} has no numbers for label space {label_space!r}")
    wide = df.pivot_table(index=["encoder", "architecture"], columns="metric", values="value", sort=False)
    wide = wide.reindex(columns=[m for m in published.METRICS[label_space] if m in wide.columns])
    wide.columns = [published.METRIC_LABELS[m] for m in wide.columns]
    wide = wide.reset_index()
    wide["architecture"] = wide["architecture"].map(published.ARCHITECTURES)
    return wide


def metric_means(results: Sequence[dict], metric: str = "micro_f1", split: str = "test") -> dict[tuple[str, str], float]:
    """``{(encoder label, architecture): mean over seeds}`` of ``<split>/<metric>`` (fractions, not percent)."""
    frame = pd.DataFrame(results)
    return {k: float(g[f"{split}/{metric}"].mean()) for k, g in frame.groupby(["encoder", "architecture"])}
