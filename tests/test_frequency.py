"""Notebook 05's logic (mcanb.frequency): finding saved predictions, F1 per frequency bin, seed summaries."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from mcanb import frequency as F
from mcanb import metrics
from mcanb.paths import NOTEBOOKS, PARAMETERS
from mcanb.predictions import save_predictions

BINS = [0, 1, 10, 100, float("inf")]


def _write(run_dir, rel, params, n_docs=4, n_codes=3):
    folder = run_dir / rel
    folder.mkdir(parents=True, exist_ok=True)
    if params is not None:
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
    save_predictions(folder / F.PREDICTIONS, np.arange(n_docs), np.full((n_docs, n_codes), 0.4, np.float32))
    return folder / F.PREDICTIONS


def test_discover_reads_model_seed_and_label_space(tmp_path):
    run = tmp_path / "04_cnn_retraining" / "toy"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump({"data_dir": "outputs/01_preprocess/toy", "label_space": "50"}))
    _write(run, "cnn/seed13", {"model": "cnn", "seed": 13, "data_dir": "/data/x", "label_space": "full"})
    _write(run, "most_frequent", None)                         # a baseline: the run folder's params.yaml counts
    _write(tmp_path / "04_cnn_retraining" / "other", "cnn/seed1", {"data_dir": "d", "label_space": "50"})
    _write(tmp_path / "05_frequency_analysis" / "toy", "x", {"data_dir": "d", "label_space": "50"})
    found = F.discover(["toy"], outputs=tmp_path)
    assert [(p.model, p.seed, p.label_space) for p in found] == [("cnn", 13, "full"), ("most_frequent", None, "50")]
    assert found[0].params_file == run / "cnn" / "seed13" / "params.yaml"
    assert [p.run for p in F.discover(["*"], outputs=tmp_path)] == ["other", "toy", "toy"]
    assert F.short_names(found)[found[0].path] == "cnn"
    assert F.short_names(F.discover(["*"], outputs=tmp_path))[found[0].path] == "04:toy:cnn"
    # Figure 3's legend names each model as the tables and the report do
    assert F.reader_name("04:toy:cnn") == "04/toy: CNN (retrained)" and F.reader_name("most_frequent") == (
        "Most frequent codes")
    assert F.reader_name("03:toy:in_domain_mlm_on_training_notes/hier_fcn") == (
        "03/toy: in-domain (MLM on training notes) · BERT-hier + FCN")


def test_discover_follows_the_training_runs_a_notebook_run_lists(tmp_path):
    """Training runs live in the run store; a notebook run lists the ones its results come from."""
    import json
    store = tmp_path / "runs"
    params = {"row": "caml", "model": "caml", "seed": 14, "data_dir": "d", "label_space": "50"}
    used = _write(store, "caml/0123abcd/seed14", params).parent
    _write(store, "caml/99999999/seed14", params)                            # in the store, listed by no result
    for nb in ("03_hierarchy", "04_cnn_retraining"):                         # two results list the same run
        run = tmp_path / nb / "toy"
        run.mkdir(parents=True)
        (run / "training_runs.json").write_text(json.dumps([str(used)]))
    found = F.discover(["toy"], outputs=tmp_path)
    assert [(p.notebook, p.run, p.model, p.seed, p.path.parent) for p in found] == [
        ("03_hierarchy", "toy", "caml", 14, used)]                         # once, for the first that lists it


def test_a_baseline_that_several_notebooks_saved_byte_for_byte_is_shown_once(tmp_path):
    """Notebooks 02, 03 and 04 each fit the most-frequent floor on the same data: one row in the figure, not three;
    a baseline whose scores differ (another label space here) stays."""
    meta = {"data_dir": "d", "label_space": "50"}
    for nb in ("02_pretraining_domains", "03_hierarchy", "04_cnn_retraining"):
        _write(tmp_path / nb / "toy", "most_frequent", meta)
    _write(tmp_path / "04_cnn_retraining" / "toy", "tfidf_lr", meta)
    _write(tmp_path / "04_cnn_retraining" / "wide", "most_frequent", {**meta, "label_space": "full"}, n_codes=5)
    found = F.discover(["*"], outputs=tmp_path)
    assert [(p.notebook[:2], p.run, p.model) for p in found] == [("02", "toy", "most_frequent"),
                                                                  ("04", "toy", "tfidf_lr"),
                                                                  ("04", "wide", "most_frequent")]


def test_predictions_without_label_space_are_an_error_naming_the_file(tmp_path):
    run = tmp_path / "04_cnn_retraining" / "toy"
    pred = _write(run, "cnn/seed13", {"model": "cnn"})
    with pytest.raises(ValueError, match=r"predictions_test.parquet: no params.yaml .* gives \['label_space', 'data_dir'"):
        F.discover(["toy"], outputs=tmp_path)
    assert pred.exists()


def test_bin_scores_counts_codes_never_predicted_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 6)) < 0.4).astype(np.uint8)
    scores = np.where(y == 1, 0.7, 0.2).astype(np.float32)
    scores[:, 0] = 0.1                                       # code 0 is never predicted
    scores[:5, 3] = 0.9                                      # some false positives for code 3
    counts = np.array([0, 5, 5, 50, 50, 50])
    t = F.bin_scores(y, scores, counts, bins=BINS, n_resamples=100)
    assert t["bin"].tolist() == metrics.frequency_bin_labels(BINS) == ["0", "1-9", "10-99", "100+"]
    assert t["n_codes"].tolist() == [1, 2, 3, 0]
    assert t["never_predicted"].tolist() == [1, 0, 0, 0]
    assert t.loc[0, "micro_f1"] == 0 and t.loc[1, "micro_f1"] == 1
    filled = t[t["n_codes"] > 0]
    assert (filled["ci_low"] <= filled["micro_f1"]).all() and (filled["micro_f1"] <= filled["ci_high"]).all()
    assert t.loc[2, "ci_low"] < t.loc[2, "ci_high"]          # code 3's false positives make the interval wide
    assert np.isnan(t.loc[3, "micro_f1"]) and np.isnan(t.loc[3, "ci_low"])   # empty bin: no numbers, n_codes says why


def test_summary_over_seeds_and_a_table_without_blanks():
    rows = []
    for seed, f1 in ((1, 0.5), (2, 0.7)):
        rows += [{"model": "cnn", "seed": seed, "bin": "1-9", "n_codes": 4, "n_present": 3, "never_predicted": seed,
                  "micro_f1": f1, "macro_f1_present": f1, "ci_low": f1 - 0.1, "ci_high": f1 + 0.1},
                 {"model": "cnn", "seed": seed, "bin": "100+", "n_codes": 0, "n_present": 0, "never_predicted": 0,
                  "micro_f1": np.nan, "macro_f1_present": np.nan, "ci_low": np.nan, "ci_high": np.nan}]
    s = F.summarise(pd.DataFrame(rows))
    first = s.iloc[0]
    assert first["f1_mean"] == pytest.approx(0.6) and first["f1_sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert (first["ci_low"], first["ci_high"], first["never_predicted"]) == pytest.approx((0.4, 0.8, 1.5))
    assert np.isnan(s.iloc[1]["never_predicted"])                      # an empty bin has no code to miss
    two = pd.concat([s, s.assign(model="caml")], ignore_index=True)
    shown = F.display_table(two)
    assert shown.loc[("every model", "100+"), "micro-F1"] == "no codes"           # once, not once per model
    assert list(shown.index) == [("cnn", "1-9"), ("every model", "100+"), ("caml", "1-9")]
    assert shown.loc[("cnn", "1-9"), "never predicted (mean over seeds)"] == "1.5"
    assert shown.loc[("cnn", "1-9"), "micro-F1"] == "0.600 ± 0.141"
    assert not (shown.astype(str) == "").any().any() and not shown.isna().any().any()
    flat = F.flat_metrics(s, "full")
    assert flat["full/cnn/100+/n_codes"] == 0 and "full/cnn/100+/micro_f1/mean" not in flat
    assert flat["full/cnn/1-9/micro_f1/mean"] == pytest.approx(0.6)


def test_missing_predictions_name_the_command_that_makes_them(tmp_path):
    """Notebook 05 never starts another notebook: it says which one to run."""
    (tmp_path / "04_cnn_retraining" / "toy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no predictions_test.parquet under .*\{toy\}/: .*run "
                                                r"`mcanb run 04_cnn_retraining toy` first \(or `mcanb study toy`"):
        F.find_predictions(["toy"], outputs=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run `mcanb run 04_cnn_retraining <run>"):
        F.find_predictions(["mimic3_50_*"], outputs=tmp_path)
    assert not list(tmp_path.rglob("*.parquet")), "nothing was trained"
    pred = _write(tmp_path / "04_cnn_retraining" / "toy", "cnn/seed13", {"data_dir": "d", "label_space": "50"})
    assert [p.path for p in F.find_predictions(["toy"], outputs=tmp_path)] == [pred]


def _profile_values(spec) -> dict:
    """A profile entry's parameter values: the notebook's defaults, its file, the profile's overrides."""
    from mcanb import params
    from mcanb.study import resolve

    return {**params.notebook_defaults(NOTEBOOKS / f"{spec.notebook}.ipynb"), **resolve(spec)}


