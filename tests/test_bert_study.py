"""The notebook glue of the BERT study (mcanb.bert_study) end to end on a tiny processed dataset and tiny local
encoders: local_encoders -> train_bert (word pieces, model, parameter groups, fit) -> reuse -> results_table."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_bert import TEXTS, _processed  # noqa: E402

from mcanb import bert_study, encoders  # noqa: E402

CODES = ("401.9", "428.0")
SMALL = {"segment_length": 16, "max_segments": 2, "segment_heads": 2}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("study")
    proc = _processed(root / "data", {"train": TEXTS[:60], "dev": TEXTS[60:80], "test": TEXTS[80:100]})
    for frame in proc.frames.values():   # 401.9 when the note mentions fever, 428.0 when it mentions cough
        frame["codes"] = [[c for c, w in zip(CODES, ("fever", "cough")) if w in t] for t in frame["text"]]
    proc.labels = pd.DataFrame({"index": [0, 1], "code": list(CODES), "description": ["a", "b"],
                                "train_count": [1, 1], "artefact": ["", ""]})
    mlm = encoders.MlmConfig(vocab_size=120, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                             max_position=64, seq_len=16, batch_size=16, steps=5)
    proc.labels.to_csv(root / "data" / "50" / "labels.csv", index=False)       # what `mcanb predict` reads
    encs = bert_study.local_encoders(proc, root / "enc", mlm, which=("in-domain", "random"), progress=False)
    yield proc, encs, root
    torch.set_num_threads(n)


def _train(study, encoder, architecture, **overrides):
    proc, _, root = study
    cfg = bert_study.train_config(num_epochs=2, batch_size=8, encoder_lr=1e-3, num_threads=1)
    return bert_study.train_bert(proc, encoder, architecture, cfg, root / "runs", seed=0, max_words=20,
                                 model_overrides={**SMALL, **overrides}, progress=False)


def test_train_bert_writes_a_run_and_reuses_it(study):
    proc, (in_domain, random_init), _ = study
    assert in_domain.encoder == random_init.encoder and random_init.init == "random"
    first = _train(study, in_domain, "hier_lan")
    run = Path(first["dir"])
    for name in ("metrics.json", "params.yaml", "predictions_test.parquet", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    params = yaml.safe_load((run / "params.yaml").read_text())
    tok = encoders.load_tokenizer(in_domain.encoder)
    assert params["model_config"]["cls_token_id"] == tok.cls_token_id and params["model_config"]["head"] == "lan"
    assert params["max_pieces"] == 2 * 14 and params["tokenizer"] == encoders.tokenizer_key(tok)
    assert first["epochs"] == 2 and 0.0 <= first["test/micro_f1"] <= 1.0

    stamp = (run / "checkpoints" / "best.pt").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = _train(study, in_domain, "hier_lan")
    assert time.perf_counter() - t0 < 5 and (run / "checkpoints" / "best.pt").stat().st_mtime_ns == stamp
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}

    other = {_train(study, random_init, "hier_lan")["dir"], _train(study, in_domain, "hier_lan", dropout=0.2)["dir"]}
    assert str(run) not in other and len(other) == 2        # encoder init and model settings are in the run key


def test_trun_drops_the_hierarchy_settings(study):
    _, (in_domain, _), _ = study
    res = _train(study, in_domain, "trun_fcn")
    cfg = yaml.safe_load((Path(res["dir"]) / "params.yaml").read_text())["model_config"]
    assert cfg["head"] == "fcn" and cfg["max_segments"] == 1 and cfg["segment_layers"] == 0  # the resolved config
    table = bert_study.results_table([res], "50")
    assert table.loc[0, "architecture"] == "BERT-trun + FCN" and table.loc[0, "n_seeds"] == 1
    with pytest.raises(ValueError, match="architecture must be one of"):
        _train(study, in_domain, "trun_cnn")


def test_predict_rebuilds_a_bert_run_with_word_level_attention_spans(study):
    from mcanb import predict
    _, (in_domain, _), _ = study
    run = Path(_train(study, in_domain, "hier_lan")["dir"])
    note = "Patient admitted with high fever and a dry cough. " * 3
    pred = predict.load_predictor(run).predict(note, top=2, spans=2)
    assert pred.model == "bert_hier" and [c.code for c in pred.codes] != [] and len(pred.codes) == 2
    assert all(0.0 <= c.score <= 1.0 for c in pred.codes)
    words = set(note.lower().replace(".", "").split())
    for c in pred.codes:            # LAN: spans on words of the note; a word's pieces' weights summed, total <= 1
        assert c.spans and all(s.token in words and 0.0 < s.weight <= 1.0 + 1e-6 for s in c.spans)
    fcn = Path(_train(study, in_domain, "trun_fcn")["dir"])
    assert all(not c.spans for c in predict.load_predictor(fcn).predict(note, top=2).codes)   # no attention, no spans


# -- The encoders' model-card facts (mcanb.published.ENCODER_CARDS, docs/encoders.md) ------------------------------
def test_every_encoder_of_every_table_has_its_card():
    from mcanb import published
    in_tables = set(published.bert_frame()["encoder"])
    assert in_tables <= set(published.ENCODER_CARDS) == set(published.BERT_ENCODERS)
    for name, card in published.ENCODER_CARDS.items():
        assert card.hub_id == published.BERT_ENCODERS[name] and card.source.startswith("https://")
        assert card.corpus and card.mimic and card.vocab_size > 0 and card.hidden_size % card.heads == 0
    docs = (Path(__file__).parents[1] / "docs" / "encoders.md").read_text()
    assert all(f"`{c.hub_id}`" in docs for c in published.ENCODER_CARDS.values()), "docs/encoders.md lists every id"


def test_biobert_rows_are_the_v1_0_family_of_the_papers_corpora():
    """§4.2: 200K PubMed abstracts vs + 270K PMC full-text articles, i.e. BioBERT v1.0 (+ PubMed) vs (+ PubMed + PMC);
    not v1.2, which its authors describe as 1M abstracts like v1.1 plus an LM head."""
    from mcanb import published
    abstract, full = published.ENCODER_CARDS["BioBERT abstract"], published.ENCODER_CARDS["BioBERT full text"]
    assert "v1.0" in abstract.hub_id and "v1.0" in full.hub_id and "pmc" in full.hub_id and "pmc" not in abstract.hub_id
    assert "PMC 270K" in full.corpus and "200K" in abstract.corpus and "PMC" not in abstract.corpus
    assert not any("v1.2" in i or "v1.1" in i for i in published.BERT_ENCODERS.values())
    # MIMIC-III text in pretraining: exactly BlueBERT and the two ClinicalBERTs.
    assert {n for n, c in published.ENCODER_CARDS.items() if c.mimic != "none"} == {
        "BlueBERT", "ClinicalBERT all notes", "ClinicalBERT disch. sum."}


def test_encoder_card_builds_a_random_stand_in_of_bert_base_size():
    """Issue #17 builds random-weight stand-ins from the cards: a BioBERT-shaped BertConfig has 107.7 M parameters
    without the pooler (vocabulary 28,996)."""
    from transformers import BertConfig, BertModel
    from mcanb import published
    with torch.device("meta"):
        m = BertModel(BertConfig(**published.ENCODER_CARDS["BioBERT full text"].bert_config()), add_pooling_layer=False)
    assert round(sum(p.numel() for p in m.parameters()) / 1e6, 1) == 107.7
