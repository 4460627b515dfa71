"""Notebooks 02 and 03's family part: encoders, BERT-trun / BERT-hier rows per (encoder, architecture).

A :class:`BertRow` is one (encoder, architecture); :func:`mcanb.grid.run_grid` fine-tunes it per seed in the run
store ``outputs/runs/<encoder>/<architecture>/<identity>/seed<k>/`` (fit's files: history.csv, metrics.json,
params.yaml, predictions_{dev,test}.parquet, checkpoints/, and identity.json). The identity (:mod:`mcanb.identity`)
covers the documents' content, the encoder's weights and tokenizer files, every resolved model and training setting,
the seed and the code version, and ``fit`` runs with ``resume=True``, which checks it: notebook 03 reuses the
BERT-hier + LAN runs that notebook 02 finished from the same inputs, and a killed run continues where it stopped.
What both notebooks do with their parameters is here once (:func:`encoder_rows`, :func:`study_rows`;
the word pieces and coverage: :func:`mcanb.bert_scores.word_pieces`). Paper: Ji, Hölttä & Marttinen 2021,
§3–4.3; published numbers in :mod:`mcanb.published`. The tables (Tables 2-5 beside the paper) are
:mod:`mcanb.bert_scores`'s: a training run never runs them (``identity.TRAINING_CODE``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from . import encoders, grid, identity, names, wordpiece
from .names import BERT_DOMAINS, BERT_ENCODERS
from .paths import portable
from .models import build_model
from .models.bert import param_groups
from .processed import Processed
from .train import TrainConfig

# The model settings of each architecture name (names.ARCHITECTURES); the rest comes from the notebook.
ARCHITECTURE_MODELS = {"trun_fcn": ("bert_trun", {"head": "fcn"}),
                       "trun_lan": ("bert_trun", {"head": "lan"}),
                       "hier_fcn": ("bert_hier", {"head": "fcn"}),
                       "hier_lan": ("bert_hier", {"head": "lan"})}


@dataclasses.dataclass
class Encoder:
    """One row of the pretraining-domain study: what to load and where it sits on the domain axis."""

    label: str                # row name in the tables, e.g. "in-domain (MLM on training notes)"
    encoder: str              # hub id or directory (mcanb.encoders.resolve_encoder)
    init: str = "pretrained"  # "pretrained" | "random"
    domain: str = ""          # "general" | "mixed" | "in-domain" | "none"
    name: str = ""            # as the notebook's ``encoders`` names it (key of per-encoder settings)


def local_encoders(processed: Processed, out_dir: str | Path, mlm: encoders.MlmConfig,
                   which: Sequence[str] = ("general", "in-domain", "random"), *,
                   less_data: float = 0.25, progress: bool = True) -> list[Encoder]:
    """The toy stand-ins for the paper's encoders (see :mod:`mcanb.encoders`), pretrained once and cached.

    * ``in-domain``: WordPiece + MLM from scratch on the training split's notes (never dev or test);
    * ``in-domain-less``: the same recipe and number of steps on the first ``less_data`` share of those notes: the
      toy's "less pretraining data" against ``in-domain``'s "more" (the paper's Tables 3 and 4);
    * ``general``: the same recipe and size on general English (the Python standard library's docstrings);
    * ``random``: the in-domain configuration and tokenizer, no pretraining;
    * ``minilm``: the packaged all-MiniLM-L6-v2 (``local:minilm``), a real general-domain BERT (slow on CPU).
    """
    if not 0.0 < less_data < 1.0:
        raise ValueError(f"less_data must be a share of the training notes in (0, 1), got {less_data}")
    out_dir = Path(out_dir)
    made: dict[str, Encoder] = {}
    for name in which:
        if name == "in-domain-less":
            notes = processed.frames["train"]["text"].tolist()
            path = encoders.pretrain_mlm(notes[: max(1, round(less_data * len(notes)))],
                                         out_dir / f"in_domain_less_{round(100 * less_data)}", mlm, progress=progress)
            label = LOCAL_LABELS["in-domain-less"].format(pct=round(100 * less_data))
            made[name] = Encoder(label, str(path), "pretrained", "in-domain", name)
            continue
        if name == "in-domain" or (name == "random" and "in-domain" not in made):
            path = encoders.pretrain_mlm(processed.frames["train"]["text"].tolist(), out_dir / "in_domain", mlm,
                                         progress=progress)
            made.setdefault("in-domain", Encoder(LOCAL_LABELS["in-domain"], str(path), "pretrained", "in-domain",
                                                 "in-domain"))
        if name == "general":
            path = encoders.pretrain_mlm(encoders.general_english(), out_dir / "general", mlm, progress=progress)
            made["general"] = Encoder(LOCAL_LABELS["general"], str(path), "pretrained", "general", "general")
        elif name == "random":
            made["random"] = Encoder(LOCAL_LABELS["random"], made["in-domain"].encoder, "random", "none", "random")
        elif name == "minilm":
            made["minilm"] = Encoder(LOCAL_LABELS["minilm"], "local:minilm", "pretrained", "general", "minilm")
        elif name != "in-domain":
            raise ValueError(f"unknown local encoder {name!r}; valid: {', '.join(LOCAL_ENCODERS)}")
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
        for key in ("max_segments", "segment_layers", "segment_heads", "segment_ff", "hier_variant", "segment_init",
                    "pooling"):
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


def run_parts(processed: Processed, encoder: Encoder, model_name: str, model_config: dict[str, Any],
              settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The identity parts of one fine-tuning run (:func:`mcanb.identity.run_parts`): the documents' content, the
    encoder's files and initialisation, the resolved model settings (the encoder's location left out: its files
    count instead), the training settings, the seed and the code version."""
    model = {"model": model_name, **{k: v for k, v in model_config.items() if k != "encoder"}}
    return identity.run_parts(data=identity.of_processed(processed),
                              encoder=identity.of_encoder(encoder.encoder, encoders.resolve_encoder(encoder.encoder),
                                                          encoder.init),
                              model=model, train=settings, seed=seed)


@dataclasses.dataclass
class BertRow:
    """An (encoder, architecture) row of the study (:class:`mcanb.grid.Row`): fine-tuning with layer-wise rates."""

    enc: Encoder
    architecture: str                   # trun_fcn, trun_lan, hier_fcn, hier_lan
    config: TrainConfig                 # lr: the encoder's; the seed is set per run
    head_lr: float
    max_words: int = 2500
    layer_decay: float = 1.0
    segment_lr: float | None = None     # BERT-hier's second level (None: head_lr)
    output_bias: str = "default"        # "default" (the layer's own init) | "prior": the codes' training log-odds
                                        #   (BertCodingModel.init_output_bias)
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    progress: bool = True
    _data: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)   # per Processed: grid.per_data

    def __post_init__(self) -> None:
        if self.output_bias not in ("default", "prior"):
            raise ValueError(f"output_bias must be 'default' or 'prior', got {self.output_bias!r}")

    @property
    def key(self) -> str:
        return f"{slug(self.enc.label)}/{self.architecture}"

    @property
    def label(self) -> str:
        return f"{self.enc.label} · {names.ARCHITECTURES[self.architecture]}"

    @property
    def encoder(self) -> str:
        return self.enc.label

    @property
    def model(self) -> str:
        return ARCHITECTURE_MODELS[self.architecture][0]

    def prepare(self, processed: Processed, seed: int) -> grid.Prepared:
        """The model (head and random-init encoder weights from ``seed``), word-piece datasets, identity parts."""
        tokenizer = grid.per_data(self._data, processed, "tokenizer", lambda: encoders.load_tokenizer(self.enc.encoder))
        name, mcfg = model_config(self.architecture, self.enc, tokenizer, processed.num_codes, **self.model_overrides)
        torch.manual_seed(seed)
        model = build_model(name, mcfg)
        if self.output_bias == "prior":
            model.init_output_bias(torch.as_tensor(processed.multi_hot("train").mean(0)))
        max_pieces = model.config.max_pieces
        data = grid.per_data(self._data, processed, "data", lambda: wordpiece.datasets(     # shared by the seeds
            processed, tokenizer, max_words=self.max_words, max_pieces=max_pieces, progress=self.progress))
        config = self.config
        settings = {"model": name, "model_config": {**dataclasses.asdict(model.config),   # resolved: defaults included
                                                    "encoder": portable(model.config.encoder)},
                    "tokenizer": encoders.tokenizer_key(tokenizer), "max_words": self.max_words,
                    "max_pieces": max_pieces, "head_lr": self.head_lr, "layer_decay": self.layer_decay,
                    "segment_lr": self.segment_lr, "output_bias": self.output_bias,
                    "train": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "seed")},
                    "data_dir": portable(processed.data_dir), "label_space": processed.label_space}
        train = {**{k: settings[k] for k in ("max_words", "max_pieces", "head_lr", "layer_decay", "segment_lr",
                                             "output_bias")},
                 "train": identity.train_settings(config)}
        parts = run_parts(processed, self.enc, name, settings["model_config"], train, seed)
        groups = param_groups(model, encoder_lr=config.lr, head_lr=self.head_lr, layer_decay=self.layer_decay,
                              weight_decay=config.weight_decay, segment_lr=self.segment_lr)
        return grid.Prepared(model, data, dataclasses.replace(config, seed=int(seed), progress=self.progress), parts,
                             {**settings, "encoder_label": self.enc.label, "architecture": self.architecture,
                              "domain": self.enc.domain}, groups)


