"""Every user mistake gets one clear message, before any work is done; nothing is silently wrong.

Each case runs the `mcanb` command as a user does (``python -m mcanb.cli``, a separate ``MCANB_OUTPUTS``) and checks:
a non-zero exit, no Python traceback, a message naming the file/key/field and what was expected, and that nothing
was trained or written outside the run's own folder. README section "Troubleshooting" lists the messages.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, header_only_mimic, split_files, tiny_profile


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
    cut = tmp_path / "cut_download"                  # config and weights, no tokenizer
    cut.mkdir()
    (cut / "config.json").write_text("{}")
    (cut / "model.safetensors").write_bytes(b"")
    names = ["in-domain", "./no/such/encoder", "local:bert", str(lost), "someone/not-cached-bert", str(cut)]
    code, out = cli(["run", "02_pretraining_domains", "toy", "-p", "encoders", json.dumps(names)], tmp_path / "o")
    user_error(code, out, "encoders:", "no/such/encoder does not exist", "unknown local encoder 'local:bert'",
               f"encoder directory {lost} holds no config.json and no weights",
               f"encoder directory {cut} holds no tokenizer files (tokenizer.json or vocab.txt)", "hub id(s) 'someone/not-cached-bert' not in the "
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
    user_error(code, out, f"{run / 'checkpoints' / 'best.pt'}: cannot read checkpoint", "retrain it", f"rm -r {run}")
    assert "weights_only" not in out


def _model_folder(tmp_path, **params):
    """A trained model's folder as ``mcanb predict`` reads it, without its weights."""
    data = fake_preprocessed(tmp_path / "o" / "01_preprocess" / "toy")
    run = tmp_path / "o" / "runs" / "cnn" / "0123abcd" / "seed13"
    (run / "checkpoints").mkdir(parents=True)
    (run / "params.yaml").write_text(yaml.safe_dump({"model": "cnn", "data_dir": str(data), "label_space": "50",
                                                     "model_overrides": {"num_filters": 8}, **params}))
    return run, data


def test_predict_names_an_unknown_model_and_the_valid_ones(tmp_path):
    from mcanb.errors import UserError
    from mcanb.predict import load_predictor

    run, _ = _model_folder(tmp_path, model="cnnn")
    with pytest.raises(UserError, match=rf"{run / 'params.yaml'}: model: unknown 'cnnn' \(did you mean cnn\?\); "
                                        r"expected one of cnn, caml, dr_caml"):
        load_predictor(run)


def test_predict_with_a_damaged_checkpoint_says_how_to_retrain_it(tmp_path):
    import datetime

    import torch

    from mcanb.checkpoint import CheckpointError
    from mcanb.predict import load_predictor

    run, _ = _model_folder(tmp_path)
    best = run / "checkpoints" / "best.pt"
    # (a truncated file: test_predict_with_a_corrupted_checkpoint); torch's own message here would advise
    # weights_only=False, which is never passed on
    torch.save({"format_version": 1, "kind": "best", "model": datetime.date(2020, 1, 1)}, best)
    (run / "progress.json").write_text(json.dumps({"caller": "04_cnn_retraining/toy"}))
    with pytest.raises(CheckpointError) as e:
        load_predictor(run)
    msg = str(e.value)
    assert msg.startswith(f"{best}: cannot read checkpoint: the file is damaged (truncated or corrupt) or was not "
                          "written by this version of mcanb"), msg
    assert f"retrain it: `rm -r {run}`, then `mcanb run 04_cnn_retraining toy`" in msg
    assert "weights_only" not in msg and "delete it" not in msg


def test_predict_on_notebook_01s_folder_says_it_is_not_a_model(tmp_path):
    from mcanb.errors import UserError
    from mcanb.predict import load_predictor

    data = fake_preprocessed(tmp_path / "01_preprocess" / "mine")
    (data / "params.yaml").write_text(yaml.safe_dump({"run_name": "mine", "input_format": "table", "top_k": 50}))
    with pytest.raises(UserError) as e:
        load_predictor(data)
    msg = str(e.value)
    assert msg.startswith(f"{data} is the output of notebook 01_preprocess (the preprocessed notes), not a trained "
                          "model's folder, which holds params.yaml (naming model, data_dir and label_space) and "
                          "checkpoints/best.pt"), msg
    assert "extra_params" not in msg and "mcanb.train" not in msg


def test_predict_through_a_notebook_run_that_has_not_run_names_the_command(tmp_path, monkeypatch):
    from mcanb import runs

    outputs = tmp_path / "o"
    monkeypatch.setattr(runs, "OUTPUTS", outputs)
    monkeypatch.setattr(runs, "RUNS", outputs / "runs")
    wanted = outputs / "04_cnn_retraining" / "toy" / "caml" / "seed13"
    msg = runs.missing_model(str(wanted), wanted, "/home/me")
    assert msg == (f"--model {wanted}: the notebook run 04_cnn_retraining/toy has not been run yet (no folder "
                   f"{outputs / '04_cnn_retraining' / 'toy'}); run it first with `mcanb run 04_cnn_retraining toy`, "
                   "then call again")
    folder = wanted.parent.parent
    folder.mkdir(parents=True)
    assert "has not finished (no metrics.json" in runs.missing_model(str(wanted), wanted, "/home/me")
    (folder / "metrics.json").write_text("{}")
    store = outputs / "runs" / "cnn" / "0123abcd" / "seed13"
    (folder / "training_runs.json").write_text(json.dumps([str(store)]))
    msg = runs.missing_model(str(wanted), wanted, "/home/me")
    assert msg.endswith(f"trained no model caml/seed13; its trained models: {folder / 'cnn' / 'seed13'}"), msg
    assert "mine_never_ran" in runs.missing_model("x", outputs / "04_cnn_retraining" / "mine_never_ran" / "a" / "s1",
                                                  "/")      # a run without a parameter file of its name
    elsewhere = runs.missing_model("models/x", tmp_path / "models" / "x", tmp_path)
    assert f"{tmp_path / 'models' / 'x'} is not a folder (relative paths are taken from your working" in elsewhere
    assert "outputs/<notebook>/<run>/<row>/seed<k>" in elsewhere and "04_cnn_retraining" not in elsewhere


