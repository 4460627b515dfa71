"""Every parameter file of notebooks 01 and 05, and notebook 04's files for its one-model and several-model paths in
every label space they use, run end to end (``mcanb run``) on the toy fixtures, a few steps each, in one throw-away
outputs folder; and, in another, the toy coded-notes table (ICD-10, string ids, short reports) goes through notebooks
01, 02 and 04 with the defaults, every model above the most-frequent floor.

The real-data files cannot read MIMIC-III here: notebook 01's are pointed at the toy MIMIC-shaped folder (same
format, its own split files), so the MIMIC-III runs of notebooks 04 and 05 read real notebook-01 outputs of the
same names. Notebooks 02 and 03 are left to tests/test_bert_parameters.py (their files name hub encoders).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcanb.paths import ROOT

pytestmark = pytest.mark.slow

# Tiny settings for notebook 04 (the files' own values are checked by the notebook's parameter check first).
QUICK_04 = {"seeds": "[13]", "num_epochs": "1", "max_steps": "2", "num_filters": "4", "max_length": "64",
            "baselines": "[most_frequent]"}
QUICK_05 = {"n_resamples": "10"}


def _files(notebook: str) -> list[str]:
    """The runnable files of a notebook (base files, which others extend, are not runs)."""
    from mcanb.pipeline import parameter_files
    return parameter_files(notebook)[0]


def _run(outputs: Path, notebook: str, run: str, **overrides: str) -> Path:
    cmd = [sys.executable, "-m", "mcanb.cli", "run", notebook, run]
    for key, value in overrides.items():
        cmd += ["-p", key, value]
    env = {**os.environ, "MCANB_OUTPUTS": str(outputs), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{notebook}/{run} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return outputs / notebook


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An outputs folder with notebook 01's toy run: the toy MIMIC-shaped folder that the real files of 01 read, and
    what 04's and 05's files read."""
    out = tmp_path_factory.mktemp("outputs")
    _run(out, "01_preprocess", "toy")
    return out


@pytest.fixture(scope="module")
def corpus_outputs(tmp_path_factory) -> Path:
    """Another outputs folder with notebook 01's toy_corpus run (the coded-notes table), which 02's and 04's toy_corpus
    files read: the two folders share nothing, so their tests may run on two workers (conftest.py)."""
    out = tmp_path_factory.mktemp("corpus_outputs")
    _run(out, "01_preprocess", "toy_corpus")
    return out


def _cnn_shape(run: str) -> set[tuple]:
    """What running notebook 04's file ``run`` exercises: the notebook's one-model or several-model path in its label
    space. (Each model goes through the notebook in the toy runs: CNN, CAML and MultiResCNN under nbval, those and
    LAAT in test_toy_corpus_learns_with_the_defaults; every file's models train two steps in tests/test_cnn_study.py.)"""
    from mcanb import params
    from mcanb.paths import NOTEBOOKS, PARAMETERS

    path = PARAMETERS / "04_cnn_retraining" / f"{run}.yaml"
    values = {**params.notebook_defaults(NOTEBOOKS / "04_cnn_retraining.ipynb"),
              **(params.load_file(path) if path.exists() else {})}
    space, models = str(values["label_space"]), list(values["models"])
    return {("several models" if len(models) > 1 else "one model", space)}


def _05_reads(run: str) -> list[str]:
    """The run-name patterns notebook 05's file ``run`` reads (``runs``)."""
    from mcanb import params
    from mcanb.paths import NOTEBOOKS, PARAMETERS

    path = PARAMETERS / "05_frequency_analysis" / f"{run}.yaml"
    return list({**params.notebook_defaults(NOTEBOOKS / "05_frequency_analysis.ipynb"),
                 **(params.load_file(path) if path.exists() else {})}["runs"])


def covering_04_files() -> list[str]:
    """Notebook 04's runnable files (toy_corpus aside) that together exercise what all of them do (``_cnn_shape``),
    picked greedily, most new first, and for each run-name pattern a file of notebook 05 reads, one 04 file it
    matches. A file left out repeats kept ones for the notebook; its own values are still checked, and each of its
    models trained two steps, by tests/test_cnn_study.py (test_real_run_files_check_and_run_two_steps_on_toy)."""
    from fnmatch import fnmatch

    shapes = {r: _cnn_shape(r) for r in _files("04_cnn_retraining") if r != "toy_corpus"}
    kept, seen = [], set()
    while True:
        run = max(sorted(shapes), key=lambda r: len(shapes[r] - seen))
        if not shapes[run] - seen:
            break
        kept.append(run)
        seen |= shapes[run]
    for pattern in [p for r in _files("05_frequency_analysis") for p in _05_reads(r)]:
        if not any(fnmatch(k, pattern) for k in kept):
            kept += [r for r in sorted(shapes) if fnmatch(r, pattern)][:1]
    return kept


