"""The notebook glue of the BERT study (mcanb.bert_study) end to end on a tiny processed dataset and tiny local
encoders: local_encoders -> rows -> grid.train (word pieces, model, parameter groups, fit) -> reuse -> bert_scores.results_table."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_bert import TEXTS, _processed  # noqa: E402

from conftest import executed_package_files  # noqa: E402

from mcanb import bert_scores, bert_study, encoders, grid, identity  # noqa: E402
from mcanb.errors import UserError  # noqa: E402

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


def _train(study, encoder, architecture, processed=None, **overrides):
    proc, _, root = study
    cfg = bert_study.train_config(num_epochs=2, batch_size=8, encoder_lr=1e-3, num_threads=1)
    (row,) = bert_study.rows([encoder], [architecture], cfg, max_words=20, model_overrides={**SMALL, **overrides},
                             progress=False)
    return grid.train(processed or proc, row, 0, runs_dir=root / "runs")


def test_a_bert_run_goes_to_the_store_and_is_reused(study):
    proc, (in_domain, random_init), root = study
    assert in_domain.encoder == random_init.encoder and random_init.init == "random"
    first = _train(study, in_domain, "hier_lan")
    run = Path(first["dir"])
    key = f"{bert_study.slug(in_domain.label)}/hier_lan"
    assert first["row"] == key and run.parent.parent == root / "runs" / key and run.name == "seed0"
    assert set(grid.RECORD_KEYS) <= set(first) and first["encoder"] == in_domain.label and first["model"] == "bert_hier"
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


def test_a_bert_run_executes_only_code_inside_its_code_version(study, tmp_path):
    """Every function of the package that runs while a BERT-hier run trains (word pieces cut afresh, the prior bias,
    the second level's own rate) lies in the import closure the run's identity hashes (identity.TRAINING_CODE), so
    a change to any code that trains it gives another run."""
    proc, (in_domain, _), _ = study
    cfg = bert_study.train_config(num_epochs=1, batch_size=8, encoder_lr=1e-3, num_threads=1)
    (row,) = bert_study.rows([in_domain], ["hier_fcn"], cfg, max_words=12, model_overrides=SMALL, progress=False,
                             output_bias="prior", segment_lr=1e-3)
    result, ran = executed_package_files(lambda: grid.train(proc, row, 0, runs_dir=tmp_path / "runs"))
    assert result["epochs"] == 1 and {"train.py", "bert.py", "wordpiece.py"} <= {f.name for f in ran}
    outside = ran - set(identity.import_closure(identity.TRAINING_CODE))
    assert not outside, f"a training run ran code its identity leaves out: {sorted(map(str, outside))}"


def test_pretraining_table_measures_each_encoders_context_on_the_training_notes(study):
    """Given the data, the encoder table says how contextual each encoder is (mcanb.encoder_probe.context_probe on the
    first training notes); the random-init row is the same every time (seed 0) and leaves the caller's random
    state alone."""
    proc, encs, _ = study
    state = torch.random.get_rng_state()
    table = bert_scores.pretraining_table(encs, proc, length=16)
    assert torch.equal(state, torch.random.get_rng_state())
    cols = ["next piece moves, %", "[CLS] moves, %", "[CLS] spread over notes, %"]
    assert (table[cols] >= 0).all().all() and (table[cols] < 1000).all().all()
    assert table[cols].equals(bert_scores.pretraining_table(encs, proc, length=16)[cols])
    assert not set(cols) & set(bert_scores.pretraining_table(encs).columns)          # without data: as before


def test_trun_drops_the_hierarchy_settings(study):
    _, (in_domain, _), _ = study
    res = _train(study, in_domain, "trun_fcn")
    cfg = yaml.safe_load((Path(res["dir"]) / "params.yaml").read_text())["model_config"]
    assert cfg["head"] == "fcn" and cfg["max_segments"] == 1 and cfg["segment_layers"] == 0  # the resolved config
    table = bert_scores.results_table([res], "50")
    assert table.loc[0, "architecture"] == "BERT-trun + FCN" and table.loc[0, "n_seeds"] == 1
    with pytest.raises(ValueError, match="architecture must be one of"):
        _train(study, in_domain, "trun_cnn")


def test_predict_rebuilds_a_bert_run_with_word_level_attention_spans(study, tmp_path):
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
    params = yaml.safe_load((run / "params.yaml").read_text())
    assert params["data_dir"] == str(study[0].data_dir)         # outside the outputs folder: kept as it is
    copy = tmp_path / "copy"                                    # the tokenizer's files changed since training
    shutil.copytree(run, copy)
    (copy / "params.yaml").write_text(yaml.safe_dump({**params, "tokenizer": "0123456789abcdef"}))
    with pytest.raises(UserError, match="is not the one this model was trained with"):
        predict.load_predictor(copy)


def test_a_run_is_reused_only_for_the_same_data_content(study):
    import copy

    from mcanb import identity
    proc, (in_domain, _), _ = study
    first = _train(study, in_domain, "trun_lan")
    stored = identity.read(first["dir"])
    assert set(stored["parts"]) == {"data", "encoder", "model", "train", "seed", "code"}
    assert stored["parts"]["encoder"]["files"].keys() >= {"model.safetensors", "vocab.txt", "config.json"}
    changed = copy.copy(proc)                      # the same folder and label space, one note changed
    changed.frames = {s: f.copy() for s, f in proc.frames.items()}
    changed.frames["train"].loc[0, "text"] = changed.frames["train"].loc[0, "text"] + " fever"
    second = _train(study, in_domain, "trun_lan", processed=changed)
    assert second["dir"] != first["dir"], "a run trained on other notes was reused"
    new = identity.read(second["dir"])
    assert identity.differences(stored, new["parts"]) == ["data changed"]
    assert _train(study, in_domain, "trun_lan")["dir"] == first["dir"]          # the original data: reused


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


# -- Computed verdicts (mcanb.paper_verdicts, mcanb.bert_verdicts) and coverage ----------------------------------------------------------
def test_paper_verdicts_state_the_metrics_each_comparison_holds_on():
    from mcanb import paper_verdicts as v
    top50 = v.paper_bert_vs_cnn("50")
    # The paper's best top-50 BERT beats its retrained CNN on the F1s and P@5, not on the AUCs (Tables 2 and 6).
    assert ("PubMedBERT full text (BERT-hier + LAN) is above the retrained CNN on macro-F1 (63.3 vs 62.4), micro-F1 "
            "(68.1 vs 67.1) and P@5 (64.4 vs 64.0); the retrained CNN is ahead on macro-AUC (90.8 vs 88.6) and "
            "micro-AUC (93.1 vs 90.8)") in top50
    assert "1 of 7" in top50
    assert "more pretraining data scores higher in 13 of 15 comparisons" in v.paper_more_data(4, "50")
    assert "(not on micro-F1: BERT-base and SapBERT full text)" in v.paper_hierarchy()
    assert v.compare("a", {"micro_f1": 1.04}, "b", {"micro_f1": 0.96}, ["micro_f1"], digits=0) == \
        "they tie on micro-F1 (1 vs 1)."
    # Table 6 as printed: the retrained CNN leads every column of the top-50 codes but P@5 (MultiResCNN 64.1 vs 64.0),
    # and no column of the full codes (HyperCore or MultiResCNN lead each)
    top50, full = v.paper_cnn("50"), v.paper_cnn("full")
    assert top50.startswith("Paper, Table 6 (top-50 codes): the retrained CNN is the best model of the table on 4 of 5 "
                            "metrics (macro-AUC, micro-AUC, macro-F1 and micro-F1).")
    assert ("The retrained CNN is above MultiResCNN on macro-AUC (90.8 vs 89.9), micro-AUC (93.1 vs 92.8), macro-F1 "
            "(62.4 vs 60.6) and micro-F1 (67.1 vs 67.0); MultiResCNN is ahead on P@5 (64.1 vs 64.0).") in top50
    assert "The retrained CNN is above HyperCore on macro-AUC (90.8 vs 89.5)" in top50 and len(top50.splitlines()) == 5
    assert "best model of the table on none of its 6 metrics" in full
    assert "HyperCore is above the retrained CNN on macro-AUC (93.0 vs 85.0)" in full


def test_run_verdicts_and_floor_from_result_rows():
    from mcanb import bert_verdicts as v
    rows = [bert_study.Encoder("in", "x", domain="in-domain"), bert_study.Encoder("less", "x", domain="in-domain"),
            bert_study.Encoder("rand", "x", "random", "none")]       # the first in-domain row stands for its domain
    res = [{"encoder": "in", "architecture": "hier_lan", "seed": 0, "test/micro_f1": 0.6, "test/macro_auc": 0.7},
           {"encoder": "less", "architecture": "hier_lan", "seed": 0, "test/micro_f1": 0.1, "test/macro_auc": 0.1},
           {"encoder": "rand", "architecture": "hier_lan", "seed": 0, "test/micro_f1": 0.5, "test/macro_auc": 0.8},
           {"encoder": "in", "architecture": "trun_lan", "seed": 0, "test/micro_f1": 0.3, "test/macro_auc": 0.6}]
    text = v.domain_verdict(rows, res, coverage={"in": 0.9, "rand": 0.5})
    assert text == ("BERT-hier + LAN: in (reads 90 % of the notes' words) is above rand (reads 50 % of the notes' words) on "
                    "micro-F1 (60.0 vs 50.0); rand (reads 50 % of the notes' words) is ahead on macro-AUC "
                    "(80.0 vs 70.0).")
    assert "in: BERT-hier + LAN is above BERT-trun + LAN on macro-AUC (70.0 vs 60.0) and micro-F1 (60.0 vs 30.0)." \
        in v.hierarchy_verdict(rows, res)
    assert v.more_data_verdict([("less", "in")], res) == ("BERT-hier + LAN: in is above less on macro-AUC (70.0 vs "
                                                          "10.0) and micro-F1 (60.0 vs 10.0).")

    from mcanb import bert_scores as scores
    table = pd.DataFrame({scores.CLS_SPREAD: {"in": 3.08, "minilm": 44.41}})
    assert scores.context_verdict(table) == ("[CLS] states that differ between notes by under 5 % of their length: in "
                                        "3.1 %. A head that reads only [CLS] (the FCN rows) has little to learn from "
                                        "these encoders.")
    assert scores.context_verdict(table.drop("in")) == ("Every encoder's [CLS] states differ between notes by 5 % of their "
                                                   "length or more (44.4-44.4).")
    assert scores.context_verdict(pd.DataFrame({"init": {"in": "pretrained"}})) == ""   # no notes given: no verdict


class _TestSplit:
    """What a paired test reads of the processed data: the test labels, the test documents' order, the codes."""

    def __init__(self, y):
        self.y = y
        self.num_codes = y.shape[1]

    def multi_hot(self, split):
        return self.y

    def label_ids(self, split):
        return [np.flatnonzero(row) for row in self.y]

    def hadm_ids(self, split):
        return np.arange(100, 100 + len(self.y))


def test_floor_verdict_tells_a_row_that_learned_from_one_within_test_set_noise(tmp_path, monkeypatch):
    """The floor verdict is a paired bootstrap over the test notes, each run at its own dev-tuned threshold: a model
    that knows the codes clears the floor, one that differs from the floor on 2 of 300 notes is above it only by
    noise, a worse one is below it, and a row clears the floor only if every seed does."""
    from mcanb import bert_verdicts as v
    from mcanb.metrics import bootstrap
    from mcanb.paired import paired_on_test
    from mcanb.predictions import save_predictions
    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < [0.5, 0.4, 0.3, 0.2, 0.1, 0.05]).astype(np.float32)
    data = _TestSplit(y)
    metric = "micro_f1@dev_threshold"

    def run(name, y_score, threshold, **fields):
        path = save_predictions(tmp_path / f"{name}.parquet", data.hadm_ids("test"), y_score.astype(np.float32))
        row = f"{fields['encoder']}/{fields['architecture']}" if fields else "most_frequent"
        rec = {"row": row, "predictions": str(path), "dev_threshold": threshold, **fields}
        return {**rec, f"test/{metric}": paired_on_test(data, rec, rec, metric, n_resamples=1).estimate_a}

    prior = np.tile(y.mean(0), (300, 1))                 # the most-frequent floor: one score vector for every note
    floor = run("floor", prior, 0.35)
    near = prior.copy()
    near[:2] = y[:2]                                     # right on two notes, the floor everywhere else
    knows, worse = 0.1 + 0.8 * y, 0.9 - 0.8 * y
    rows = [run("knows", knows, 0.5, encoder="in", architecture="hier_lan", seed=13),
            run("near", near, 0.35, encoder="in", architecture="trun_fcn", seed=13),
            run("worse", worse, 0.5, encoder="in", architecture="hier_fcn", seed=13)]
    assert rows[0][f"test/{metric}"] == 1.0 and rows[1][f"test/{metric}"] > floor[f"test/{metric}"] > 0.4
    # at their own thresholds: the floor predicts its two commonest codes for every note; at 0.5 it predicts none
    assert paired_on_test(data, floor, floor, "micro_f1", n_resamples=1).estimate_a == 0.0
    ok, text = v.floor_verdict(rows, floor, data, metric, n_resamples=200)
    assert not ok
    assert text.startswith(f"Above the most-frequent floor ({floor[f'test/{metric}']:.3f} micro-F1 (dev thr.)) beyond "
                           "test-set noise (paired bootstrap over the 300 test notes, 200 resamples, one-sided "
                           "p < 0.05 for every seed): in · BERT-hier + LAN (1.000, p = 0.005).")   # 1 / (1 + 200)
    assert "Above it by no more than test-set noise: in · BERT-trun + FCN (" in text
    # a comparison with a row that does not clear the floor says so (the more-data verdict, given the floor)
    assert v.floor_caveat(rows, floor, data, [("in", "hier_lan"), ("in", "trun_fcn")]) == (
        " Read with care: in · BERT-trun + FCN does not clear the most-frequent floor on micro-F1 (dev thr.) beyond "
        "test-set noise, so this compares rows that learned little from the notes.")
    assert v.floor_caveat(rows, floor, data, [("in", "hier_lan")]) == "" == v.floor_caveat(
        rows, None, data, [("in", "hier_lan"), ("in", "trun_fcn")])                   # no floor given: no caveat
    assert text.endswith("At or below it: in · BERT-hier + FCN (0.000).")
    # the same sentence, judged on the label-attention rows only (the notebooks' WARNING)
    assert v.floor_verdict(rows, floor, data, metric, must_clear=["hier_lan"], n_resamples=200) == (True, text)
    warned: list = []
    assert not v.floor_verdict(rows, floor, data, metric, must_clear=["trun_fcn"], n_resamples=200, collect=warned)[0]
    assert warned[0].warning == (f"WARNING: a BERT-trun + FCN row does not clear the most-frequent floor "
                                 f"({floor[f'test/{metric}']:.3f} micro-F1 (dev thr.)) beyond test-set noise.")
    assert warned[0].line == f"{text} {warned[0].warning}"       # the sentence, then the warning (the report's)
    assert v.floor_verdict(rows[:1], floor, data, metric, n_resamples=200) == (True, (
        f"All 1 rows are above the most-frequent floor ({floor[f'test/{metric}']:.3f} micro-F1 (dev thr.)) beyond "
        "test-set noise (paired bootstrap over the 300 test notes, 200 resamples, one-sided p < 0.05 for every seed)."))
    # a second seed of the same row that only matches the floor's noise keeps the row from clearing it
    second = {**rows[1], "row": "in/hier_lan", "architecture": "hier_lan", "seed": 14}
    assert not v.floor_verdict([rows[0], second], floor, data, metric, n_resamples=200)[0]
    # a row that ranks each code's notes right but moves no score across the threshold is at the floor on F1 and
    # above it on macro-AUC beyond noise (the floor scores every note alike: 0.5), which the sentence adds
    ranks = run("ranks", prior + 0.001 * y, 0.35, encoder="in", architecture="trun_fcn", seed=13)
    for r in (rows[0], ranks, rows[2], floor):
        r["test/macro_auc"] = paired_on_test(data, r, r, "macro_auc", n_resamples=1).estimate_a
    found: list = []
    ok, text = v.floor_verdict([rows[0], ranks, rows[2]], floor, data, metric, n_resamples=200, collect=found)
    assert ranks[f"test/{metric}"] == floor[f"test/{metric}"] and ok is False
    # the same verdict as a table (the notebooks show it, the report renders it): percent, and p (1 / (1 + 200))
    (said,) = found
    assert said.line == text and said.warning == "" and said.how in text
    assert said.table.columns.tolist() == [("micro-F1 (dev thr.)", "%"), ("micro-F1 (dev thr.)", "one-sided p"),
                                           ("macro-AUC", "%"), ("macro-AUC", "one-sided p")]
    assert said.table.to_dict("index") == {
        "most-frequent floor": dict(zip(said.table.columns, [f"{100 * floor[f'test/{metric}']:.1f}", "", "50.0", ""])),
        "in · BERT-hier + LAN": dict(zip(said.table.columns, ["100.0", "0.005 ✓", "100.0", "0.005 ✓"])),
        "in · BERT-trun + FCN": dict(zip(said.table.columns, [f"{100 * floor[f'test/{metric}']:.1f}", "not above",
                                                              "100.0", "0.005 ✓"])),
        "in · BERT-hier + FCN": dict(zip(said.table.columns, ["0.0", "not above", "0.0", "not above"]))}
    assert text.endswith(f"At or below it: in · BERT-trun + FCN ({floor[f'test/{metric}']:.3f}) and in · BERT-hier + "
                         "FCN (0.000). Of the rows that do not clear it, above its macro-AUC (0.500) beyond noise: in "
                         "· BERT-trun + FCN (1.000, p = 0.005); they rank each code's notes better than the floor, not "
                         "well enough to beat its F1.")
    assert v.floor_verdict([rows[0], ranks], floor, data, metric, ranking=None, n_resamples=200)[1].endswith(
        f"At or below it: in · BERT-trun + FCN ({floor[f'test/{metric}']:.3f}).")
    # predictions of other notes, or in another order, are refused
    with pytest.raises(ValueError, match="not the test split's"):
        paired_on_test(_TestSplit(y[:299]), rows[0], floor, metric)

    # the run verdicts say which of their differences stand beyond that noise, on every metric, the AUCs included;
    # two architectures of one encoder: "knows" (hier_lan) against "near" (now hier_fcn)
    pair = [rows[0], {**rows[1], "row": "in/hier_fcn", "architecture": "hier_fcn"}]
    for r in pair:
        for m in ("micro_f1", "p@5", "macro_auc"):
            r[f"test/{m}"] = paired_on_test(data, r, r, m, n_resamples=1).estimate_a
    assert pair[0]["test/macro_auc"] == 1.0 and 0.5 < pair[1]["test/macro_auc"] < 0.52   # ranked right on 2 notes
    metrics = ("macro_auc", "micro_f1", "p@5", metric)
    clause = v.noise_clause(data, pair, ("in", "hier_lan"), ("in", "hier_fcn"), metrics, n_resamples=200)
    assert clause == (" Beyond test-set noise (paired bootstrap over the 300 test notes, one-sided p < 0.05 for every "
                      "seed): the differences on macro-AUC (p = 0.005), micro-F1 (p = 0.005), P@5 (p = 0.005) and "
                      "micro-F1 (dev thr.) (p = 0.005).")
    collected: list = []
    text = v.hierarchy_verdict([bert_study.Encoder("in", "x", domain="in-domain")], pair, extra_metrics=[metric],
                               processed=data, collect=collected)
    assert text.startswith("in: BERT-hier + LAN is above BERT-hier + FCN on macro-AUC (100.0 vs 51.2), micro-F1 ")
    # the same comparison as data, for the report's tables: the line itself, the means, each metric's p
    [said] = collected
    assert (said.line, said.lead, said.a, said.b) == (text, "in: ", "BERT-hier + LAN", "BERT-hier + FCN")
    assert said.a_scores["macro_auc"] == 100.0 and said.metrics[-1] == metric and set(said.ps) == set(metrics)
    assert all(p < 0.001 for p in said.ps.values()) and said.caveat == ""
    assert text.endswith(" Beyond test-set noise (paired bootstrap over the 300 test notes, one-sided p < 0.05 for "
                         "every seed): the differences on macro-AUC (p < 0.001), micro-F1 (p < 0.001), P@5 "
                         "(p < 0.001) and micro-F1 (dev thr.) (p < 0.001).")
    # where the AUCs' comparison matrices would not fit in memory, the sentence says it skipped them
    n_gold = sum(map(len, data.label_ids("test")))
    monkeypatch.setattr(bootstrap, "AUC_MAX_BYTES", bootstrap.auc_bytes(300, n_gold) - 1)
    assert v.noise_clause(data, pair, ("in", "hier_lan"), ("in", "hier_fcn"), metrics, n_resamples=200).endswith(
        " P@5 (p = 0.005) and micro-F1 (dev thr.) (p = 0.005); the AUCs are not bootstrapped at this size (300 test "
        f"notes with {n_gold} gold codes).")
    monkeypatch.undo()
    assert "Beyond" not in v.hierarchy_verdict([bert_study.Encoder("in", "x", domain="in-domain")], pair)
    # a row against a copy of itself differs on nothing; the floor against "near" only within noise
    assert v.noise_clause(data, [*pair[:1], {**pair[0], "architecture": "trun_lan"}], ("in", "hier_lan"),
                          ("in", "trun_lan"), metrics, n_resamples=50) == ""
    near_vs_floor = [{**rows[1], "encoder": "a"}, {**floor, "encoder": "b", "architecture": "trun_fcn", "seed": 13}]
    assert v.noise_clause(data, near_vs_floor, ("a", "trun_fcn"), ("b", "trun_fcn"), [metric], n_resamples=200) \
        .endswith("): no difference; within it: micro-F1 (dev thr.) (p = 0.134).")   # as floor_verdict said