def test_near_miss_of_a_local_encoder_is_refused_even_when_the_hub_answers(monkeypatch):
    from mcanb import preflight, preflight_inputs

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(preflight_inputs, "_hub_reachable", lambda: None)    # as if the hub answered
    asked = []
    monkeypatch.setattr(preflight_inputs, "_on_hub", lambda name: asked.append(name) or True)        # no network
    msg = preflight.encoders(["in-domain", "in-domian", "Generall", "someone/in-domian", "bert-base-uncased"], None)
    assert msg == ("unknown encoder 'in-domian' (did you mean in-domain?); expected a local stand-in (general, "
                   "in-domain, in-domain-less, random, minilm, local:minilm), a folder, or a hub id of the form "
                   "owner/name; unknown encoder 'Generall' (did you mean general?); expected a local stand-in "
                   "(general, in-domain, in-domain-less, random, minilm, local:minilm), a folder, or a hub id of the "
                   "form owner/name")                                        # owner/name and plain hub ids pass
    assert asked == ["someone/in-domian", "bert-base-uncased"]               # only what is neither local nor cached
    # a reachable hub that has no such repository: said before any work, not at the first encoder load
    monkeypatch.setattr(preflight_inputs, "_on_hub", lambda name: name != "emilyalsentzer/Bio_ClinicalBRET")
    assert preflight.encoders(["emilyalsentzer/Bio_ClinicalBRET", "bert-base-uncased"], None) == (
        "hub id(s) 'emilyalsentzer/Bio_ClinicalBRET': no such model on the Hugging Face hub (check the spelling against "
        "the model card; a private one needs `hf auth login`)")
    monkeypatch.setattr(preflight_inputs, "_on_hub", lambda name: 1 / 0)               # a hub that does not answer
    assert preflight.encoders(["emilyalsentzer/Bio_ClinicalBRET"], None) is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = preflight.encoders(["in-domian"], None)
    assert "did you mean in-domain?" in offline and "hub id(s)" not in offline


def test_the_hubs_answer_about_a_repository_is_read_as_its_errors_mean(monkeypatch):
    """_on_hub asks the hub once per id (no network here: HfApi is a stand-in raising what the hub's client raises):
    a repository that does not exist is absent; a gated one exists."""
    import httpx2 as httpx               # huggingface_hub's own HTTP client
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from mcanb import preflight_inputs
    request = httpx.Request("GET", "https://huggingface.co/api/models/x")
    raised = {"typo/model": RepositoryNotFoundError("404", response=httpx.Response(404, request=request)),
              "gated/model": GatedRepoError("401", response=httpx.Response(401, request=request))}

    class Api:
        def model_info(self, name, timeout=None):
            assert timeout == 5
            if name in raised:
                raise raised[name]

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    assert [preflight_inputs._on_hub(n) for n in ("typo/model", "gated/model", "real/model")] == [False, True, True]


def test_table_without_dev_rows_is_one_short_message_before_any_work(tmp_path):
    table = tmp_path / "in" / "notes.csv"
    table.parent.mkdir()
    rows = ["id,text,codes,split"] + [f"{i},patient with chest pain and fever,401.9;428.0,{'train' if i < 25 else 'test'}"
                                      for i in range(1, 31)]
    table.write_text("\n".join(rows) + "\n")
    outputs = tmp_path / "o"
    args = ["run", "01_preprocess", "toy", "-p", "run_name", "tbl", "-p", "input_format", "table",
            "-p", "input_path", str(table)]
    code, out = cli(args, outputs)
    user_error(code, out, f"input_path: {table}, field split: no dev rows", "'dev': 0")
    assert "in notebook" not in out and len(out.splitlines()) < 6, out
    assert not files(outputs)                                                   # checked before anything ran


# ----------------------------------------------------------------------------- user errors inside notebook cells
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


def test_every_shipped_parameter_file_passes_the_value_checks(monkeypatch, tmp_path):
    """The validators are not stricter than the project's own parameter files (paths aside: no data here)."""
    from mcanb import preflight, splits
    from mcanb.paths import PARAMETERS
    from mcanb.pipeline import numbered_notebooks, parameter_files, resolve_parameters

    monkeypatch.setenv("MIMIC3_DIR", str(ROOT))
    monkeypatch.setenv("MCANB_CACHE", str(tmp_path))                         # CAML's split files, as if fetched
    split_files(splits.cache_dir())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                                # the paper's encoders are hub ids
    checked = 0
    for nb in numbered_notebooks():
        for run in parameter_files(nb)[0]:                               # base files are not runs
            f = PARAMETERS / nb / f"{run}.yaml"
            found = [p for p in preflight.problems(nb, resolve_parameters(nb, run))
                     if not p.startswith(("data_dir:", "input_path:", "runs:", "the outputs folder"))
                     and "not in the local Hugging Face cache" not in p
                     and not p.startswith("amp: 'bf16' needs a CUDA GPU")]      # the MIMIC-III files are for GPUs
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


