"""Relative paths: command-line overrides follow the caller's directory; files and notebooks the repository root."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import header_only_mimic
from mcanb import params as P
from mcanb import paths, pipeline
from mcanb.paths import ROOT


def test_override_paths_are_taken_from_the_callers_directory(tmp_path):
    (tmp_path / "notes.csv").write_text("id,text,codes,split\n")
    (tmp_path / "splits").mkdir()
    out = pipeline.resolve_path_overrides({"input_path": "notes.csv", "splits_dir": "splits", "top_k": 20,
                                           "run_name": "x"}, cwd=tmp_path)
    assert out == {"input_path": str(tmp_path / "notes.csv"), "splits_dir": str(tmp_path / "splits"), "top_k": 20,
                   "run_name": "x"}


def test_encoder_folders_and_created_folders_on_the_command_line_follow_the_callers_directory(tmp_path):
    (tmp_path / "models" / "enc").mkdir(parents=True)
    names = ["./noconfig", "models/enc", "in-domain", "local:minilm", "owner/name", "bert-base-uncased", "~/enc"]
    out = pipeline.resolve_path_overrides({"encoders": names, "runs_dir": "store", "encoders_dir": "", "seeds": [1]},
                                          cwd=tmp_path)
    home = str((paths.Path.home() / "enc").resolve())
    assert out["encoders"] == [str(tmp_path / "noconfig"), str(tmp_path / "models" / "enc"), "in-domain",
                               "local:minilm", "owner/name", "bert-base-uncased", home]
    assert out["runs_dir"] == str(tmp_path / "store") and out["encoders_dir"] == "" and out["seeds"] == [1]


def test_override_words_and_absolute_paths_stay(tmp_path):
    same = {"splits_dir": "caml", "input_path": "", "data_dir": str(tmp_path)}
    assert pipeline.resolve_path_overrides(same, cwd="/nonexistent") == same


def test_missing_override_path_is_an_error_naming_parameter_and_directory(tmp_path):
    with pytest.raises(P.ParameterError, match=r"-p input_path data/notes.csv: .*data/notes.csv does not exist "
                                               r"\(relative paths on the command line are taken from your working "
                                               rf"directory, {tmp_path}\)"):
        pipeline.resolve_path_overrides({"input_path": "data/notes.csv"}, cwd=tmp_path)


def test_toy_default_may_be_named_before_it_is_built():
    """Notebook 04 builds outputs/01_preprocess/toy on demand, so naming it from the repo root is fine."""
    named = f"{paths.OUTPUTS.name}/01_preprocess/toy"
    out = pipeline.resolve_path_overrides({"data_dir": named}, cwd=paths.OUTPUTS.parent)
    assert out["data_dir"] == str(paths.TOY_PREPROCESSED.resolve())


def test_files_resolve_from_the_repository_root_and_outputs_follow_mcanb_outputs():
    assert paths.resolve("parameters/x.yaml") == ROOT / "parameters" / "x.yaml"
    assert paths.resolve("outputs/01_preprocess/toy") == paths.OUTPUTS / "01_preprocess" / "toy"
    assert paths.resolve("/abs/p") == paths.Path("/abs/p")


def test_command_line_from_another_directory(tmp_path):
    """``python run.py run 01_preprocess toy -p input_path <relative>`` from the user's directory, as a dry run."""
    header_only_mimic(tmp_path / "mimic", splits=("full",))   # the dry run's pre-flight reads the tables' headers
    env = dict(os.environ, MCANB_SETUP="skip", MCANB_PYTHON=sys.executable, MCANB_OUTPUTS=str(tmp_path / "out"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(ROOT / "run.py"), "run", "01_preprocess", "toy", "--dry-run", "-p", "input_path"]
    ok = subprocess.run([*cmd, "mimic"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"input_path: {tmp_path / 'mimic'}" in ok.stdout
    bad = subprocess.run([*cmd, "elsewhere"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and f"{tmp_path / 'elsewhere'} does not exist" in bad.stderr
    assert not (tmp_path / "out").exists(), "a dry run creates nothing"


def test_a_notebook_run_outside_mcanb_drops_the_folders_run_record(tmp_path, monkeypatch):
    """A notebook executed in JupyterLab, by papermill or by the notebook tests overwrites a folder that `mcanb study`
    may have recorded: its record would then vouch for results it did not describe, so notebook.setup removes it (the
    report says "no run record"). Under `mcanb run`/`study` ($MCANB_PARAMETER_FILE set) the record stays."""
    from mcanb import notebook, paths, study

    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    folder = tmp_path / "04_cnn_retraining" / "toy"
    folder.mkdir(parents=True)
    record = folder / study.RECORD
    record.write_text(json.dumps({"status": "done", "fingerprint": "abc"}))
    monkeypatch.setenv(paths.PARAMETER_FILE_ENV, "parameters/04_cnn_retraining/toy.yaml")
    assert notebook.setup("04_cnn_retraining", {"run_name": "toy", "seed": 13}) == folder
    assert record.exists()                                      # mcanb's own execution: its record is kept
    monkeypatch.delenv(paths.PARAMETER_FILE_ENV)
    notebook.setup("04_cnn_retraining", {"run_name": "toy", "seed": 13})
    assert not record.exists() and (folder / "params.yaml").exists()
    assert study.read_record(folder) is None


def test_a_relative_outputs_variable_names_the_callers_folder_for_the_kernels_too(tmp_path):
    """``MCANB_OUTPUTS=relout mcanb ...`` from another folder: the outputs go to <that folder>/relout, and the
    variable the notebook kernels inherit says the same absolute folder (a kernel starts elsewhere)."""
    env = dict(os.environ, MCANB_OUTPUTS="relout", PYTHONPATH=str(ROOT))
    said = subprocess.run([sys.executable, "-c", "import os; from mcanb import paths; "
                           "print(paths.OUTPUTS); print(os.environ['MCANB_OUTPUTS'])"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert said == [str(tmp_path / "relout")] * 2


def test_a_path_inside_the_outputs_folder_is_recorded_so_a_moved_folder_still_finds_it(monkeypatch, tmp_path):
    """Training runs record their data folder and encoder as paths.portable writes them: `mcanb predict` on a moved
    or copied outputs folder reads that folder's own files, not the original's."""
    inside = paths.OUTPUTS / "01_preprocess" / "toy"
    assert paths.portable(inside) == "outputs/01_preprocess/toy"
    moved = tmp_path / "moved"
    monkeypatch.setattr(paths, "OUTPUTS", moved)                         # $MCANB_OUTPUTS elsewhere later
    assert paths.resolve("outputs/01_preprocess/toy") == moved / "01_preprocess" / "toy"
    for kept in ("emilyalsentzer/Bio_ClinicalBERT", "local:minilm", str(tmp_path / "my_encoder")):
        assert paths.portable(kept) == kept                             # a hub id, a name, a folder elsewhere
    copy = tmp_path / "copy"                                             # a model in a copied outputs folder reads
    run = copy / "runs" / "caml" / "0123abcd" / "seed13"                # the copy's data, whatever $MCANB_OUTPUTS says
    (copy / "01_preprocess" / "toy").mkdir(parents=True)
    run.mkdir(parents=True)
    assert paths.resolve_near("outputs/01_preprocess/toy", run) == copy / "01_preprocess" / "toy"
    assert paths.resolve_near("outputs/01_preprocess/other", run) == moved / "01_preprocess" / "other"
