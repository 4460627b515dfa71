"""Notebook 04's glue (mcanb.cnn_study), the seed summaries (mcanb.reporting), the published numbers
(mcanb.published) and the real-run parameter files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import executed_package_files

from mcanb import cnn_scores as S
from mcanb import cnn_study as E
from mcanb import grid, identity, notebook, params, processed, published, reporting
from mcanb.paths import NOTEBOOKS, PARAMETERS
from mcanb.predictions import load_predictions

NB = "04_cnn_retraining"
REAL_RUNS = sorted(p for p in PARAMETERS.glob(f"{NB}/mimic3_*.yaml") if not params.is_base(p))   # bases: test_parameters_layout


@pytest.fixture(scope="module")
def toy():
    return processed.load(notebook.ensure_preprocessed("outputs/01_preprocess/toy"), "50")


@pytest.fixture(scope="module")
def toy_splits(toy):
    return E.datasets(toy, max_length=64)


def _quick(model: str, **overrides) -> tuple[dict, object]:
    return (E.model_overrides(model, num_filters=8, filter_sizes=[3]),
            E.train_config(model, max_steps=2, num_epochs=1, progress=False, **overrides))


def test_datasets_align_with_processed(toy, toy_splits):
    assert set(toy_splits) == {"train", "dev", "test"}
    for split, ds in toy_splits.items():
        assert len(ds) == len(toy.frames[split]) and ds.lengths.max() <= 64
        assert np.array_equal(ds.labels_matrix(), toy.multi_hot(split))


def test_description_ids_tokenise_with_the_vocabulary(toy):
    ids = E.description_ids(toy, max_desc_len=12)
    assert ids.shape == (toy.num_codes, 12) and ids.dtype == torch.long
    assert int(ids.max()) < toy.vocab_size and (ids[:, 0] > 0).all()  # every toy code has a description
    first = toy.labels["description"].iloc[0].lower().split()[0]
    if first in toy.vocab:
        assert int(ids[0, 0]) == toy.vocab.index(first) + 1


def test_settings_fall_back_to_model_defaults():
    assert E.train_config("cnn").lr == E.MODEL_DEFAULTS["cnn"]["lr"] and E.train_config("caml").lr == 0.01
    assert E.PUBLISHED_LR["cnn"] == 0.003 and E.PUBLISHED_LR["caml"] == 1e-4   # in the mimic3_* files, explicitly
    assert E.train_config("caml", lr={"cnn": 0.003, "caml": 1e-4}).lr == 1e-4  # per model; a model left out ...
    assert E.train_config("laat", lr={"cnn": 0.003}).lr == E.MODEL_DEFAULTS["laat"]["lr"]   # ... takes its default
    with pytest.raises(ValueError, match="unknown model"):
        E.learning_rate("cnn", {"bert": 1e-5})
    assert E.model_overrides("cnn", freeze_embeddings=False) == {"freeze_embeddings": False}
    assert E.train_config("cnn", lr=0.01, patience=None).patience is None      # None: never stop early
    assert E.train_config("cnn", lr=0.01).early_stopping_metric is None         # None: the engine's default
    assert E.train_config("cnn", max_steps=None, patience=4).max_steps is None
    assert E.model_overrides("laat", num_filters=64) == {}
    assert E.model_overrides("multirescnn", num_filters=None, filter_sizes=None) == {}
    assert E.model_overrides("multirescnn", num_filters=16, filter_sizes=[3, 5]) == {"num_filters": 16,
                                                                                   "filter_sizes": (3, 5)}
    assert E.model_overrides("cnn", filter_sizes=[3]) == {}


def _row(model: str, **overrides) -> E.CnnRow:
    return E.CnnRow(model, *_quick(model, **overrides), max_length=64)


def test_a_cnn_run_executes_only_code_inside_its_code_version(toy, tmp_path):
    """Every function of the package that runs while DR-CAML trains (descriptions, regulariser, evaluation, the
    dev-tuned threshold) lies in the import closure the run's identity hashes (identity.TRAINING_CODE)."""
    result, ran = executed_package_files(lambda: grid.train(toy, _row("dr_caml"), 3, runs_dir=tmp_path))
    assert result["epochs"] == 1 and {"train.py", "caml.py", "cnn_study.py"} <= {f.name for f in ran}
    outside = ran - set(identity.import_closure(identity.TRAINING_CODE))
    assert not outside, f"a training run ran code its identity leaves out: {sorted(map(str, outside))}"