# ------------------------------------------------------------- checked before any work (values, keys, files)
def _found(notebook: str, values: dict, produced=()) -> str:
    from mcanb import preflight
    return "\n".join(preflight.problems(notebook, values, produced))


@pytest.mark.parametrize("notebook", ["02_pretraining_domains", "03_hierarchy", "04_cnn_retraining"])
def test_misspelt_stopping_metric_is_refused_with_the_name_training_accepts(notebook):
    for typo, meant in (("micro-f1", "micro_f1"), ("macro-auc", "macro_auc"), ("MAP", "map")):
        found = _found(notebook, {"early_stopping_metric": typo})
        assert f"early_stopping_metric: unknown dev metric {typo!r} (did you mean {meant}?)" in found, found
        assert "valid: loss, " in found and "p@5" in found
    for ok in ("micro_f1", "loss", "map", None):
        assert "early_stopping_metric" not in _found(notebook, {"early_stopping_metric": ok})
    assert "early_stopping_metric" not in _found(notebook, {"early_stopping_metric": "p@8", "label_space": "full"})
    assert "unknown dev metric 'p@8' (did you mean p@5?)" in _found(notebook, {"early_stopping_metric": "p@8"})


def test_misspelt_stopping_metric_fails_the_dry_run(tmp_path):
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "early_stopping_metric", "micro-f1", "--dry-run"],
                    tmp_path / "o")
    user_error(code, out, "early_stopping_metric: unknown dev metric 'micro-f1' (did you mean micro_f1?)")
    assert not (tmp_path / "o").exists()


def test_mapping_keys_must_name_a_model_head_or_encoder():
    found = _found("04_cnn_retraining", {"lr": {"cnnn": 0.1, "caml": 0.001}})
    assert "lr: unknown key 'cnnn' (did you mean cnn?); valid: cnn, caml, dr_caml, multirescnn, laat" in found
    assert _found("04_cnn_retraining", {"lr": {"cnn": 0.003, "multirescnn": 0.0001}}) == ""
    for nb in ("02_pretraining_domains", "03_hierarchy"):
        found = _found(nb, {"head_lrs": {"lann": 0.05}, "segment_lrs": {"hier-fcn": 0.1, "default": 0.01},
                            "output_bias": {"fnc": "prior"}, "encoder_lrs": {"randon": 0.005}})
        for line in ("head_lrs: unknown key 'lann' (did you mean lan?); valid: trun_fcn, trun_lan, hier_fcn, "
                     "hier_lan, fcn, lan, default", "segment_lrs: unknown key 'hier-fcn' (did you mean hier_fcn?)",
                     "output_bias: unknown key 'fnc' (did you mean fcn?)",
                     "encoder_lrs: unknown key 'randon' (did you mean random?); valid: a name in encoders"):
            assert line in found, found
        fine = {"head_lrs": {"fcn": 0.03, "hier_lan": 0.01, "default": 0.02}, "output_bias": {"lan": "prior"},
                "segment_lrs": {}, "encoder_lrs": {"in-domain": 0.001, "random": 0.005}}
        assert _found(nb, fine) == ""


def test_empty_and_repeated_lists_are_refused():
    found = _found("04_cnn_retraining", {"models": []})
    assert "models: expected at least one of cnn, caml" in found, found
    found = _found("04_cnn_retraining", {"models": ["cnn", "caml", "cnn"], "seeds": [13, 14, 13],
                                         "baselines": ["tfidf_lr", "tfidf_lr"]})
    for key, item in (("models", "'cnn'"), ("seeds", "13"), ("baselines", "'tfidf_lr'")):
        assert f"{key}: {item} given more than once; list each once" in found, found
    found = _found("03_hierarchy", {"architectures": ["hier_lan", "hier_lan"], "encoders": ["random", "random"]})
    assert "architectures: 'hier_lan' given more than once" in found and "encoders: 'random' given more" in found
    assert "baselines" not in _found("04_cnn_retraining", {"baselines": []})            # [] for none stays allowed


def test_a_repeated_filter_size_is_refused_before_anything_is_written(tmp_path):
    # Each size is one MultiResCNN channel (Li & Yu: 3, 5, 9, 15, 19, 25): [3, 3, 5] would build two identical ones.
    found = _found("04_cnn_retraining", {"filter_sizes": [3, 3, 5, 5, 9]})
    assert ("filter_sizes: 3, 5 given more than once; list each once (each size is one MultiResCNN channel: a "
            "repeated size would build two identical channels)") in found, found
    for fine in ([3, 5, 9, 15, 19, 25], [5], None):
        assert "filter_sizes" not in _found("04_cnn_retraining", {"filter_sizes": fine})
    found = _found("04_cnn_retraining", {"filter_sizes": [0]})                # the other checks still apply
    assert "filter_sizes: expected a non-empty list of whole numbers >= 1" in found, found
    out_dir = tmp_path / "outputs"
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "filter_sizes", "[3, 3, 5]"], out_dir)
    user_error(code, out, "filter_sizes: 3 given more than once; list each once")
    assert not out_dir.exists()                                       # nothing trained, nothing created