def test_coverage_and_per_encoder_settings():
    lengths = pd.DataFrame({"general": [100, 300], "in-domain": [50, 150]})
    cov = bert_scores.coverage(lengths, segment_length=52, max_segments=4)       # 50 pieces a segment, 200 a note
    assert cov["hier"] == {"general": 300 / 400, "in-domain": 1.0}
    assert cov["trun"] == {"general": 100 / 400, "in-domain": 100 / 200}
    table = bert_scores.with_coverage(pd.DataFrame({"encoder": ["general", "in-domain"],
                                                   "architecture": ["BERT-hier + LAN", "BERT-trun + FCN"]}), cov)
    assert list(table["note read"]) == ["75 %", "50 %"]
    # notes cut at max_words are read only in part: of 100 + 400 words the cut kept 100 + 200
    lengths.attrs.update(note_words=[100, 400], kept_words=[100, 200])
    cov = bert_scores.coverage(lengths, segment_length=52, max_segments=4)
    assert cov["hier"] == pytest.approx({"general": (100 + 200 * 200 / 300) / 500, "in-domain": 300 / 500})
    assert cov["trun"] == pytest.approx({"general": (100 * 50 / 100 + 200 * 50 / 300) / 500,
                                         "in-domain": (100 + 200 * 50 / 150) / 500})
    assert list(bert_scores.segment_summary(lengths, 52, 4)["share kept by max_words"]) == [0.6, 0.6]
    assert bert_study.setting_for({"fcn": 0.03, "default": 0.01}, "head_lr", "hier_fcn", "fcn") == 0.03
    assert bert_study.setting_for({"fcn": 0.03, "default": 0.01}, "head_lr", "hier_lan", "lan") == 0.01
    assert bert_study.setting_for(0.002, "encoder_lr", "general") == 0.002
    with pytest.raises(ValueError, match="encoder_lr has no entry for 'general'"):
        bert_study.setting_for({"random": 0.01}, "encoder_lr", "general", "general (MLM on English docstrings)")


