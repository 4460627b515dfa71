"""The names a parameter file may use for models, baselines and local encoders (BERT architectures:
:data:`mcanb.published.ARCHITECTURES`).

Defined here, in a module that imports nothing, so that the parameter checks (:mod:`mcanb.preflight`) run before
torch, scikit-learn or transformers load (about 2 s of every `mcanb run`); the modules that implement each name
import it from here (:mod:`mcanb.models`, :mod:`mcanb.cnn_study`, :mod:`mcanb.bert_study`).
"""
from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("cnn", "caml", "dr_caml", "multirescnn", "laat", "bert_trun", "bert_hier")
PLM_MODELS: tuple[str, ...] = ("bert_trun", "bert_hier")      # read word pieces and load a pretrained encoder
CNN_MODELS: tuple[str, ...] = tuple(m for m in MODEL_NAMES if m not in PLM_MODELS)
BASELINES: tuple[str, ...] = ("most_frequent", "tfidf_lr")   # non-neural reference points (notebook 04)
LOCAL_ENCODERS: tuple[str, ...] = ("general", "in-domain", "in-domain-less", "random", "minilm")