def test_attention_heads_that_do_not_divide_an_encoders_width_are_refused_before_anything_is_built(tmp_path):
    """segment_heads splits the local encoders' width (mlm_hidden_size) and, under BERT-hier with a segment
    transformer, every encoder's width (a folder's or the packaged MiniLM's config.json: 384) into equal heads; a
    number that does not divide one is refused with the width and where it comes from, before any work, where it was a
    traceback from the model's constructor after preprocessing. Checked with the notebook's default too."""
    assert ("segment_heads: 5 attention heads do not divide the width of in-domain (64, from mlm_hidden_size): each "
            "head takes an equal share of it; use 4, 8, 16 or another divisor") in _found("03_hierarchy",
                                                                                          {"segment_heads": 5})
    assert ("segment_heads: 5 attention heads do not divide the width of general, in-domain, in-domain-less, random "
            "(64, from mlm_hidden_size); minilm (384, from its config.json)") in _found(
        "02_pretraining_domains", {"segment_heads": 5, "encoders": ["general", "in-domain", "in-domain-less", "random",
                                                                    "minilm"]})
    for nb in ("02_pretraining_domains", "03_hierarchy"):
        found = _found(nb, {"mlm_hidden_size": 63})                 # the default of 2 heads, checked all the same
        assert "segment_heads: 2 attention heads do not divide the width of " in found and "(63, from mlm_" in found
        assert _found(nb, {"segment_heads": 8, "mlm_hidden_size": 96}) == ""
    minilm = {"encoders": ["minilm"], "segment_heads": 5}
    assert "do not divide the width of minilm (384, from its config.json)" in _found("03_hierarchy", minilm)
    assert _found("03_hierarchy", {**minilm, "architectures": ["trun_fcn", "trun_lan"]}) == ""   # no heads to split
    assert _found("03_hierarchy", {**minilm, "segment_layers": 0}) == ""              # PLM-ICD's: no second level
    assert _found("03_hierarchy", {**minilm, "segment_heads": 12}) == ""
    out_dir = tmp_path / "outputs"
    code, out = cli(["run", "03_hierarchy", "toy", "-p", "segment_heads", "5"], out_dir)
    user_error(code, out, "segment_heads: 5 attention heads do not divide the width of in-domain (64")
    assert not out_dir.exists()                                       # nothing built, nothing created


def test_segments_longer_than_an_encoders_positions_are_refused_before_anything_is_built():
    """segment_length must fit every encoder's positions ([CLS] and [SEP] included): 512 for the local encoders this
    project pretrains and for BERT-base-sized ones (read from config.json); the model's constructor said so only
    after preprocessing and pretraining."""
    found = _found("03_hierarchy", {"segment_length": 1024})
    assert ("segment_length: 1024 word pieces do not fit the positions of in-domain (512, from the local encoders' "
            "pretraining): a segment, [CLS] and [SEP] included, must fit them; use 512 or fewer") in found, found
    assert "do not fit the positions of minilm (512, from its config.json)" in _found(
        "02_pretraining_domains", {"segment_length": 600, "encoders": ["minilm"], "more_data_pairs": []})
    assert _found("03_hierarchy", {"segment_length": 512}) == ""
    assert "segment_length: expected a whole number >= 3, got 2" in _found("03_hierarchy", {"segment_length": 2})


def test_more_data_pairs_name_two_encoders_of_the_run():
    """Notebook 02's (less data, more data) pairs are checked against encoders before any encoder is pretrained (they
    were a traceback from bert_study.pair_rows after pretraining); with the default pairs, leaving in-domain-less out
    of encoders says which key to change."""
    nb = "02_pretraining_domains"
    found = _found(nb, {"more_data_pairs": [["in-domain-less", "general"]], "encoders": ["in-domain", "in-domain-less"]})
    assert ("more_data_pairs: ['in-domain-less', 'general'] names 'general', which is not in encoders ['in-domain', "
            "'in-domain-less']: add it there or leave the pair out") in found, found
    assert "more_data_pairs: ['in-domain-less', 'in-domain'] names 'in-domain-less'" in _found(
        nb, {"encoders": ["in-domain", "random"]})
    for pair in (["in-domain"], ["in-domain", "in-domain"], "in-domain"):
        assert "more_data_pairs: expected pairs of two different names" in _found(nb, {"more_data_pairs": [pair]})
    assert "given more than once" in _found(nb, {"more_data_pairs": [["in-domain-less", "in-domain"]] * 2})
    assert _found(nb, {"more_data_pairs": [], "encoders": ["in-domain", "random"]}) == ""
    assert _found(nb, {"more_data_pairs": [["random", "in-domain"]]}) == ""


@pytest.mark.parametrize("value", [1.5, 0, 1, -0.2, None, "half"])
def test_less_data_is_a_share_strictly_between_0_and_1(value):
    found = _found("02_pretraining_domains", {"less_data": value})
    assert f"less_data: expected a number strictly between 0 and 1, got {value!r}" in found, found
    assert "less_data" not in _found("02_pretraining_domains", {"less_data": 0.25})


def test_splits_dir_without_the_split_files_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    found = _found("01_preprocess", {"splits_dir": str(empty)})
    assert f"splits_dir: {empty}: no train_full_hadm_ids.csv, dev_full_hadm_ids.csv, test_full_hadm_ids.csv" \
        in found, found
    part = split_files(tmp_path / "part", ("full",))
    (part / "train_50_hadm_ids.csv").write_text("1\n")
    found = _found("01_preprocess", {"splits_dir": str(part)})
    assert "top-50 split file(s) dev_50_hadm_ids.csv, test_50_hadm_ids.csv not found" in found, found
    assert _found("01_preprocess", {"splits_dir": str(split_files(tmp_path / "all"))}) == ""
    assert _found("01_preprocess", {"splits_dir": str(split_files(tmp_path / "full", ("full",)))}) == ""


