"""The BERT family (mcanb.models.bert), its encoders (mcanb.encoders) and word-piece cache (mcanb.wordpiece).

Everything runs on tiny in-process encoders (a 1-2 layer BERT with hidden size 32, a WordPiece tokenizer trained
on a few synthetic texts); nothing touches the network (a socket guard fails any test that tries). The packaged
all-MiniLM-L6-v2 (``local:minilm``) is used where it is installed.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from mcanb import encoders, wordpiece
from mcanb.batching import CodingDataset
from mcanb.models import build_model
from mcanb.models.bert import BertHierConfig, param_groups, split_segments
from mcanb.processed import Processed

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import micro_f1  # noqa: E402

PAD, CLS, SEP = 0, 1, 2          # special ids of the tiny encoder's vocabulary
VOCAB, HIDDEN = 64, 32


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly (and record) if anything opens a socket connection."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise RuntimeError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def tiny_encoder(seed: int = 0, layers: int = 1, hidden: int = HIDDEN) -> BertModel:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=64, pad_token_id=PAD)
    return BertModel(cfg, add_pooling_layer=False)


def tiny_model(name: str = "bert_hier", encoder: nn.Module | None = None, seed: int = 0, **config):
    base = {"num_codes": 5, "cls_token_id": CLS, "sep_token_id": SEP, "pad_token_id": PAD, "segment_length": 8}
    if name == "bert_hier":
        base.update(max_segments=4, segment_heads=2, segment_layers=1)
    model = build_model(name, {**base, **config}, encoder=encoder if encoder is not None else tiny_encoder(seed))
    torch.manual_seed(seed)
    for m in model.modules():                       # head weights reproducible whatever the encoder's seed
        if m is not model.encoder and not any(m is e for e in model.encoder.modules()):
            for p in m.parameters(recurse=False):
                nn.init.normal_(p, std=0.1) if p.ndim > 1 else nn.init.zeros_(p)
    return model


def docs(*lengths: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random word pieces (ids 3..VOCAB-1) of the given lengths: ``(input_ids, attention_mask)``."""
    g = torch.Generator().manual_seed(seed)
    T = max(1, max(lengths))
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, VOCAB, (n,), generator=g)
    return ids, torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


class CountingEncoder(nn.Module):
    """Wraps an encoder; records the shape of every call; optionally scales its output states."""

    def __init__(self, inner: nn.Module, scale: float = 1.0):
        super().__init__()
        self.inner, self.config, self.scale, self.calls = inner, inner.config, scale, []

    def forward(self, input_ids, attention_mask):
        self.calls.append((tuple(input_ids.shape), input_ids.clone()))
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(last_hidden_state=out * self.scale)


# -- split_segments --------------------------------------------------------------------------------------------
def test_split_segments_matches_hand_written_segments():
    cfg = BertHierConfig(num_codes=2, cls_token_id=101, sep_token_id=102, pad_token_id=0, segment_length=5,
                         max_segments=3)
    ids = torch.tensor([[11, 12, 13, 14, 15, 0, 0],
                        [21, 22, 99, 99, 99, 99, 99],     # ids behind the mask must not leak in
                        [0, 0, 0, 0, 0, 0, 0]])           # an empty document
    mask = torch.tensor([[1] * 5 + [0] * 2, [1, 1] + [0] * 5, [0] * 7], dtype=torch.bool)
    tokens, token_mask, segment_mask = split_segments(ids, mask, cfg)
    assert tokens.shape == token_mask.shape == (3, 3, 5)      # T=7 with 3 pieces per segment: ceil(7/3) = 3
    assert segment_mask.tolist() == [[True, True, False], [True, False, False], [True, False, False]]
    real = {(0, 0): [101, 11, 12, 13, 102], (0, 1): [101, 14, 15, 102, 0], (1, 0): [101, 21, 22, 102, 0],
            (2, 0): [101, 102, 0, 0, 0]}
    for (b, s), expected in real.items():
        assert tokens[b, s].tolist() == expected, (b, s)
        assert token_mask[b, s].tolist() == [t != 0 for t in expected], (b, s)
    assert not token_mask[~segment_mask].any()               # padding segments: nothing real

    cfg2 = BertHierConfig(num_codes=2, cls_token_id=101, sep_token_id=102, segment_length=5, max_segments=2)
    long_ids = torch.arange(11, 19)[None]                      # 8 pieces, room for 2 x 3: the last two are cut
    tokens, token_mask, segment_mask = split_segments(long_ids, torch.ones_like(long_ids, dtype=torch.bool), cfg2)
    assert tokens.tolist() == [[[101, 11, 12, 13, 102], [101, 14, 15, 16, 102]]]
    assert token_mask.all() and segment_mask.all()
    assert cfg2.max_pieces == 6


# -- encoding --------------------------------------------------------------------------------------------------
def test_one_encoder_call_for_all_real_segments_and_none_for_padding():
    enc = CountingEncoder(tiny_encoder())
    model = tiny_model(encoder=enc).eval()
    ids, mask = docs(20, 5, 0)                    # 6 pieces per segment: 4 + 1 + 1 (empty doc) real segments
    with torch.no_grad():
        logits = model(ids, mask).logits
    assert [shape for shape, _ in enc.calls] == [(6, 8)]
    assert (enc.calls[0][1][:, 0] == CLS).all()               # every encoded row is a [CLS] ... [SEP] segment
    assert ((enc.calls[0][1] == SEP).sum(1) == 1).all()

    enc.calls.clear()
    model.config.encoder_batch_size = 4
    with torch.no_grad():
        split = model(ids, mask).logits
    assert [shape for shape, _ in enc.calls] == [(4, 8), (2, 8)]
    torch.testing.assert_close(split, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,head", [("bert_hier", "lan"), ("bert_hier", "fcn"), ("bert_trun", "fcn")])
def test_document_alone_equals_document_padded_in_a_batch(name, head):
    model = tiny_model(name, head=head).eval()
    ids, mask = docs(9, 23, seed=3)
    with torch.no_grad():
        batch = model(ids, mask).logits
        alone = model(ids[:1, :9], mask[:1, :9]).logits
        other = model(ids[1:], mask[1:]).logits
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[1], other[0], atol=1e-5, rtol=1e-5)


