"""Every parameter file of notebooks 02 and 03: its keys exist in the notebook, and each of its models takes two
optimizer steps on a tiny local encoder with the file's own model and optimiser settings (a dry run of what the real
MIMIC-III run builds, without the hub or the data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mcanb import bert_study, encoders, params as P, pipeline, published
from mcanb.batching import collate
from mcanb.models.bert import param_groups
from mcanb.paths import PARAMETERS

FILES = sorted(f for f in PARAMETERS.glob("0[23]_*/*.yaml") if not P.is_base(f))   # bases: test_parameters_layout


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A saved 1-layer BERT (hidden 48, 12 heads, 512 positions) with a WordPiece tokenizer: a local stand-in."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny_encoder")
    texts = [f"patient with acute kidney failure and hypertension day {w} of stay" for w in "abcdefghij"] * 5
    tok = encoders.train_wordpiece(texts, 200, d)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=48, num_hidden_layers=1, num_attention_heads=12,
                         intermediate_size=96, max_position_embeddings=512)).save_pretrained(d)
    return d


def test_there_is_a_file_for_every_published_table():
    names = {f"{f.parent.name}/{f.stem}" for f in FILES}
    assert {"02_pretraining_domains/mimic3_50", "02_pretraining_domains/mimic3_full",
            "02_pretraining_domains/mimic3_50_more_data", "02_pretraining_domains/mimic3_full_more_data",
            "03_hierarchy/mimic3_50", "03_hierarchy/mimic3_50_table4", "03_hierarchy/mimic3_50_plmicd"} <= names
    # Every encoder row of Tables 2-5 is run by some file, by its hub id.
    ids = {e for f in FILES for e in P.load_file(f).get("encoders", [])}
    assert {published.BERT_ENCODERS[e] for e in set(published.bert_frame()["encoder"])} <= ids


@pytest.mark.parametrize("file", FILES, ids=lambda f: f"{f.parent.name}/{f.stem}")
def test_parameter_file_keys_and_a_two_step_dry_run(file, tiny_encoder):
    notebook = file.parent.name
    values = pipeline.resolve_parameters(notebook, file.stem)          # unknown keys raise here
    defaults = P.notebook_defaults(pipeline.NOTEBOOKS / f"{notebook}.ipynb")
    p = {**defaults, **values}
    if not file.stem.startswith("mimic3"):
        return
    assert set(p["encoders"]) <= set(published.BERT_ENCODERS.values()), "real runs name the paper's hub ids"
    enc = bert_study.Encoder("tiny", str(tiny_encoder))
    tok = encoders.load_tokenizer(tiny_encoder)
    config = bert_study.train_config(num_epochs=p["num_epochs"], batch_size=p["batch_size"],
                                     grad_accum_steps=p["grad_accum_steps"], encoder_lr=p["encoder_lr"],
                                     patience=p["patience"], amp="off", num_threads=p["num_threads"])
    assert config.batch_size * config.grad_accum_steps == 8, "the paper's batch of 8 notes (Ji et al. 2021 §3.4)"
    overrides = {k: p[k] for k in ("segment_length", "max_segments", "segment_layers", "segment_heads",
                                   "gradient_checkpointing") if k in p}
    for key in ("pooling", "lan_projection_dim"):
        if key in p:
            overrides[key] = p[key]
    if overrides.get("lan_projection_dim"):
        overrides["lan_projection_dim"] = 16                      # the file's 768 is BERT-base's width
    for arch in p.get("architectures", ["hier_lan"]):
        name, mcfg = bert_study.model_config(arch, enc, tok, 5, **overrides)
        from mcanb.models import build_model
        torch.manual_seed(0)
        model = build_model(name, mcfg)
        rng = np.random.default_rng(0)
        items = [{"input_ids": rng.integers(5, len(tok), size=n), "label_ids": np.array([i % 5]), "hadm_id": i,
                  "index": i} for i, n in enumerate((model.config.max_pieces, 300))]
        batch = collate(items, 5)
        opt = torch.optim.AdamW(param_groups(model, encoder_lr=config.lr, head_lr=p["head_lr"],
                                             layer_decay=p["layer_decay"]))
        losses = []
        for _ in range(2):
            out = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(out.loss.item())
        assert all(np.isfinite(losses)), (file.name, arch, losses)