def _mimic(folder: Path, **headers: str) -> Path:
    """Header-only tables as plain ``NAME.csv`` (the messages below name them) and both label spaces' split files."""
    return header_only_mimic(folder, gz=False, splits=("full", "50"), **headers)


def test_mimic_tables_without_a_needed_column_are_refused(tmp_path):
    assert _found("01_preprocess", {"input_path": str(_mimic(tmp_path / "ok"))}) == ""
    bad = _mimic(tmp_path / "bad", NOTEEVENTS="ROW_ID,SUBJECT_ID,HADM_ID,CATEGORY,ISERROR,NOTE")
    found = _found("01_preprocess", {"input_path": str(bad)})
    assert f"input_path: {bad / 'NOTEEVENTS.csv'}: missing column(s) ['TEXT']" in found, found
    bad = _mimic(tmp_path / "codes", DIAGNOSES_ICD="row_id,subject_id,hadm_id,seq_num,icd9")   # any case matches
    assert f"{bad / 'DIAGNOSES_ICD.csv'}: missing column(s) ['ICD9_CODE']" in _found("01_preprocess",
                                                                                    {"input_path": str(bad)})
    bad = _mimic(tmp_path / "titles", D_ICD_PROCEDURES="ROW_ID,ICD9_CODE,SHORT_TITLE")
    assert "missing column(s) ['LONG_TITLE']" in _found("01_preprocess", {"input_path": str(bad)})
    nosplits = _mimic(tmp_path / "nosplits")
    for f in (nosplits / "splits").iterdir():
        f.unlink()
    found = _found("01_preprocess", {"input_path": str(nosplits)})
    assert "splits_dir None reads the split files from <input_path>/splits" in found and "no train_full" in found
    assert "<input_path>/splits" not in _found("01_preprocess", {"input_path": str(nosplits), "splits_dir": "caml"})


def test_caml_splits_that_cannot_be_downloaded_are_said_before_any_note_is_read(tmp_path, monkeypatch):
    """``splits_dir: caml`` downloads CAML's files into the cache: with the files there nothing is fetched, so all
    is well offline; without them, an unreachable host is one message naming the cache and the way out."""
    from mcanb import preflight_inputs, splits

    monkeypatch.setenv("MCANB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(preflight_inputs, "_reachable", lambda url: "gaierror: no network here")
    found = _found("01_preprocess", {"splits_dir": "caml"})
    assert found == (f"splits_dir: 'caml' downloads CAML's split files into {splits.cache_dir()}, but "
                     "raw.githubusercontent.com cannot be reached (gaierror: no network here); put the six files "
                     f"({', '.join(splits.SHA256)}) in a folder and name it in splits_dir, or into that cache folder")
    split_files(splits.cache_dir())
    assert _found("01_preprocess", {"splits_dir": "caml"}) == ""


def test_list_items_read_as_numbers_are_text_and_no_hint_repeats_the_value():
    from mcanb import cli as mcanb_cli
    from mcanb.pipeline import resolve_parameters

    values = resolve_parameters("05_frequency_analysis", "toy", mcanb_cli._overrides([["label_spaces", "[50, full]"]]))
    assert values["label_spaces"] == ["50", "full"]
    found = _found("05_frequency_analysis", {"label_spaces": [50]})          # a caller that skipped coercion
    assert "label_spaces: unknown 50; valid" in found and "did you mean 50" not in found, found


def test_numbers_with_an_exponent_are_numbers_in_files_and_overrides(tmp_path):
    from mcanb import cli as mcanb_cli
    from mcanb.pipeline import resolve_parameters

    overrides = mcanb_cli._overrides([["lr", "1e-3"], ["num_epochs", "1e1"]])
    values = resolve_parameters("04_cnn_retraining", "toy", overrides)
    assert values["lr"] == 0.001 and values["num_epochs"] == 10 and isinstance(values["num_epochs"], int)
    f = tmp_path / "mine.yaml"
    f.write_text("mlm_lr: 3e-4\nencoder_lr: 2E-5\nhead_lrs: {fcn: 1e-2}\nrun_name: 1e3\n")
    values = resolve_parameters("02_pretraining_domains", str(f))
    assert (values["mlm_lr"], values["encoder_lr"], values["head_lrs"]) == (0.0003, 2e-05, {"fcn": 0.01})
    assert values["run_name"] == "1e3"                                        # text stays text
    code, out = cli(["run", "04_cnn_retraining", "toy", "-p", "lr", "1e-3", "--dry-run"], tmp_path / "o")
    assert code == 0 and "lr: 0.001" in out, out


def test_profile_params_are_named_as_the_source(tmp_path):
    from mcanb.study import StudyError, load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"runs": [{"notebook": "04_cnn_retraining", "run": "toy",
                                                 "params": {"batch_sise": 4}}]}))
    with pytest.raises(StudyError) as err:
        load_profile(str(profile))
    msg = str(err.value)
    assert f"{profile}, runs[0]: params: unknown parameter 'batch_sise'; did you mean batch_size?" in msg, msg
    assert "command-line" not in msg