@pytest.mark.parametrize("profile", sorted(p.stem for p in (PARAMETERS / "study").glob("*.yaml")))
def test_each_profiles_frequency_run_reads_the_training_runs_it_lists(profile):
    """Notebook 05's ``runs`` patterns (globbed by :func:`mcanb.frequency.discover`) match the run name of every
    notebook 02-04 run that the profile's notebook-05 entry lists in ``reads``, and of every run of those notebooks in
    the profile in a label space it shows: a pattern that misses one leaves that run's models out without an error
    (``mimic3_50_*`` missed notebooks 02's and 03's ``mimic3_50``). Reads parameter files only."""
    from fnmatch import fnmatchcase

    from mcanb.study import load_profile

    prof = load_profile(profile)
    training = ("02_pretraining_domains", "03_hierarchy", "04_cnn_retraining")
    for spec in [s for s in prof.runs if s.notebook == "05_frequency_analysis"]:
        values = _profile_values(spec)
        read = [k for k in spec.reads if k.split("/")[0] in training]
        assert read, f"{profile}: {spec.key} reads no training notebook's run"
        same_space = [s.key for s in prof.runs if s.notebook in training
                      and str(_profile_values(s)["label_space"]) in map(str, values["label_spaces"])]
        for key in sorted({*read, *same_space}):
            name = key.split("/", 1)[1]
            assert any(fnmatchcase(name, p) for p in values["runs"]), (
                f"{profile}: {spec.key}'s runs {values['runs']} miss {key}")