def test_a_run_goes_to_the_store_under_its_identity(toy, tmp_path):
    r = grid.train(toy, _row("dr_caml"), 3, runs_dir=tmp_path)
    run = Path(r["dir"])
    assert run.parent.parent == tmp_path / "dr_caml" and run.name == "seed3" and r["stop_reason"] == "max_steps"
    assert run == grid.run_dir("dr_caml", identity.read(run)["parts"], 3, tmp_path)   # the folder is the identity
    assert set(grid.RECORD_KEYS) <= set(r) and r["row"] == "dr_caml" and r["label"] == "DR-CAML"
    for name in ("history.csv", "metrics.json", "params.yaml", "predictions_test.parquet"):
        assert (run / name).exists(), name
    hadm, scores = load_predictions(r["predictions"])
    assert np.array_equal(hadm, toy.hadm_ids("test")) and scores.shape == (len(hadm), toy.num_codes)
    assert 0 <= r["test/micro_f1"] <= 1 and "test/p@5" in r
    recorded = yaml.safe_load((run / "params.yaml").read_text())
    assert recorded["max_length"] == 64 and recorded["token_rule"] == toy.token_rule == "caml"  # what was used


def test_a_run_is_reused_only_for_the_same_inputs(toy, tmp_path):
    import copy
    import json

    store, results = tmp_path / "runs", tmp_path / "04_cnn_retraining" / "toy"
    first = grid.train(toy, _row("cnn"), 3, out_dir=results, runs_dir=store)
    run = Path(first["dir"])
    best = run / "checkpoints" / "best.pt"
    stamp = best.stat().st_mtime_ns
    again = grid.train(toy, _row("cnn"), 3, out_dir=results, runs_dir=store)
    assert again["dir"] == first["dir"] and best.stat().st_mtime_ns == stamp   # same inputs: the finished run
    assert again["test/micro_f1"] == first["test/micro_f1"]
    changed = copy.copy(toy)
    changed.frames = {s: f.copy() for s, f in toy.frames.items()}
    changed.frames["train"].loc[0, "text"] = "fever " + changed.frames["train"].loc[0, "text"]
    other = grid.train(changed, _row("cnn"), 3, out_dir=results, runs_dir=store)
    assert Path(other["dir"]).parent != run.parent and best.stat().st_mtime_ns == stamp   # a new folder, old kept
    assert identity.read(other["dir"])["parts"]["data"]["sha"] == identity.of_processed(changed, words=True)["sha"]
    assert identity.uses(results) == sorted([run.resolve(), Path(other["dir"]).resolve()])
    assert all(not Path(e).is_absolute() for e in json.loads((results / "training_runs.json").read_text()))


def test_resume_starts_afresh_when_the_stored_identity_differs(toy, tmp_path, caplog):
    import logging
    import shutil

    first = grid.train(toy, _row("cnn"), 3, runs_dir=tmp_path)
    run = Path(first["dir"])
    moved = grid.run_dir("cnn", identity.read(run)["parts"], 4, tmp_path)       # seed 3's run where seed 4's goes
    shutil.copytree(run, moved)
    with caplog.at_level(logging.WARNING, logger="mcanb.train"):
        grid.train(toy, _row("cnn"), 4, runs_dir=tmp_path)
    assert "not resumed, its inputs differ (seed changed)" in caplog.text
    assert identity.read(moved)["parts"]["seed"]["value"] == 4