def test_unknown_parameter_suggests_a_name_it_contains():
    from mcanb import params as P
    from mcanb.pipeline import resolve_parameters

    with pytest.raises(P.ParameterError, match=r"unknown parameter 'lr_rate'; did you mean lr\b.*\(valid: "):
        resolve_parameters("04_cnn_retraining", "toy", {"lr_rate": 0.1})
    assert P.close_names("cmal", ["cnn", "caml"]) == ["caml"]
    assert P.close_names("50", ["full", "50"]) == [] and P.close_names("Seeds", ["seeds"]) == ["seeds"]


@pytest.mark.parametrize("command", [["run", "04_cnn_retraining", "toy"], ["study", "toy"]])
@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_timeout_must_be_a_positive_whole_number(command, value, capsys):
    from mcanb import cli as mcanb_cli

    with pytest.raises(SystemExit) as err:
        mcanb_cli.parser().parse_args([*command, "--timeout", value, "--dry-run"])
    assert err.value.code != 0
    assert f"--timeout: expected a whole number >= 1, got '{value}'" in capsys.readouterr().err
    assert mcanb_cli.parser().parse_args([*command, "--timeout", "60"]).timeout == 60


def test_a_key_given_twice_is_refused_with_the_file_and_line(tmp_path):
    from mcanb import cli as mcanb_cli
    from mcanb import params as P
    from mcanb.study import StudyError, load_profile

    f = tmp_path / "twice.yaml"
    f.write_text("lr: 0.1\nseeds: [13]\nlr: 0.2\n")
    with pytest.raises(P.ParameterError, match=rf"{f}, line 3, column 1: .*key 'lr' given twice \(first on line 1\)"):
        P.load_file(f)
    f.write_text("lr: {cnn: 0.1, cnn: 0.2}\n")
    with pytest.raises(P.ParameterError, match=rf"{f}, line 1, .*key 'cnn' given twice"):
        P.load_file(f)
    profile = tmp_path / "p.yaml"
    profile.write_text("runs:\n  - notebook: 04_cnn_retraining\n    run: toy\n    run: other\n")
    with pytest.raises(StudyError, match=rf"{profile}, line 4, .*key 'run' given twice"):
        load_profile(str(profile))
    with pytest.raises(P.ParameterError, match=r"-p lr .*key 'cnn' given twice"):
        mcanb_cli._overrides([["lr", "{cnn: 1, cnn: 2}"]])
    base = tmp_path / "base.yaml"                                       # a file over the one it extends: not twice
    base.write_text("lr: 0.1\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nlr: 0.2\n")
    assert P.load_file(tmp_path / "child.yaml")["lr"] == 0.2


def test_frequency_analysis_with_nothing_to_read_names_the_notebook_to_run_first(tmp_path):
    from mcanb.paths import OUTPUTS

    found = _found("05_frequency_analysis", {"runs": ["no_such_run"]})
    assert "runs: no predictions_test.parquet" in found and "mcanb run 04_cnn_retraining no_such_run" in found
    produced = [OUTPUTS / "04_cnn_retraining" / "no_such_run"]              # an earlier run of the study makes it
    assert "runs:" not in _found("05_frequency_analysis", {"runs": ["no_such_*"]}, produced)
    assert "runs:" in _found("05_frequency_analysis", {"runs": ["no_such_run"]},
                             [OUTPUTS / "05_frequency_analysis" / "no_such_run"])     # its own folder holds none
    outputs = tmp_path / "o"
    code, out = cli(["run", "05_frequency_analysis", "toy", "-p", "label_spaces", "[50]"], outputs)
    user_error(code, out, "runs: no predictions_test.parquet", "mcanb run 04_cnn_retraining toy")
    assert "label_spaces" not in out and not outputs.exists()
    code, out = cli(["study", "toy", "--dry-run"], outputs)                   # 02-04 run first: no problem
    assert code == 0 and "05_frequency_analysis/toy" in out, out


def test_a_misspelt_command_names_the_commands_a_user_can_call(tmp_path):
    code, out = cli(["rnu", "04_cnn_retraining", "toy"], tmp_path)
    user_error(code, out, "unknown command 'rnu' (did you mean run?); choose from run, study, report, predict")
    assert "step" not in out                                                  # the internal command stays unlisted


def test_frequency_bins_must_start_at_0_and_increase():
    def bins_problems(bins):
        return [p for p in _found("05_frequency_analysis", {"bins": bins}).splitlines() if p.startswith("bins:")]

    assert bins_problems([0, 1, 10, 50]) == []
    for bad in ([0, 10, 10, 5], [1, 10]):
        assert bins_problems(bad) == [f"bins: expected strictly increasing lower edges starting at 0 (every code's "
                                      f"training count in one bin), got {bad}"]


# ------------------------------------------------------------------ mistakes found by a user-error audit, 2026-12-07
def test_none_as_the_parameter_cells_write_it_is_null(tmp_path):
    """``-p lr None`` (the notebooks' parameter cells write None) is YAML's null for a parameter that is not text, in
    overrides and in files; a text parameter keeps the text (and its own check says what it expects)."""
    from mcanb import cli as mcanb_cli
    from mcanb import preflight
    from mcanb.pipeline import resolve_parameters

    values = resolve_parameters("04_cnn_retraining", "toy", mcanb_cli._overrides([["lr", "None"], ["patience", "None"]]))
    assert values["lr"] is None and values["patience"] is None
    f = tmp_path / "mine.yaml"
    f.write_text("splits_dir: None\nrun_name: None\n")
    values = resolve_parameters("01_preprocess", str(f))
    assert values["splits_dir"] is None and values["run_name"] == "None"
    values = resolve_parameters("03_hierarchy", "toy", {"hier_variant": "None"})
    assert preflight.problems("03_hierarchy", values) == [
        "hier_variant: expected one of 'paper', 'segment_context', got 'None'"]