def test_trun_reads_only_its_first_segment_and_hier_reads_all():
    ids, mask = docs(20, seed=4)
    changed = ids.clone()
    changed[0, 6:] = torch.randint(3, VOCAB, (14,), generator=torch.Generator().manual_seed(9))
    trun, hier = tiny_model("bert_trun").eval(), tiny_model("bert_hier", head="lan").eval()
    with torch.no_grad():
        torch.testing.assert_close(trun(ids, mask).logits, trun(changed, mask).logits, atol=0, rtol=0)
        assert not torch.allclose(hier(ids, mask).logits, hier(changed, mask).logits, atol=1e-4)
        changed_first = ids.clone()
        changed_first[0, 5] = (ids[0, 5] + 1 - 3) % (VOCAB - 3) + 3  # the last piece trun reads
        assert not torch.allclose(trun(ids, mask).logits, trun(changed_first, mask).logits, atol=1e-6)


# -- numerics of the LAN head ----------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["dense", "blocked"])
def test_lan_bf16_autocast_close_to_fp32_and_softmax_in_fp32(monkeypatch, impl):
    model = tiny_model(head="lan", attention_impl=impl, max_segments=6).eval()
    ids, mask = docs(36, 17, seed=5)
    with torch.no_grad():
        ref = model(ids, mask).logits
    seen = []
    real_softmax = torch.softmax

    def recording_softmax(x, *args, **kwargs):
        seen.append((x.dim(), x.dtype))
        return real_softmax(x, *args, **kwargs)

    monkeypatch.setattr(torch, "softmax", recording_softmax)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids, mask).logits
    monkeypatch.undo()
    assert low.dtype == torch.float32
    label_softmax = [dt for dim, dt in seen if dim <= 3]       # the encoder's attention softmax is 4-d
    assert label_softmax and all(dt == torch.float32 for dt in label_softmax), seen
    assert torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max() + 0.02, (low - ref).abs().max()


def test_lan_stays_finite_on_long_inputs_with_large_states():
    enc = CountingEncoder(tiny_encoder(), scale=3e3)           # states of size ~1e3-1e4
    model = tiny_model(encoder=enc, head="lan", max_segments=16, segment_length=32)
    ids, mask = docs(16 * 30, 300, seed=6)
    labels = torch.zeros(2, 5)
    labels[0, 1] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, mask, labels)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# -- optimizer groups ------------------------------------------------------------------------------------------
def test_param_groups_layerwise_lr_and_weight_decay():
    model = tiny_model(encoder=tiny_encoder(layers=2), head="lan")
    model.encoder.embeddings.token_type_embeddings.weight.requires_grad_(False)
    groups = param_groups(model, encoder_lr=1e-3, head_lr=1e-2, layer_decay=0.5, weight_decay=0.05)
    where: dict[int, tuple[float, float]] = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in where, "a parameter in two groups"
            where[id(p)] = (g["lr"], g["weight_decay"])
    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert {n for n, p in named.items() if id(p) in where} == trainable
    expect_lr = {"encoder.embeddings.": 2.5e-4, "encoder.encoder.layer.0.": 5e-4, "encoder.encoder.layer.1.": 1e-3}
    for n in trainable:
        lr, wd = where[id(named[n])]
        prefix = next((k for k in expect_lr if n.startswith(k)), None)
        assert lr == pytest.approx(expect_lr[prefix] if prefix else 1e-2), n
        no_decay = n.endswith("bias") or "LayerNorm" in n or "norm" in n.split(".")[-2] or named[n].ndim < 2
        assert wd == (0.0 if no_decay else 0.05), n
    assert where[id(named["encoder.encoder.layer.1.attention.self.query.weight"])] == (1e-3, 0.05)
    assert where[id(named["encoder.embeddings.LayerNorm.weight"])] == (2.5e-4, 0.0)
    assert where[id(named["label_attention.query"])] == (1e-2, 0.05)
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, encoder_lr=1e-3, head_lr=1e-3, layer_decay=0.0)


# -- configuration errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,config,match", [
    ("bert_hier", {"head": "cnn"}, "head must be one of"),
    ("bert_hier", {"pooling": "sum"}, "pooling must be one of"),
    ("bert_trun", {"max_segments": 2}, "BERT-trun reads one segment"),
    ("bert_hier", {"segment_heads": 3}, "must divide the encoder's hidden size 32"),
    ("bert_hier", {"segment_length": 2}, "segment_length"),
    ("bert_hier", {"encoder_init": "scratch"}, "encoder_init"),
    ("bert_hier", {"segment_lenght": 64}, "unknown config key"),
])
def test_config_errors(name, config, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(name, **config)


def test_embeddings_refused_for_bert():
    with pytest.raises(ValueError, match="word2vec embeddings are for the CNN family"):
        build_model("bert_hier", {"num_codes": 3}, embeddings=torch.zeros(10, 4), encoder=tiny_encoder())