def test_the_04_files_run_end_to_end_exercise_what_every_04_file_does():
    from fnmatch import fnmatch

    runs = [r for r in _files("04_cnn_retraining") if r != "toy_corpus"]
    kept = covering_04_files()
    assert set().union(*map(_cnn_shape, kept)) == set().union(*map(_cnn_shape, runs))
    for pattern in [p for r in _files("05_frequency_analysis") for p in _05_reads(r)]:   # what 05's files read
        assert any(fnmatch(k, pattern) for k in kept), pattern
    assert "mimic3_50_all" in kept and len(kept) < len(runs)       # the point: fewer notebook runs than files


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


@pytest.mark.parametrize("run", [r for r in _files("01_preprocess") if not r.startswith("toy")])
def test_preprocess_files_run_on_the_toy_mimic_folder(outputs, run):
    toy = outputs / "fixtures" / "toy_mimic"
    done = _run(outputs, "01_preprocess", run, input_path=str(toy), splits_dir="null", verify_caml_splits="false")
    assert _metrics(done / run)["documents"] > 0


def test_every_cnn_model_file_then_every_frequency_file_runs(outputs):
    """Notebook 04's files that run its one-model and several-model paths in each label space (covering_04_files;
    the one-model path used to crash after training), then notebook 05's, which read notebook 04's run folders by name.
    toy_corpus.yaml is run once, with its own values, by test_toy_corpus_learns_with_the_defaults."""
    for run in covering_04_files():
        folder = _run(outputs, "04_cnn_retraining", run, **QUICK_04) / run
        m = _metrics(folder)
        assert any(k.endswith("/test/micro_f1@dev_threshold/mean") for k in m), run
        assert (folder / "tables" / "table_6.csv").exists(), run
    for run in _files("05_frequency_analysis"):
        folder = _run(outputs, "05_frequency_analysis", run, **QUICK_05) / run
        assert (folder / "metrics.json").exists(), run


def test_toy_corpus_learns_with_the_defaults(corpus_outputs):
    """The coded-notes table with string ids and ICD-10 codes, notebook 04 with its defaults (toy_corpus.yaml sets
    only models, seeds, epochs and patience): every model above the most-frequent floor on threshold-free metrics,
    with F1 at the dev-tuned threshold reported."""
    pre = _metrics(corpus_outputs / "01_preprocess" / "toy_corpus")
    assert pre["documents"] == 600 and pre["full/labels"] == 40 and pre["train_median_tokens"] < 50
    ids = (corpus_outputs / "01_preprocess" / "toy_corpus" / "document_ids.csv").read_text().splitlines()
    assert ids[0] == "hadm_id,id" and len(ids) == 601 and "-" in ids[1]
    folder = _run(corpus_outputs, "04_cnn_retraining", "toy_corpus") / "toy_corpus"
    assert (folder / "tables" / "table_6.csv").exists()
    m = _metrics(folder)
    for model in ("cnn", "caml", "multirescnn", "laat"):
        for metric in ("micro_auc", "macro_auc", "map"):
            assert m[f"{model}/above_floor/{metric}"] is True, (model, metric)
            assert m[f"{model}/test/{metric}/mean"] > m[f"most_frequent/test/{metric}/mean"] + 0.05, (model, metric)
        assert m[f"{model}/test/micro_f1@dev_threshold/mean"] > m["most_frequent/test/micro_f1@dev_threshold/mean"]
        assert 0 < m[f"{model}/fit/dev_threshold/seed13"] < 1
        assert m[f"{model}/fit/stop_reason/seed13"] != "no_improvement"
    _only_this_run(folder, "table_6")


def test_toy_corpus_through_notebook_02_with_the_defaults(corpus_outputs):
    """Notebook 02 on the same table (short reports that fit one segment, ICD-10, string ids): local encoders
    pretrained on its training reports, BERT-hier + LAN above the most-frequent floor at the dev-tuned threshold."""
    m = _metrics(_run(corpus_outputs, "02_pretraining_domains", "toy_corpus") / "toy_corpus")
    floor = m["most_frequent/test/micro_f1@dev_threshold/mean"]         # the floor at its own dev-tuned threshold
    rows = {k.split("/test/")[0] for k in m if k.endswith("/hier_lan/test/macro_auc/mean")}
    assert len(rows) == 2, rows                                        # in-domain and random init
    for row in rows:
        assert m[f"{row}/test/micro_f1@dev_threshold/mean"] > floor, row
        assert m[f"{row}/test/macro_auc/mean"] > 0.55, row             # threshold-free: better than chance
    _only_this_run(corpus_outputs / "02_pretraining_domains" / "toy_corpus", "table_2", "table_3")


def _only_this_run(folder: Path, *tables: str) -> None:
    """Another corpus: the saved tables hold this run's rows only, never the paper's MIMIC-III rows."""
    import pandas as pd
    for name in tables:
        assert set(pd.read_csv(folder / "tables" / f"{name}.csv")["source"]) <= {"this run", "not run"}, name