def test_an_unquoted_list_after_p_names_the_parameter_and_the_quoting(capsys):
    from mcanb import cli as mcanb_cli

    with pytest.raises(SystemExit):
        mcanb_cli.main(["run", "04_cnn_retraining", "toy", "-p", "seeds", "[13,", "14]", "--dry-run"])
    err = capsys.readouterr().err
    assert 'error: -p seeds [13, 14]: the shell cut the value at its spaces; quote it as one word: -p seeds "[13, 14]"' \
        in err and "unrecognized arguments" not in err


def test_a_parameter_given_twice_after_p_is_refused(capsys):
    from mcanb import cli as mcanb_cli

    with pytest.raises(SystemExit) as exited:
        mcanb_cli.main(["run", "04_cnn_retraining", "toy", "-p", "seeds", "[13]", "-p", "seeds", "[14]", "--dry-run"])
    assert exited.value.code == "mcanb run: error: -p seeds is given twice ([13] and [14]); give it once"
    assert not capsys.readouterr().out                                  # refused before the dry run prints anything


def test_mixed_precision_without_a_gpu_and_examples_longer_than_the_positions_are_refused(monkeypatch):
    import torch

    from mcanb import preflight
    from mcanb.pipeline import resolve_parameters

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    values = resolve_parameters("03_hierarchy", "toy", {"amp": "bf16", "mlm_seq_len": 1024})
    found = preflight.problems("03_hierarchy", values)
    assert [p for p in found if p.startswith("amp:")] == [
        f"amp: 'bf16' needs a CUDA GPU and this machine has none (torch {torch.__version__}); run with -p amp off"]
    assert "mlm_seq_len: expected at most 512 (the local encoders' positions), got 1024" in found
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not [p for p in preflight.problems("03_hierarchy", values) if p.startswith("amp:")]


@pytest.mark.parametrize("entry, said", [
    ({"seeds": 13}, "seeds: expected a list like [13, 14], got 13"),
    ({"seeds": None}, "seeds: expected a list like [13, 14], got None"),
    ({"params": [{"num_epochs": 2}]}, "params: expected a mapping like {num_epochs: 2}, got [{'num_epochs': 2}]"),
    ({"reads": "01_preprocess/toy"}, "reads: expected a list like [01_preprocess/toy], got '01_preprocess/toy'")])
def test_a_profile_entry_of_the_wrong_type_is_one_message(tmp_path, entry, said):
    from mcanb.study import StudyError, load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"runs": [{"notebook": "04_cnn_retraining", "run": "toy", **entry}]}))
    with pytest.raises(StudyError, match=re.escape(f"{profile}, runs[0]: {said}")):
        load_profile(str(profile))


def test_files_that_are_not_utf8_are_one_message(tmp_path):
    from mcanb.errors import UserError, read_yaml_mapping
    from mcanb.study import StudyError, load_profile

    f = tmp_path / "latin.yaml"
    f.write_bytes("# donn\xe9es\nseeds: [13]\n".encode("latin-1"))
    with pytest.raises(UserError, match=re.escape(f"{f}: not UTF-8 text (byte 6): save it as UTF-8")):
        read_yaml_mapping(f)
    with pytest.raises(StudyError, match="not UTF-8 text"):
        load_profile(str(f))


def test_a_rehearsal_refuses_the_options_it_would_ignore():
    """``--rehearse --dry-run`` used to start the full-scale rehearsal: options that cannot apply are refused."""
    from mcanb import cli as mcanb_cli

    with pytest.raises(SystemExit) as exited:
        mcanb_cli.main(["study", "toy", "--rehearse", "--dry-run", "--jobs", "2"])
    err = str(exited.value.code)
    assert "error: --rehearse runs the profile at MIMIC-III scale with settings of its own; --dry-run, --jobs cannot " \
           "apply to it: leave them out (`mcanb study toy --dry-run`" in err


def test_folders_a_run_writes_are_checked_before_any_work(tmp_path):
    from mcanb import preflight
    from mcanb.pipeline import resolve_parameters

    a_file = tmp_path / "afile"
    a_file.write_text("")
    values = resolve_parameters("03_hierarchy", "toy", {"runs_dir": str(a_file / "store"), "encoders_dir": 5})
    found = preflight.problems("03_hierarchy", values)
    assert f"runs_dir: the run store {a_file / 'store'} cannot be created: {a_file} is a file, not a folder" in found
    assert "encoders_dir: expected None or the path of a folder, got 5" in found
    ok = resolve_parameters("03_hierarchy", "toy", {"runs_dir": str(tmp_path / "new" / "store")})
    assert not [p for p in preflight.problems("03_hierarchy", ok) if p.startswith("runs_dir")]


