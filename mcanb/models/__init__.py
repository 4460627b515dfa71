"""Coding models: one file per family, config in, :class:`CodingOutput` out.

``build_model(name, config_dict, embeddings)`` is the one way notebooks and the training engine make a model;
it refuses unknown names and unknown config keys (docs/reference.md §Known traps: config keys silently ignored).

Every family has the same contract: a config dataclass whose ``__post_init__`` checks its fields
(:func:`~mcanb.models.layers.check_positive`, ``check_dropout``, ``check_impl``) and a model class
``Model(config, embeddings=None)`` whose ``forward(input_ids, attention_mask, labels)`` returns a
:class:`CodingOutput`. The few lines this repeats per file (the constructor head, its ``Args`` docstring, the
checks) are that contract written out, so each family's file reads alone; the shared logic is in
:mod:`mcanb.models.layers` and :mod:`mcanb.models.label_attention`.

| name          | class              | paper                                   |
|---------------|--------------------|-----------------------------------------|
| ``cnn``       | CnnModel           | Kim 2014; retrained CNN of Ji et al. 2021 |
| ``caml``      | CamlModel          | Mullenbach et al. 2018                  |
| ``dr_caml``   | DrCamlModel        | Mullenbach et al. 2018 (description regulariser) |
| ``multirescnn`` | MultiResCnnModel | Li & Yu 2020                            |
| ``laat``      | LaatModel          | Vu et al. 2020                          |
| ``bert_trun`` | BertCodingModel    | Ji et al. 2021 §3.2 (first 512 word pieces, FCN) |
| ``bert_hier`` | BertCodingModel    | Ji et al. 2021 §3.2–3.3 (segments + transformer, FCN or LAN); PLM-ICD |

Non-neural baselines (TF-IDF + logistic regression, most frequent codes) live in :mod:`mcanb.models.baselines`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from ..names import MODEL_NAMES, PLM_MODELS

from .bert import BertCodingModel, BertHierConfig, BertTrunConfig
from .caml import CamlConfig, CamlModel, DrCamlConfig, DrCamlModel
from .cnn import CnnConfig, CnnModel
from .embedding import check_embeddings
from .label_attention import LabelAttention
from .laat import LaatConfig, LaatModel
from .multirescnn import MultiResCnnConfig, MultiResCnnModel
from .outputs import CodingOutput

_REGISTRY: dict[str, tuple[type, type[nn.Module]]] = {
    "cnn": (CnnConfig, CnnModel),
    "caml": (CamlConfig, CamlModel),
    "dr_caml": (DrCamlConfig, DrCamlModel),
    "multirescnn": (MultiResCnnConfig, MultiResCnnModel),
    "laat": (LaatConfig, LaatModel),
    "bert_trun": (BertTrunConfig, BertCodingModel),
    "bert_hier": (BertHierConfig, BertCodingModel),
}
if tuple(_REGISTRY) != MODEL_NAMES:            # mcanb.names lists them for the checks that run before torch loads
    raise ImportError(f"mcanb.names.MODEL_NAMES {MODEL_NAMES} differs from the registered models {tuple(_REGISTRY)}")


def config_fields(name: str) -> tuple[str, ...]:
    """The config keys model ``name`` accepts, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(_lookup(name)[0]))


def make_config(name: str, config: dict[str, Any], embeddings: Tensor | None = None) -> Any:
    """The config dataclass of model ``name`` from a plain dict.

    ``vocab_size`` and ``embed_dim`` default to the shape of ``embeddings`` when given; an explicit value that
    disagrees with it is an error.
    """
    config_cls, _ = _lookup(name)
    valid = config_fields(name)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for model {name!r}; valid keys: {list(valid)}")
    values = dict(config)
    if embeddings is not None:
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
            raise ValueError("embeddings must be a (vocab_size, embed_dim) float tensor")
        values.setdefault("vocab_size", int(embeddings.shape[0]))
        values.setdefault("embed_dim", int(embeddings.shape[1]))
        check_embeddings(embeddings, values["vocab_size"], values["embed_dim"])
    required = [f.name for f in dataclasses.fields(config_cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in values]
    if missing:
        raise ValueError(f"model {name!r} needs config key(s) {missing}; valid keys: {list(valid)}")
    return config_cls(**values)


def build_model(name: str, config: dict[str, Any], embeddings: Tensor | None = None, *,
                encoder: nn.Module | None = None) -> nn.Module:
    """Build model ``name`` from a plain config dict.

    Args:
        name: one of :data:`MODEL_NAMES`.
        config: keys of the model's config dataclass (e.g. :class:`CnnConfig`); missing keys take the paper's
            defaults, unknown keys raise ``ValueError``.
        embeddings: optional ``(vocab_size, embed_dim)`` float word2vec vectors (row 0 = PAD, last = UNK); the
            CNN family only.
        encoder: the BERT family only: an already built Hugging Face encoder; default: loaded from
            ``config["encoder"]`` (hub id or directory, see :mod:`mcanb.encoders`).

    Example: ``build_model("caml", {"num_codes": 50}, embeddings=w2v)``.
    """
    _, model_cls = _lookup(name)
    if name in PLM_MODELS:
        if embeddings is not None:
            raise ValueError(f"model {name!r} reads word pieces with its encoder's own embeddings; "
                             "word2vec embeddings are for the CNN family")
        return model_cls(make_config(name, config), encoder)
    if encoder is not None:
        raise ValueError(f"encoder= is for the BERT family {list(PLM_MODELS)}, not {name!r}")
    return model_cls(make_config(name, config, embeddings), embeddings)


def _lookup(name: str) -> tuple[type, type[nn.Module]]:
    """Registry entry for ``name`` or ``ValueError`` listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {list(MODEL_NAMES)}")
    return _REGISTRY[name]


__all__ = [
    "MODEL_NAMES", "PLM_MODELS", "build_model", "BertCodingModel", "BertHierConfig", "BertTrunConfig", "make_config", "config_fields", "CodingOutput", "LabelAttention",
    "CnnConfig", "CnnModel", "CamlConfig", "CamlModel", "DrCamlConfig", "DrCamlModel",
    "MultiResCnnConfig", "MultiResCnnModel", "LaatConfig", "LaatModel",
]