def rows(encoder_rows: Sequence[Encoder], architectures: Sequence[str], config: TrainConfig, *,
         encoder_lr: float | Mapping[str, float] | None = None, head_lr: float | Mapping[str, float] | None = None,
         segment_lr: float | Mapping[str, float | None] | None = None,
         output_bias: str | Mapping[str, str] = "default", **settings: Any) -> list[BertRow]:
    """One :class:`BertRow` per encoder and architecture (in that nesting).

    ``encoder_lr`` (default ``config.lr``) and ``head_lr`` (default: the encoder's) are one value, or a mapping:
    per encoder for ``encoder_lr`` (keyed by the name in the notebook's ``encoders``, or the row label), per
    architecture or head for ``head_lr`` (``"hier_fcn"``, else ``"fcn"``), with ``"default"`` for the rest
    (:func:`setting_for`). ``segment_lr`` (BERT-hier's second level; None: the head's rate) is one value or a mapping
    keyed like ``head_lr``; so is ``output_bias`` (:class:`BertRow`; unnamed heads: ``"default"``). ``settings``:
    :class:`BertRow`'s other fields (max_words, layer_decay, model_overrides, progress)."""
    out = []
    for enc in encoder_rows:
        lr = setting_for(config.lr if encoder_lr is None else encoder_lr, "encoder_lr", enc.name, enc.label)
        for arch in architectures:
            if arch not in ARCHITECTURE_MODELS:
                raise ValueError(f"architecture must be one of {list(ARCHITECTURE_MODELS)}, got {arch!r}")
            hl = setting_for(lr if head_lr is None else head_lr, "head_lr", arch, arch.split("_")[1])
            sl = setting_for({"default": None, **segment_lr} if isinstance(segment_lr, Mapping) else segment_lr,
                             "segment_lr", arch, arch.split("_")[1])
            ob = setting_for({"default": "default", **output_bias} if isinstance(output_bias, Mapping) else output_bias,
                             "output_bias", arch, arch.split("_")[1])
            out.append(BertRow(enc, arch, dataclasses.replace(config, lr=float(lr)), float(hl),
                               segment_lr=None if sl is None else float(sl), output_bias=ob, **settings))
    return out