def test_baselines_summary_and_paired_test(toy, tmp_path):
    results = E.run_baselines(toy, tmp_path)
    assert [r["row"] for r in results] == ["most_frequent", "tfidf_lr"] and set(grid.RECORD_KEYS) <= set(results[0])
    assert (tmp_path / "tfidf_lr" / "predictions_test.parquet").exists()
    fake = [{**r, "seed": s, "test/micro_f1": r["test/micro_f1"] + 0.01 * s} for r in results for s in (1, 2)]
    summary = reporting.summarise_seeds(fake)
    row = summary[(summary["row"] == "most_frequent") & (summary["metric"] == "micro_f1")].iloc[0]
    assert row["n_seeds"] == 2 and row["sd"] == pytest.approx(0.01 / math.sqrt(2))
    assert not summary["metric"].str.startswith("n_").any() and "macro_auc_n_skipped" not in set(summary["metric"])
    best, second, tests = S.compare_best_two(toy, results)
    assert (best, second) == ("tfidf_lr", "most_frequent") and list(tests) == [None]   # baselines: one run each
    assert 0 < tests[None].p_value <= 1
    seeded = [{**r, "seed": s} for r in results for s in (13, 14)]            # the same scores under two seeds
    assert [(s, t.p_value) for s, t in S.compare_best_two(toy, seeded)[2].items()] == [(13, tests[None].p_value),
                                                                                  (14, tests[None].p_value)]
    rebuilt = E.saved_baseline(tmp_path / "most_frequent", toy)       # the report's floor, from the saved scores
    assert rebuilt["row"] == "most_frequent" and rebuilt["dev_threshold"] == results[0]["dev_threshold"]
    measured = {k: v for k, v in results[0].items() if k.startswith(("dev/", "test/"))}
    assert {k: rebuilt[k] for k in measured} == measured          # every metric: the floor test's ranking one too
    assert E.saved_baseline(tmp_path / "no_such_baseline", toy) is None
    for r in results:     # F1 at the threshold tuned on dev, beside F1 at 0.5
        assert 0 < r["dev_threshold"] < 1 and 0 <= r["test/micro_f1@dev_threshold"] <= 1
    tfidf = results[1]
    assert tfidf["dev/micro_f1@dev_threshold"] >= tfidf["dev/micro_f1"]   # tuned on dev: never worse there
    summary = reporting.summarise_seeds(results)
    floor = S.floor_check(summary, ["tfidf_lr"])
    assert set(floor["metric"]) == set(S.FLOOR_METRICS) and floor.set_index("metric").loc["map", "above"]
    assert floor["p"].isna().all()                    # without the runs' records: means only
    tested = S.floor_check(summary, ["tfidf_lr"], results=results, processed=toy, n_resamples=200).set_index("metric")
    assert tested.loc[["macro_auc", "micro_auc"], "p"].tolist() == pytest.approx([1 / 201] * 2)   # resampled too
    assert tested.loc["map", "above"] and tested.loc["map", "p"] == pytest.approx(1 / 201)   # every resample beats it
    assert (tested["above"] == (tested["value"] > tested["floor"]) & ~(tested["p"] >= 0.05)).all()
    table = S.table6(summary, "50")            # this run's F1 at the dev-tuned threshold beside the paper's metrics
    cell = table[table["source"] == "this run"].loc["TF-IDF + LR", "micro-F1 (dev thr.)"]
    assert cell == f"{100 * tfidf['test/micro_f1@dev_threshold']:.1f}"
    assert table[table["source"] == "paper"].loc["CAML", "micro-F1 (dev thr.)"] == ""   # no paper prints one


