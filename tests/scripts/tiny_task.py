"""A tiny multi-label coding task with a planted signal, a tiny model and a numpy metric function.

Shared by tests/test_train*.py and the subprocess scripts beside this file (resume after SIGKILL, two
processes). Follows the model contract of ``mcanb.models``: ``model(input_ids, attention_mask, labels)``
returns ``.loss`` (mean BCE with logits) and ``.logits``.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mcanb.batching import CodingDataset

VOCAB, NUM_CODES, TRIGGERS = 60, 5, 3


@dataclass
class Output:
    loss: torch.Tensor | None
    logits: torch.Tensor


def _kill_at_forward(model: nn.Module) -> None:
    """SIGKILL this process at the ``TINY_KILL_AT_FORWARD``-th training forward pass of ``model`` (0 = never)."""
    kill_at = int(os.environ.get("TINY_KILL_AT_FORWARD", "0"))
    seen = [0]

    def hook(module, args):
        if module.training:
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    model.register_forward_pre_hook(hook)


def tiny_bert_hier(dropout: float = 0.2) -> nn.Module:
    """BERT-hier + LAN on a 1-layer BERT (hidden 16) over this task's ids: 4 segments of 16 pieces (64 = max_length)."""
    from transformers import BertConfig, BertModel

    from mcanb.models import build_model
    encoder = BertModel(BertConfig(vocab_size=VOCAB + 3, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=dropout,
                                   attention_probs_dropout_prob=dropout, pad_token_id=0), add_pooling_layer=False)
    model = build_model("bert_hier", {"num_codes": NUM_CODES, "cls_token_id": VOCAB, "sep_token_id": VOCAB + 1,
                                      "pad_token_id": 0, "segment_length": 18, "max_segments": 4,
                                      "segment_layers": 1, "segment_heads": 2, "head": "lan", "dropout": dropout},
                        encoder=encoder)
    _kill_at_forward(model)
    return model


class TinyModel(nn.Module):
    """Embedding -> masked mean-pool -> dropout -> linear."""

    def __init__(self, vocab: int = VOCAB, num_codes: int = NUM_CODES, dim: int = 16, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_codes)
        self.kill_at_forward = int(os.environ.get("TINY_KILL_AT_FORWARD", "0"))  # for the SIGKILL test
        self.train_forwards = 0

    def forward(self, input_ids, attention_mask, labels=None):
        if self.training:
            self.train_forwards += 1
            if self.train_forwards == self.kill_at_forward:
                os.kill(os.getpid(), signal.SIGKILL)
        mask = attention_mask.unsqueeze(-1).float()                          # (B, T, 1)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.out(self.dropout(pooled))                              # (B, C)
        loss = None if labels is None else nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return Output(loss, logits)


def make_split(n_docs: int, seed: int, num_codes: int = NUM_CODES, max_length: int = 64,
               first_hadm: int = 1000) -> CodingDataset:
    """Documents of 4-60 background tokens; each present code plants its trigger tokens a few times."""
    rng = np.random.default_rng(seed)
    background = np.arange(1 + num_codes * TRIGGERS, VOCAB)
    docs, labels = [], []
    for _ in range(n_docs):
        codes = np.flatnonzero(rng.random(num_codes) < 0.35)
        toks = list(rng.choice(background, size=rng.integers(4, 60)))
        for c in codes:
            toks += list(1 + c * TRIGGERS + rng.integers(0, TRIGGERS, size=rng.integers(1, 4)))
        docs.append(rng.permutation(np.array(toks, dtype=np.int32)))
        labels.append(codes)
    return CodingDataset(docs, labels, np.arange(first_hadm, first_hadm + n_docs), num_codes, max_length)


def make_data(n_train: int = 96, n_dev: int = 48, n_test: int = 48, seed: int = 0):
    return (make_split(n_train, seed), make_split(n_dev, seed + 1, first_hadm=5000),
            make_split(n_test, seed + 2, first_hadm=9000))


def tiny_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """micro-F1 at 0.5 and P@k for k = 1, 3 in a few numpy lines."""
    pred = y_score >= 0.5
    tp = float((pred & (y_true == 1)).sum())
    f1 = 2 * tp / max(pred.sum() + y_true.sum(), 1)
    out = {"micro_f1": f1}
    for k in (1, 3):
        top = np.argsort(-y_score, axis=1, kind="stable")[:, :k]
        out[f"p@{k}"] = float(np.take_along_axis(y_true, top, axis=1).sum(1).mean() / k)
    return out