slug = names.slug   # row label -> run folder / metrics.json key (the row names live in mcanb.names)


LOCAL_ENCODERS = names.LOCAL_ENCODERS
# Row labels of the local encoders (tables, run folders, metrics.json keys via slug()).
LOCAL_LABELS = names.LOCAL_LABELS
# (less data, more data) pairs of local encoders: the toy's Tables 3 and 4.
LOCAL_MORE_DATA = (("in-domain-less", "in-domain"),)


def resolve_encoders(names: Sequence[str], processed: Processed, encoders_dir: str | Path,
                     mlm: encoders.MlmConfig, *, less_data: float = 0.25, progress: bool = True) -> list[Encoder]:
    """Encoder rows from a notebook's ``encoders`` parameter: local stand-ins by name (:data:`LOCAL_ENCODERS`,
    made by :func:`local_encoders`), anything else a hub id or directory. A hub id of one of the paper's encoders
    is labelled with the paper's row name (``mcanb.names.BERT_ENCODERS``), so this run's row sits beside it."""
    local = [n for n in names if n in LOCAL_ENCODERS]
    made = (dict(zip(local, local_encoders(processed, encoders_dir, mlm, local, less_data=less_data,
                                           progress=progress))) if local else {})
    by_id = {v: k for k, v in BERT_ENCODERS.items()}
    out = []
    for n in names:
        if n in made:
            out.append(made[n])
        else:
            row = by_id.get(n, n)
            out.append(Encoder(row, n, "pretrained", BERT_DOMAINS.get(row, ""), n))
    return out