def test_per_head_segment_rate_and_output_bias():
    cfg = bert_study.train_config(num_epochs=1, encoder_lr=0.002)
    archs = ["trun_fcn", "hier_fcn", "trun_lan", "hier_lan"]
    made = bert_study.rows([bert_study.Encoder("e", "e")], archs, cfg, head_lr={"default": 0.01, "fcn": 0.03},
                           segment_lr={"default": None, "fcn": 0.002}, output_bias={"fcn": "prior"})
    assert [(r.head_lr, r.segment_lr, r.output_bias) for r in made] == [
        (0.03, 0.002, "prior"), (0.03, 0.002, "prior"), (0.01, None, "default"), (0.01, None, "default")]
    plain = bert_study.rows([bert_study.Encoder("e", "e")], archs, cfg)
    assert {(r.segment_lr, r.output_bias) for r in plain} == {(None, "default")}      # the paper's set-up
    with pytest.raises(ValueError, match="output_bias must be 'default' or 'prior'"):
        bert_study.rows([bert_study.Encoder("e", "e")], archs, cfg, output_bias="zero")


def test_less_data_encoder_reads_a_share_of_the_training_notes(study, tmp_path):
    proc, _, root = study
    mlm = encoders.MlmConfig(vocab_size=120, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                             max_position=64, seq_len=16, batch_size=16, steps=5)
    (less,) = bert_study.local_encoders(proc, root / "enc", mlm, which=("in-domain-less",), less_data=0.5,
                                        progress=False)
    import json
    record = json.loads((Path(less.encoder) / "pretraining.json").read_text())
    assert record["documents"] == 30 and less.name == "in-domain-less" and "50 %" in less.label
    with pytest.raises(ValueError, match="less_data"):
        bert_study.local_encoders(proc, root / "enc", mlm, which=("in-domain-less",), less_data=1.0)


