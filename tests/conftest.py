"""Shared test fixtures: the real CAML split files (when a copy is at hand), header-only MIMIC-III folders and the
tiny study."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcanb.paths import ROOT

# A folder holding a copy of CAML's six split files and TOP_50_CODES.csv (docs/reference.md §Splits), named by
# the environment because the repository never ships them; the tests that need it skip without it.
CAML_SPLITS = Path(os.environ["MCANB_CAML_SPLITS"]) if os.environ.get("MCANB_CAML_SPLITS") else None


@pytest.fixture(autouse=True)
def _paired_answers_stay_out_of_outputs(monkeypatch, tmp_path_factory):
    """In-process tests keep the answers of their paired tests (mcanb.paired.STORE) in a folder of their worker, not in
    the outputs folder of the user's runs, where answers about temporary prediction files would pile up (a study
    launched as a subprocess has its own outputs folder through MCANB_OUTPUTS). Function-scoped on purpose: a
    session-scoped fixture every test uses would put every test in one xdist group (conftest.py at the root), on one
    worker."""
    from mcanb import paired
    monkeypatch.setattr(paired, "STORE", tmp_path_factory.getbasetemp() / "paired")


@pytest.fixture(scope="session")
def caml_splits_dir() -> Path:
    """The real CAML split files (skipped where no copy is present; set MCANB_CAML_SPLITS to a folder)."""
    if CAML_SPLITS is None:
        pytest.skip("MCANB_CAML_SPLITS is not set (a folder with CAML's split files)")
    if not (CAML_SPLITS / "train_full_hadm_ids.csv").exists():
        pytest.fail(f"MCANB_CAML_SPLITS={CAML_SPLITS} holds no train_full_hadm_ids.csv")
    return CAML_SPLITS


# ------------------------------------------------------ header-only MIMIC-III folders (tests/test_user_errors.py,
# tests/test_pipeline_paths.py, tests/test_readme_commands.py): what the pre-flight of notebook 01 reads of an input
# folder (each table's header, the names of the split files) and no notes, for the checks and dry runs.
def split_files(folder: Path, spaces: tuple[str, ...] = ("full", "50")) -> Path:
    """``folder`` with the train, dev and test split files of each label space in ``spaces``, one HADM_ID each."""
    from mcanb.splits import SPLITS, split_filename

    folder.mkdir(parents=True, exist_ok=True)
    for space in spaces:
        for split in SPLITS:
            (folder / split_filename(split, space)).write_text("1\n")
    return folder


def executed_package_files(call):
    """``(call(), the package's source files whose functions ran during it)``: what a code version must cover.

    A profile hook sees every Python function call, in this thread and in threads started meanwhile."""
    import sys
    import threading

    from mcanb.paths import PACKAGE_DIR

    seen: set[str] = set()

    def hook(frame, event, arg):
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        out = call()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    root = str(PACKAGE_DIR.resolve())
    return out, {Path(f).resolve() for f in seen if f.startswith(root) or str(Path(f).resolve()).startswith(root)}


def header_only_mimic(folder: Path, *, gz: bool = True, splits: tuple[str, ...] = (), **headers: str) -> Path:
    """A MIMIC-III-shaped ``folder`` whose tables hold their header row only: every table preprocessing reads
    (``mcanb.data.READ_COLUMNS``, the optional code descriptions included) as ``NAME.csv.gz``, as MIMIC-III ships
    them (``gz=False``: ``NAME.csv``). ``headers``: a table's header line in place of the real one, by table name;
    ``splits``: the label spaces whose split files go in ``<folder>/splits`` (:func:`split_files`; none by default)."""
    import gzip

    from mcanb.data import READ_COLUMNS

    unknown = sorted(set(headers) - set(READ_COLUMNS))
    if unknown:
        raise ValueError(f"header_only_mimic: unknown table(s) {unknown}; valid: {list(READ_COLUMNS)}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in READ_COLUMNS.items():
        header = (headers.get(name, ",".join(columns)) + "\n").encode()
        if gz:
            (folder / f"{name}.csv.gz").write_bytes(gzip.compress(header))
        else:
            (folder / f"{name}.csv").write_bytes(header)
    if splits:
        split_files(folder / "splits", splits)
    return folder


# ------------------------------------------------------------------------- a tiny study (tests/test_study.py,
# tests/test_browser.py): notebook 01 on the toy fixture and notebook 04 with two small models, run through the
# `mcanb` command in a separate outputs folder (MCANB_OUTPUTS), once per test session. With ``whole=True``, every
# numbered notebook at a few seconds' budget each (tests/test_reproducible.py runs it twice).
TINY_04 = {"models": ["cnn", "caml"], "baselines": ["tfidf_lr"], "max_length": 300, "num_filters": 8,
           "lr": 0.01, "batch_size": 16, "num_epochs": 2, "patience": None}
# Notebooks 02 and 03: two small local encoders, short notes, one epoch; 03 shares 02's settings, so it reuses
# 02's encoder and its BERT-hier + LAN run and trains only BERT-trun + FCN.
TINY_BERT = {"max_words": 192, "mlm_steps": 8, "mlm_hidden_size": 32, "mlm_layers": 1, "mlm_vocab_size": 800,
             "segment_length": 64, "max_segments": 3, "segment_ff": 64, "num_epochs": 1, "seeds": [13]}
TINY_02 = {**TINY_BERT, "encoders": ["in-domain", "random"], "more_data_pairs": []}
TINY_03 = {**TINY_BERT, "encoders": ["in-domain"], "architectures": ["trun_fcn", "hier_lan"]}
# Notebook 04 in the whole study: its defaults but two models, two epochs and 64 filters, where both learn (test
# macro-AUC > 0.55)
WHOLE_04 = {"models": ["cnn", "caml"], "baselines": [], "num_epochs": 2, "num_filters": 64}
TINY_05 = {"runs": ["tiny"], "n_resamples": 20}


def tiny_profile(path: Path, outputs: Path, *, with_01: bool = True, data_dir: Path | None = None,
                 whole: bool = False) -> Path:
    """Write a study profile: [01_preprocess toy,] 04_cnn_retraining tiny (run name ``tiny``); ``whole``: every
    numbered notebook, 01, 02, 03, 04 (WHOLE_04) and 05."""
    import yaml

    data = str(data_dir or outputs / "01_preprocess" / "toy")
    first = [{"notebook": "01_preprocess", "run": "toy"}] if with_01 else []
    reads = ["01_preprocess/toy"] if with_01 else []
    runs = list(first)
    if whole:
        runs += [{"notebook": "02_pretraining_domains", "run": "toy", "reads": reads,
                  "params": {**TINY_02, "data_dir": data, "run_name": "tiny"}},
                 {"notebook": "03_hierarchy", "run": "toy", "reads": [*reads, "02_pretraining_domains/tiny"],
                  "params": {**TINY_03, "data_dir": data, "run_name": "tiny"}}]
    runs.append({"notebook": "04_cnn_retraining", "run": "toy", "seeds": [13], "reads": reads,
                 "params": {**(WHOLE_04 if whole else TINY_04), "data_dir": data, "run_name": "tiny"}})
    if whole:
        runs.append({"notebook": "05_frequency_analysis", "run": "toy", "params": {**TINY_05, "run_name": "tiny"},
                     "reads": ["02_pretraining_domains/tiny", "03_hierarchy/tiny", "04_cnn_retraining/tiny"]})
    path.write_text(yaml.safe_dump({"description": "Test profile.", "runs": runs}, sort_keys=False))
    return path


def mcanb_cli(args: list[str], outputs: Path, *, threads: int = 1, **kw):
    """Run ``python -m mcanb.cli ARGS`` with ``MCANB_OUTPUTS=outputs`` and ``threads`` OpenMP/MKL threads; returns
    the CompletedProcess."""
    import subprocess
    import sys

    env = dict(os.environ, MCANB_OUTPUTS=str(outputs), PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "mcanb.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, **kw)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """``(outputs, profile, first_call, seconds)`` after one `mcanb study` call on the tiny profile."""
    import time

    outputs = tmp_path_factory.mktemp("study_outputs")
    profile = tiny_profile(outputs / "tiny_profile.yaml", outputs)
    t0 = time.perf_counter()
    first = mcanb_cli(["study", str(profile)], outputs, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    return outputs, profile, first, time.perf_counter() - t0