def test_split_files_that_are_not_camls_are_refused_before_notes_are_read(tmp_path):
    """verify_caml_splits: true (the MIMIC-III files) with one's own split files: one message before preprocessing,
    which says how to keep one's own files, instead of a checksum error after all of NOTEEVENTS was read."""
    from mcanb import preflight
    from mcanb.splits import split_filename

    folder = tmp_path / "my_splits"
    folder.mkdir()
    for s in ("train", "dev", "test"):
        (folder / split_filename(s, "full")).write_text("100001\n")
    values = {"input_format": "mimic3", "splits_dir": str(folder), "verify_caml_splits": True}
    found = [p for p in preflight.problems("01_preprocess", values) if p.startswith("verify_caml_splits")]
    assert found == [f"verify_caml_splits: train_full_hadm_ids.csv, dev_full_hadm_ids.csv, test_full_hadm_ids.csv in "
                     f"{folder} differ from CAML's published files (SHA-256); use CAML's files (splits_dir: caml), or "
                     "set verify_caml_splits: false to run on your own split files"]
    values["verify_caml_splits"] = False
    assert not [p for p in preflight.problems("01_preprocess", values) if p.startswith("verify_caml_splits")]


def test_an_environment_variable_set_to_nothing_is_named_like_an_unset_one(monkeypatch):
    """``export MIMIC3_DIR=`` would make ``$MIMIC3_DIR`` the repository itself ("output folder inside the raw data")."""
    from mcanb import preflight

    monkeypatch.setenv("MIMIC3_DIR", " ")
    assert preflight.unset_variables("$MIMIC3_DIR/NOTEEVENTS.csv.gz") == ["MIMIC3_DIR"]
    monkeypatch.setenv("MIMIC3_DIR", "/data/mimic")
    assert preflight.unset_variables(["${MIMIC3_DIR}", "x"]) == []
    monkeypatch.delenv("MIMIC3_DIR")
    assert preflight.unset_variables("${MIMIC3_DIR}") == ["MIMIC3_DIR"]


def test_two_profile_entries_that_write_one_folder_are_refused(tmp_path):
    from mcanb.study import StudyError, load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"runs": [{"notebook": "04_cnn_retraining", "run": "toy"},
                                                {"notebook": "04_cnn_retraining", "run": "toy", "seeds": [14]}]}))
    with pytest.raises(StudyError, match=re.escape(f"{profile}, runs[1]: writes outputs/04_cnn_retraining/toy, as "
                                                   "runs[0] does; give one of them another run_name")):
        load_profile(str(profile))


def test_a_cell_stopped_by_timeout_is_one_message(monkeypatch):
    """nbclient's CellTimeoutError (``--timeout`` fired) was a 90-line traceback: it is said in one message."""
    from mcanb import cli as mcanb_cli

    class CellTimeoutError(TimeoutError):
        pass

    def stopped(args):
        raise CellTimeoutError("A cell timed out while it was being executed, after 1 seconds.")

    monkeypatch.setattr(mcanb_cli, "_cmd_run", stopped)
    with pytest.raises(SystemExit) as exited:
        mcanb_cli.main(["run", "04_cnn_retraining", "toy", "--timeout", "1"])
    assert str(exited.value.code).startswith("mcanb run: error: a notebook cell ran longer than --timeout 1 s and "
                                             "was stopped")


def test_the_kernels_own_stderr_is_passed_on_except_its_traceback_after_a_timeout(capsys):
    """The kernel process writes its standard error to a file (``pipeline.kernel_manager``): what it says reaches the
    terminal after the notebook, but the ZMQError traceback it prints when --timeout stops a cell is left out, so it
    does not bury the one-line message."""
    import asyncio
    import tempfile

    from mcanb import pipeline

    async def run_in_kernel(stderr) -> None:
        km = pipeline.kernel_manager(stderr)["kernel_manager_class"](kernel_name="python3")
        await km.start_kernel()
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            await client.execute_interactive("import os; os.write(2, b'said by the kernel itself\\n')", timeout=60)
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    for stopped in (False, True):
        with tempfile.TemporaryFile() as f:
            asyncio.run(run_in_kernel(f))
            f.seek(0)
            assert f.read() == b"said by the kernel itself\n"
            pipeline._pass_on(f, stopped)
            assert f.closed
        assert capsys.readouterr().err == "said by the kernel itself\n"
    with tempfile.TemporaryFile() as f:            # after --timeout: what came before the kernel's own traceback
        f.write(b"a warning\nTraceback (most recent call last):\n  File x\nzmq.error.ZMQError: Socket operation\n")
        pipeline._pass_on(f, True)
    assert capsys.readouterr().err == "a warning\n"


def test_a_table_given_settings_only_mimic_input_reads_is_refused():
    """input_format: table ignores CAML's split files, their checksum, caml_compat, drop_iserror and duplicate_notes:
    given any of them (not at its neutral value), the run is refused instead of silently ignoring it."""
    from mcanb import preflight
    from mcanb.pipeline import resolve_parameters

    values = resolve_parameters("01_preprocess", "toy_corpus", {"splits_dir": "caml", "caml_compat": True})
    assert preflight.problems("01_preprocess", values) == [
        "input_format: 'table' takes its splits from the table's split column and reads no MIMIC-III notes, so "
        "splits_dir and caml_compat would be ignored; leave them out"]
    neutral = resolve_parameters("01_preprocess", "toy_corpus", {"splits_dir": None, "duplicate_notes": None})
    assert preflight.problems("01_preprocess", neutral) == []


def test_predict_names_an_empty_note_before_the_model_loads(tmp_path):
    from mcanb import cli as mcanb_cli
    from mcanb.errors import UserError

    note = tmp_path / "note.txt"
    note.write_text(" \n\t\n")
    with pytest.raises(UserError, match=re.escape("--text note.txt: note.txt is empty: give the text of a note")):
        mcanb_cli._read_note("note.txt", str(tmp_path))