def test_pretraining_loss_projects_only_the_masked_positions_to_the_same_value():
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    ids = torch.randint(5, 50, (3, 20))
    labels = torch.full_like(ids, -100)
    labels[:, ::4] = ids[:, ::4]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    mlm, nsp = encoders._pretraining_loss(model, batch)
    assert nsp is None and mlm.item() == pytest.approx(model(**batch).loss.item(), abs=1e-5)
    nothing = {**batch, "labels": torch.full_like(ids, -100)}
    assert encoders._pretraining_loss(model, nothing)[0].item() == 0.0
    # MLM + next-segment prediction: the sum is BertForPreTraining's own loss
    model = BertForPreTraining(config).eval()
    pair = {**batch, "token_type_ids": (torch.arange(20) >= 10).long().expand(3, 20)}
    follows = torch.tensor([0, 1, 1])
    mlm, nsp = encoders._pretraining_loss(model, pair, follows)
    assert (mlm + nsp).item() == pytest.approx(model(**pair, next_sentence_label=follows).loss.item(), abs=1e-5)


def test_show_prints_each_comparison_then_its_noise_clause_indented(capsys):
    from mcanb import bert_verdicts as v
    text = ("a is above b on micro-F1 (50.0 vs 48.0). Beyond test-set noise (paired bootstrap over the 9 test notes): "
            "no difference.\nc is above d on P@5 (1.0 vs 0.5).")
    assert v.said_and_noise(text) == [
        ("a is above b on micro-F1 (50.0 vs 48.0).", "Beyond test-set noise (paired bootstrap over the 9 test notes): "
                                                     "no difference."),
        ("c is above d on P@5 (1.0 vs 0.5).", "")]
    v.show(text)
    assert capsys.readouterr().out == ("a is above b on micro-F1 (50.0 vs 48.0).\n    Beyond test-set noise (paired "
                                       "bootstrap over the 9 test notes): no difference.\nc is above d on P@5 (1.0 vs "
                                       "0.5).\n")


def test_score_bars_name_the_metric_and_show_no_spread_for_one_seed():
    import matplotlib
    import matplotlib.container
    matplotlib.use("Agg")
    res = [{"encoder": e, "architecture": a, "seed": 13, "test/micro_f1@dev_threshold": 0.3}
           for e in ("in-domain", "random") for a in ("hier_lan", "trun_fcn")]
    ax = bert_scores.plot_scores(res, "micro_f1@dev_threshold", floor=0.26, title="Domains").axes[0]
    assert (ax.get_title(), ax.get_ylabel()) == ("Domains", "test micro-F1 (dev thr.)\none seed")
    def error_bars(ax) -> list:
        return [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]

    assert not error_bars(ax)                                                           # an sd of 0 is no spread
    two = res + [{**r, "seed": 14, "test/micro_f1@dev_threshold": 0.4} for r in res]
    ax = bert_scores.plot_scores(two, "micro_f1@dev_threshold").axes[0]
    assert ax.get_ylabel().endswith("mean ± sd over 2 seeds")
    assert len(error_bars(ax)) == 2                                                     # one per architecture
