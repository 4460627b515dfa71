"""mcanb.cost: FLOPs counted from the model (against hand computations), and the engine's cost columns."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel

from mcanb import cost
from mcanb.batching import CodingDataset
from mcanb.models import build_model
from mcanb.models.bert import BertCodingModel, BertHierConfig
from mcanb.train import TrainConfig, fit


def _bert(head: str, segment_layers: int, num_codes: int = 5) -> BertCodingModel:
    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=16), add_pooling_layer=False)
    cfg = BertHierConfig(num_codes=num_codes, segment_length=8, max_segments=3, head=head,
                         segment_layers=segment_layers, segment_heads=2, cls_token_id=2, sep_token_id=3,
                         pad_token_id=0)
    return BertCodingModel(cfg, encoder=enc)


def test_bert_flops_match_a_hand_computation():
    # hidden 16, 2 layers, ff 32: weight matrices per layer q,k,v,o 4·16·16 + ff 16·32 + 32·16 = 2,048; N = 4,096.
    # A note of 10 pieces -> ceil(10 / 6) = 2 segments of s = 8 positions.
    per_segment = 6 * 4096 * 8 + 12 * 2 * 8 ** 2 * 16       # 6·N·s + 12·layers·s²·d = 196,608 + 24,576
    fcn = 6 * 16 * 5                                          # the head reads one vector per note
    flops = cost.bert_doc_flops(_bert("fcn", 0))
    assert flops(np.array([10]))[0] == 2 * per_segment + fcn == 442_848
    assert flops(np.array([100]))[0] == 3 * per_segment + fcn          # capped at max_segments = 3
    lan = 3 * (2 * 16 * 5 + 2 * 16 * 5) * 2 * 8 + fcn                 # scores and context per position, output β·V
    assert cost.bert_doc_flops(_bert("lan", 0))(np.array([10]))[0] == 2 * per_segment + lan


@pytest.mark.parametrize("head,segment_layers", [("fcn", 0), ("lan", 1)])
def test_bert_formula_agrees_with_torch_flop_counter(head, segment_layers):
    """The formula against every matmul the model really runs (forward counted by torch, × 3 for training). Torch's
    counter does not see the fused attention kernel on CPU, so its count plus the attention term must match."""
    model = _bert(head, segment_layers, num_codes=40)
    for n in (6, 12, 18):
        counted = 3 * cost.counted_forward_flops(model, n)
        S = -(-n // 6)
        attention = 12 * 2 * 8 ** 2 * 16 * S + 12 * segment_layers * S ** 2 * 16
        formula = cost.bert_doc_flops(model)(np.array([n]))[0]
        assert formula == pytest.approx(counted + attention, rel=1e-9) or formula == pytest.approx(counted), n


def test_cnn_flops_are_counted_from_the_modules():
    # Kim CNN: conv 2·E·k·F per position, output layer 2·F·C per note; training = 3 × forward
    model = build_model("cnn", {"num_codes": 50, "vocab_size": 1000, "embed_dim": 100, "num_filters": 500,
                                "kernel_size": 4})
    assert cost.counted_forward_flops(model, 256) == 2 * 100 * 4 * 500 * 256 + 2 * 500 * 50
    flops = cost.doc_flops_fn(model)
    assert flops(np.array([1000]))[0] == pytest.approx(3 * (2 * 100 * 4 * 500 * 1000 + 2 * 500 * 50))


def test_peak_flops():
    assert cost.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert cost.gpu_peak_flops("Some Future GPU") is None
    assert cost.cpu_peak_flops(1) > 1e8                         # any CPU does 0.1 GFLOP/s
    assert cost.projected_seconds(989e12 * 0.4 * 10, 989e12) == pytest.approx(10)


def test_fit_records_cost_per_epoch(tmp_path):
    rng = np.random.default_rng(0)
    n, codes = 24, 6
    ids = [rng.integers(1, 50, size=rng.integers(20, 40)) for _ in range(n)]
    labels = [np.array([i % codes]) for i in range(n)]
    ds = CodingDataset(ids, labels, np.arange(n), codes, 64)
    model = build_model("cnn", {"num_codes": codes, "vocab_size": 50, "embed_dim": 8, "num_filters": 12,
                                "kernel_size": 3})
    fit(model, ds, ds, TrainConfig(num_epochs=2, batch_size=8, progress=False, patience=None), tmp_path / "run")
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert set(cost.COLUMNS) <= set(hist.columns)
    assert (hist["tokens_per_s"] > 0).all() and (hist["mfu"] > 0).all() and (hist["s_per_step"] > 0).all()
    per_doc = cost.doc_flops_fn(model)(ds.lengths)
    assert hist["epoch_flops"].iloc[0] == pytest.approx(per_doc.sum())
    assert hist["flops_per_step"].iloc[0] == pytest.approx(per_doc.sum() / 3)      # 3 steps of 8 notes
    c = json.loads((tmp_path / "run" / cost.COST_FILE).read_text())
    assert c["epochs"] == 2 and c["train_docs"] == n and c["peak_mem_mb"] > 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert not any(k.startswith("cost") for k in metrics)     # timings stay out of the numbers two runs must share