def test_published_numbers_match_the_paper_and_reference():
    assert published.value("CNN (retrained)", "50", "micro_f1", "paper") == 67.1
    assert published.value("CNN (Kim, 2014)", "full", "p@15", "paper") == 44.3
    assert published.value("CAML", "full", "p@15", "paper") == 44.5      # as printed in Table 6 ...
    assert published.value("CAML", "full", "p@15", "original") == 56.1   # ... and in CAML's paper
    assert published.value("LAAT", "50", "micro_f1", "original") == 71.5
    assert published.value("LAAT", "50", "micro_f1", "paper") is None    # not in the paper's Table 6
    assert all(n.where for n in published.NUMBERS)
    assert len(published.frame().query("source == 'paper'")) == 5 * 5 + 5 * 6


@pytest.mark.parametrize("space", ["50", "full"])
def test_table6_layout(space):
    """Table 6 as the paper prints it, this run's rows under it in the same columns (mcanb.comparison.build)."""
    this_run = pd.DataFrame({"row": ["cnn", "cnn", "most_frequent"], "metric": ["micro_f1", "macro_auc", "micro_f1"],
                             "mean": [0.5, 0.8, 0.25], "sd": [0.01, 0.02, 0.0], "n_seeds": [2, 2, 1]})
    t = S.table6(this_run, space)
    metrics = [published.METRIC_LABELS[m] for m in published.METRICS[space]]
    assert list(t.columns) == ["source", "stands for", *metrics, "seeds"]     # no difference: not MIMIC-III data
    mine = t[t["source"] == "this run"]
    assert mine.loc["CNN (retrained)", "micro-F1"] == "50.0 ± 1.0" and mine.loc["CNN (retrained)", "seeds"] == "2"
    assert mine.loc["Most frequent codes", "micro-F1"] == "25.0"            # one seed: no ±
    assert mine.loc["Most frequent codes", "stands for"] == "reference point, not in the paper"
    paper = t[t["source"] == "paper"]
    assert list(paper.index) == ["CNN (Kim, 2014)", "CNN (retrained)", "CAML", "MultiResCNN", "HyperCore"]
    not_run = t[t["source"] == "not run"]
    assert "HyperCore" in " ".join(not_run.index) and "LAAT" not in t[t["source"] != "original"].index
    if space == "50":
        assert paper.loc["CNN (retrained)", "micro-F1"] == "67.1"
    else:
        assert paper.loc["CAML", "P@15"] == "44.5"
        assert t[t["source"] == "original"].loc["CAML", "P@15"] == "56.1"   # CAML's own paper differs


@pytest.mark.parametrize("path", REAL_RUNS, ids=lambda p: p.stem)
def test_real_run_files_check_and_run_two_steps_on_toy(path, tmp_path):
    """The real-data parameter files cannot run here: check their keys, then run each model for two steps on toy."""
    values = params.load_file(path)
    defaults = params.notebook_defaults(NOTEBOOKS / f"{NB}.ipynb")
    params.check(values, defaults, str(path))
    p = {**defaults, **values, "data_dir": "outputs/01_preprocess/toy"}
    assert values["run_name"] == path.stem and values["data_dir"].startswith("outputs/01_preprocess/mimic3")
    data = processed.load(notebook.ensure_preprocessed(p["data_dir"]), p["label_space"])
    rows = E.rows(p["models"], max_length=32, lr=p["lr"], num_filters=p["num_filters"], filter_sizes=p["filter_sizes"],
                  freeze_embeddings=p["freeze_embeddings"], batch_size=p["batch_size"], num_epochs=p["num_epochs"],
                  patience=p["patience"], early_stopping_metric=p["early_stopping_metric"], max_steps=2,
                  progress=False)
    for r in grid.run_grid(data, rows, p["seeds"][:1], runs_dir=tmp_path):
        assert r["stop_reason"] == "max_steps" and np.isfinite(r["test/micro_auc"])
    # the paper's settings are explicit in the file (the notebook defaults serve small corpora instead)
    assert values["early_stopping_metric"] in ("micro_f1", "p@8") and values["lr"] is not None
    assert "freeze_embeddings" in values