def pair_rows(rows: Sequence[Encoder], pairs: Sequence[Sequence[str]]) -> list[tuple[Encoder, Encoder]]:
    """The (less data, more data) encoder rows named by a notebook's ``more_data_pairs`` (names as in ``encoders``);
    a name that is not among the encoders is an error naming the parameter."""
    by_name = {r.name: r for r in rows}
    out = []
    for pair in pairs:
        if len(pair) != 2 or any(n not in by_name for n in pair):
            raise ValueError(f"more_data_pairs: {list(pair)!r} must be two names from encoders {list(by_name)}")
        out.append((by_name[pair[0]], by_name[pair[1]]))
    return out


def setting_for(value: Any, what: str, *keys: str) -> Any:
    """``value`` itself, or, for a mapping, its entry under the first of ``keys`` it has, else under ``"default"``."""
    if not isinstance(value, Mapping):
        return value
    for k in (*keys, "default"):
        if k in value:
            return value[k]
    raise ValueError(f"{what} has no entry for {keys[0]!r} and no 'default': give one of {[*keys, 'default']}")


def encoder_rows(processed: Processed, params: Mapping[str, Any]) -> list[Encoder]:
    """Notebooks 02 and 03's encoder rows from their parameters: ``encoders``, ``less_data``, the local encoders'
    pretraining (``mlm_*``, ``segment_heads``, ``num_threads``) and ``encoders_dir`` (None:
    ``outputs/encoders/<data run>-<label space>``, since the in-domain encoder reads that data's training notes)."""
    from .paths import resolve
    where = resolve(params.get("encoders_dir") or
                    f"outputs/encoders/{processed.data_dir.name}-{processed.label_space}")
    mlm = mlm_config(hidden_size=params["mlm_hidden_size"], num_layers=params["mlm_layers"],
                     num_heads=params["segment_heads"], vocab_size=params["mlm_vocab_size"],
                     steps=params["mlm_steps"], lr=params["mlm_lr"], num_threads=params["num_threads"],
                     seq_len=params["mlm_seq_len"], sentence_objective=params["mlm_sentence_objective"])
    return resolve_encoders(params["encoders"], processed, where, mlm, less_data=params["less_data"], progress=False)


MODEL_PARAMS = ("segment_length", "max_segments", "segment_layers", "segment_heads", "segment_ff", "hier_variant",
                "segment_init", "pooling", "lan_projection_dim",
                "gradient_checkpointing")   # notebook parameters -> model settings


def study_rows(rows_of: Sequence[Encoder], architectures: Sequence[str], params: Mapping[str, Any]) -> list[BertRow]:
    """Notebooks 02 and 03's :func:`rows` from their parameters: the fine-tuning set-up (:func:`train_config`),
    the model settings they have (:data:`MODEL_PARAMS`), ``encoder_lr``/``encoder_lrs``, ``head_lr``/``head_lrs``,
    ``segment_lr``/``segment_lrs``, ``output_bias``, ``layer_decay`` and ``max_words``."""
    config = train_config(num_epochs=params["num_epochs"], batch_size=params["batch_size"],
                          grad_accum_steps=params["grad_accum_steps"], encoder_lr=params["encoder_lr"],
                          patience=params["patience"], amp=params["amp"], num_threads=params["num_threads"],
                          early_stopping_metric=params["early_stopping_metric"])
    return rows(rows_of, architectures, config, encoder_lr={"default": params["encoder_lr"], **params["encoder_lrs"]},
                head_lr={"default": params["head_lr"], **params["head_lrs"]}, max_words=params["max_words"],
                layer_decay=params["layer_decay"], progress=False,
                segment_lr={"default": params["segment_lr"], **params["segment_lrs"]},
                output_bias=params["output_bias"],
                model_overrides={k: params[k] for k in MODEL_PARAMS if k in params})


def mlm_config(**settings: Any) -> encoders.MlmConfig:
    """The local encoders' pretraining settings; ``intermediate_size`` follows BERT's 4 × hidden size."""
    settings.setdefault("intermediate_size", 4 * int(settings.get("hidden_size", encoders.MlmConfig.hidden_size)))
    return encoders.MlmConfig(**settings)
