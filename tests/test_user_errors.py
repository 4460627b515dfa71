"""Every user mistake gets one clear message, before any work is done; nothing is silently wrong.

Each case runs the `mcanb` command as a user does (``python -m mcanb.cli``, a separate ``MCANB_OUTPUTS``) and checks:
a non-zero exit, no Python traceback, a message naming the file/key/field and what was expected, and that nothing
was trained or written outside the run's own folder. README section "Troubleshooting" lists the messages.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tiny_profile


def cli(args, outputs: Path, *, stdin: bytes | None = None, cwd: Path = ROOT, env: dict | None = None,
        timeout: int = 300) -> tuple[int, str]:
    """``(exit code, stdout + stderr)`` of ``python -m mcanb.cli ARGS``."""
    e = dict(os.environ, MCANB_OUTPUTS=str(outputs), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
             PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", **(env or {}))          # tests never touch the network
    p = subprocess.run([sys.executable, "-m", "mcanb.cli", *args], cwd=cwd, env=e, input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def user_error(code: int, out: str, *expected: str) -> None:
    """A user error: non-zero exit, no traceback, every expected piece of text in the message."""
    assert code != 0, out
    assert "Traceback" not in out, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"


def fake_preprocessed(d: Path) -> Path:
    """The files of a notebook-01 output folder that ``mcanb predict`` and ``mcanb.processed.load`` open first."""
    (d / "50").mkdir(parents=True)
    (d / "report.json").write_text("{}")
    (d / "vocab.csv").write_text("chest\npain\nfever\n")
    (d / "50" / "labels.csv").write_text("code,description\n401.9,hypertension\n428.0,heart failure\n")
    return d


# ------------------------------------------------------------------------------------------ checked too late
def test_misspelled_model_is_refused_before_anything_is_written_and_dry_run_says_the_same(tmp_path):
    out_dir = tmp_path / "outputs"
    args = ["run", "04_cnn_retraining", "toy", "-p", "models", "[cnn, cmal]"]
    code, out = cli(args, out_dir)
    user_error(code, out, "models: unknown 'cmal'", "did you mean caml?", "valid: cnn, caml")
    assert not out_dir.exists()                                       # nothing trained, nothing created
    dry_code, dry = cli([*args, "--dry-run"], out_dir)
    user_error(dry_code, dry, "models: unknown 'cmal'")
    assert not out_dir.exists()
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "models", "[cnn, caml"], out_dir)
    user_error(code, out, "-p models '[cnn, caml'", "not valid YAML")


def test_label_space_as_a_number_is_accepted_and_a_wrong_one_lists_the_valid_ones(tmp_path):
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "label_space", "50", "--dry-run"], tmp_path / "o")
    assert code == 0 and "label_space: '50'" in out, out
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "label_space", "500", "-p", "seeds", "[]", "--dry-run"],
                    tmp_path / "o")
    user_error(code, out, "label_space: expected one of 'full', '50', got '500'",
               "seeds: expected a non-empty list of whole numbers")             # every problem at once


def test_unset_environment_variable_is_reported_by_study_and_its_dry_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MIMIC3_DIR"}
    for extra in (["--dry-run"], ["--no-report"]):
        p = subprocess.run([sys.executable, "-m", "mcanb.cli", "study", "mimic3-50", *extra], cwd=ROOT,
                           env={**env, "MCANB_OUTPUTS": str(tmp_path / "o"), "PYTHONPATH": str(ROOT),
                                "HF_HUB_OFFLINE": "1"},
                           capture_output=True, text=True, timeout=300)
        user_error(p.returncode, p.stdout + p.stderr, "parameters/01_preprocess/mimic3_caml.yaml",
                   "input_path: '$MIMIC3_DIR' uses the environment variable $MIMIC3_DIR, which is not set",
                   "export MIMIC3_DIR=")
        assert not (tmp_path / "o").exists()


def test_missing_input_path_in_a_profile_is_reported_before_the_first_run(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"runs": [
        {"notebook": "01_preprocess", "run": "toy", "params": {"input_path": str(tmp_path / "nowhere")}},
        {"notebook": "04_cnn_retraining", "run": "toy", "params": {"models": ["cnn", "lat"]}}]}))
    code, out = cli(["study", str(profile), "--dry-run"], tmp_path / "o")
    user_error(code, out, "2 problem(s)", f"input_path: {tmp_path / 'nowhere'} does not exist",
               "expected a MIMIC-III folder", "models: unknown 'lat' (did you mean laat?)")
    code, again = cli(["study", str(profile), "--no-report"], tmp_path / "o")
    user_error(code, again, "2 problem(s)")
    assert files(tmp_path / "o") == set()


def test_input_files_and_columns_are_checked_before_preprocessing(tmp_path):
    table = tmp_path / "in" / "notes.csv"
    table.parent.mkdir()
    table.write_text("id,txt,codes,split\n1,chest pain,401.9,train\n")
    code, out = cli(["run", "01_preprocess", "toy", "-p", "input_format", "table", "-p", "input_path", str(table)],
                    tmp_path / "o")
    user_error(code, out, f"input_path: {table}: missing column(s) ['text']", "expected ['id', 'text', 'codes', 'split']")
    assert not (tmp_path / "o").exists()


def test_unusable_encoders_are_all_refused_before_preprocessing(tmp_path):
    lost = tmp_path / "my_encoder"                   # a local folder that lost config.json: no hub advice for it
    lost.mkdir()
    (lost / "vocab.txt").write_text("[PAD]\n")
    names = ["in-domain", "./no/such/encoder", "local:bert", str(lost), "someone/not-cached-bert"]
    code, out = cli(["run", "02_pretraining_domains", "toy", "-p", "encoders", json.dumps(names)], tmp_path / "o")
    user_error(code, out, "encoders:", "no/such/encoder does not exist", "unknown local encoder 'local:bert'",
               f"encoder directory {lost} holds no config.json", "hub id(s) 'someone/not-cached-bert' not in the "
               "local Hugging Face cache, and HF_HUB_OFFLINE is set", "hf download ID")
    assert out.count("hf download") == 1                                     # only for the hub id
    assert not (tmp_path / "o").exists()


def test_data_dir_of_another_notebook_gets_the_right_advice(tmp_path):
    other = tmp_path / "o" / "04_cnn_retraining" / "old"
    other.mkdir(parents=True)
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "data_dir", str(other), "--dry-run"], tmp_path / "o")
    user_error(code, out, "is an output folder of notebook 04_cnn_retraining, not of 01_preprocess",
               "mcanb run 01_preprocess")
    assert "run_name pointing here" not in out


# ------------------------------------------------------------------------------------------------ bare crashes
def test_profile_with_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    profile = tmp_path / "broken.yaml"
    profile.write_text("runs:\n  - notebook: 01_preprocess\n    run: [toy\n")
    code, out = cli(["study", str(profile), "--dry-run"], tmp_path / "o")
    user_error(code, out, f"{profile}, line 4", "not valid YAML")
    assert "<unicode string>" not in out
    code, debug = cli(["study", str(profile), "--dry-run", "--debug"], tmp_path / "o")   # --debug: the traceback too
    assert code != 0 and "Traceback" in debug and "StudyError" in debug


def test_outputs_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    outputs = blocker / "outputs"               # tests run as root: a path under a file is what cannot be written
    for args in (["study", "toy", "--dry-run"], ["report", "toy"]):
        code, out = cli(args, outputs)
        user_error(code, out, str(outputs), f"{blocker} is a file, not a folder")


def test_damaged_run_record_is_reported_and_its_folder_left_alone(tmp_path):
    outputs = tmp_path / "o"
    profile = tiny_profile(tmp_path / "p.yaml", outputs, with_01=False)
    run_dir = outputs / "04_cnn_retraining" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / ".mcanb-run.json").write_text('{"fingerprint": "ab')           # truncated
    (run_dir / "keep.txt").write_text("a result the user wants to keep\n")
    before = files(outputs)
    for extra in (["--dry-run"], ["--no-report"]):
        code, out = cli(["study", str(profile), *extra], outputs)
        user_error(code, out, "damaged run record", str(run_dir / ".mcanb-run.json"), "rm -r")
        assert "never ran" not in out
        assert files(outputs) == before                                       # nothing emptied, nothing trained
    code, out = cli(["report", str(profile)], outputs)                        # the report says so, in its table
    assert code == 0, out


def test_truncated_metrics_json_is_named_by_report(tmp_path):
    outputs = tmp_path / "o"
    profile = tiny_profile(tmp_path / "p.yaml", outputs, with_01=False)
    run_dir = outputs / "04_cnn_retraining" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / ".mcanb-run.json").write_text(json.dumps({"fingerprint": "0123", "status": "done"}))
    (run_dir / "metrics.json").write_text('{"metrics": {"cnn/test/micro_f1/mean": 0.')
    code, out = cli(["report", str(profile)], outputs)
    user_error(code, out, f"{run_dir / 'metrics.json'}: damaged metrics file")


# ------------------------------------------------------------------------------------------------ mcanb predict
def test_predict_refuses_a_negative_top(tmp_path):
    code, out = cli(["predict", "--model", str(tmp_path), "--text", "-", "--top", "-3"], tmp_path, stdin=b"chest pain")
    user_error(code, out, "--top", "expected a whole number >= 1, got '-3'")


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_predict_reads_non_utf8_input_the_same_way_in_every_locale(tmp_path, locale):
    note = tmp_path / "note.txt"
    note.write_bytes("caf\u00e9 chest pain".encode("latin-1"))
    env = {"LC_ALL": locale, "LANG": locale, "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    code, out = cli(["predict", "--model", str(tmp_path), "--text", "-"], tmp_path, stdin=note.read_bytes(), env=env)
    user_error(code, out, "--text -: standard input is not UTF-8 text", "offset 3", "iconv")
    if locale == "C":
        code, out = cli(["predict", "--model", str(tmp_path), "--text", str(note)], tmp_path, env=env)
        user_error(code, out, f"--text {note}: {note} is not UTF-8 text", "iconv")


def test_predict_model_is_taken_from_the_callers_directory(tmp_path):
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    code, out = cli(["predict", "--model", "runs/mine", "--text", "-"], tmp_path / "o", stdin=b"chest pain",
                    cwd=tmp_path)
    user_error(code, out, f"{run}/params.yaml: missing")                     # found there, then explained
    code, out = cli(["predict", "--model", "runs/other", "--text", "-"], tmp_path / "o", stdin=b"x", cwd=tmp_path)
    user_error(code, out, f"{tmp_path / 'runs' / 'other'} is not a folder", "working directory")


def test_predict_with_a_corrupted_checkpoint(tmp_path):
    data = fake_preprocessed(tmp_path / "o" / "01_preprocess" / "toy")
    run = tmp_path / "cnn" / "seed13"
    (run / "checkpoints").mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump({"model": "cnn", "data_dir": str(data), "label_space": "50",
                                                     "model_overrides": {"num_filters": 8}}))
    (run / "checkpoints" / "best.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    code, out = cli(["predict", "--model", str(run), "--text", "-"], tmp_path / "o", stdin=b"chest pain and fever")
    user_error(code, out, f"{run / 'checkpoints' / 'best.pt'}: cannot read checkpoint", "delete it")


# ----------------------------------------------------------------------------- user errors inside notebook cells
@pytest.mark.slow
def test_table_without_dev_rows_is_one_short_message_from_the_notebook(tmp_path):
    table = tmp_path / "in" / "notes.csv"
    table.parent.mkdir()
    rows = ["id,text,codes,split"] + [f"{i},patient with chest pain and fever,401.9;428.0,{'train' if i < 25 else 'test'}"
                                      for i in range(1, 31)]
    table.write_text("\n".join(rows) + "\n")
    outputs = tmp_path / "o"
    args = ["run", "01_preprocess", "toy", "-p", "run_name", "tbl", "-p", "input_format", "table",
            "-p", "input_path", str(table)]
    code, out = cli(args, outputs)
    executed = outputs / "01_preprocess" / "tbl" / "01_preprocess.ipynb"
    user_error(code, out, f"{table}, field split: no dev rows", "'dev': 0", "in notebook 01_preprocess, cell",
               "(step: ", f"executed notebook {executed}", "--debug")
    assert len([line for line in out.splitlines() if "Executing" not in line]) < 8, out
    assert {p.relative_to(outputs).parts[:2] for p in files(outputs)} == {("01_preprocess", "tbl")}
    assert "Traceback" in executed.read_text()                                 # the full story stays there


@pytest.mark.slow
def test_corrupted_preprocessing_output_is_named_with_the_command_that_rebuilds_it(tmp_path):
    outputs = tmp_path / "o"
    data = fake_preprocessed(outputs / "01_preprocess" / "damaged")
    (data / "50" / "train.parquet").write_bytes(b"PAR1 truncated")
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "run_name", "dmg", "-p", "data_dir", str(data)], outputs)
    user_error(code, out, "train.parquet: preprocessing output of", "cannot be read", f"rm -r {data}",
               "mcanb run 01_preprocess", "in notebook 04_cnn_retraining")
    assert not list((outputs / "04_cnn_retraining" / "dmg").glob("*/seed*"))  # nothing trained


def test_unexpected_cell_errors_keep_their_traceback():
    from papermill.exceptions import PapermillExecutionError

    from mcanb.cli import user_message

    bug = PapermillExecutionError(3, 2, "1/0", "ZeroDivisionError", "division by zero", ["Traceback ..."])
    assert user_message(bug) is None                                          # printed in full by main()
    ours = PapermillExecutionError(3, 2, "x", "DataError", "notes.csv, row 2, field id: expected an integer", [])
    assert user_message(ours).startswith("notes.csv, row 2, field id: expected an integer")


def test_every_shipped_parameter_file_passes_the_value_checks(monkeypatch):
    """The validators are not stricter than the project's own parameter files (paths aside: no data here)."""
    from mcanb import preflight
    from mcanb.paths import PARAMETERS
    from mcanb.pipeline import numbered_notebooks, parameter_files, resolve_parameters

    monkeypatch.setenv("MIMIC3_DIR", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                                # the paper's encoders are hub ids
    checked = 0
    for nb in numbered_notebooks():
        for run in parameter_files(nb)[0]:                               # base files are not runs
            f = PARAMETERS / nb / f"{run}.yaml"
            found = [p for p in preflight.problems(nb, resolve_parameters(nb, run))
                     if not p.startswith(("data_dir:", "input_path:", "the outputs folder"))
                     and "not in the local Hugging Face cache" not in p]
            assert found == [], f"{f}: {found}"
            checked += 1
    assert checked >= 20


def test_your_corpus_profile_names_the_unset_variable_then_plans_the_three_runs(tmp_path):
    """`MCANB_CORPUS=<table> mcanb study corpus` (README "Your own coded notes"): without the variable, one message
    naming it; with it, a table anywhere on disk is planned through notebooks 01, 04 and 02 under the run name
    ``corpus``, nothing written by the dry run."""
    from mcanb.fixture import corpus

    out_dir = tmp_path / "outputs"
    env = {k: v for k, v in os.environ.items() if k != "MCANB_CORPUS"}
    e = dict(env, MCANB_OUTPUTS=str(out_dir), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "mcanb.cli", "study", "corpus", "--dry-run"], cwd=ROOT, env=e,
                       capture_output=True, text=True, timeout=300)
    user_error(p.returncode, p.stdout + p.stderr, "$MCANB_CORPUS", "not set")
    table = corpus.ensure(tmp_path / "elsewhere" / "notes")             # a table outside the repository
    code, out = cli(["study", "corpus", "--dry-run"], out_dir, env={"MCANB_CORPUS": str(table)})
    assert code == 0, out
    for key in ("01_preprocess/corpus", "04_cnn_retraining/corpus", "02_pretraining_domains/corpus"):
        assert key in out, out
    assert not out_dir.exists() or not any(out_dir.rglob("*.parquet"))
