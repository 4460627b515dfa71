"""`mcanb study`: profiles, fingerprints and skips, dry runs, resuming after a kill, progress lines, the report."""
from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, mcanb_cli, tiny_profile
from mcanb import study
from mcanb.progress import Monitor, describe

pytestmark = pytest.mark.slow


def _metrics(run_dir: Path) -> dict:
    """Test metrics of a notebook-04 run (timings and creation dates are not results)."""
    m = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return {k: v for k, v in m.items() if "/test/" in k and "seconds" not in k}


def test_shipped_profiles_load_and_resolve_every_parameter_file():
    for name in ("toy", "toy-corpus", "mimic3-50", "mimic3-full"):
        prof = study.load_profile(name)
        assert prof.runs and prof.runs[0].notebook == "01_preprocess"
        for spec in prof.runs:
            assert all(r in [s.key for s in prof.runs] for r in spec.reads)


def test_package_fingerprint_leaves_out_only_existing_orchestration_modules():
    from mcanb.identity import ORCHESTRATION
    from mcanb.paths import PACKAGE_DIR

    assert all((PACKAGE_DIR / name).exists() for name in ORCHESTRATION)
    assert {"study.py", "study_run.py"} <= ORCHESTRATION
    assert not ORCHESTRATION & {"train.py", "train_config.py", "train_checkpoints.py", "inference.py", "batching.py",
                                "frequency.py", "reporting.py", "cnn_study.py", "bert_study.py", "metrics"}


def test_bad_profiles_are_errors_naming_the_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"runs": [{"notebook": "01_preprocess", "run": "toy", "sedes": [1]}]}))
    with pytest.raises(study.StudyError, match=r"runs\[0\].*unknown key.*sedes"):
        study.load_profile(str(bad))
    bad.write_text(yaml.safe_dump({"runs": [{"notebook": "04_cnn_retraining", "run": "toy", "reads": ["x/y"]}]}))
    with pytest.raises(study.StudyError, match=r"reads \['x/y'\], which no earlier entry produces"):
        study.load_profile(str(bad))
    bad.write_text(yaml.safe_dump({"runs": [{"notebook": "04_cnn_retraining", "run": "toy", "params": {"lrr": 1}}]}))
    with pytest.raises(study.StudyError, match="unknown parameter 'lrr'"):
        study.load_profile(str(bad))
    with pytest.raises(study.StudyError, match="no such profile"):
        study.load_profile("no-such-profile")
    # reads leaves out the earlier run whose output data_dir names: under jobs: 2 it could start first
    bad.write_text(yaml.safe_dump({"jobs": 2, "runs": [
        {"notebook": "01_preprocess", "run": "toy"},
        {"notebook": "04_cnn_retraining", "run": "toy", "reads": [], "params": {"data_dir": "outputs/01_preprocess/toy"}}]}))
    with pytest.raises(study.StudyError, match=r"runs\[1\]: data_dir outputs/01_preprocess/toy is what runs\[0\] "
                                               r"\(01_preprocess/toy\) writes, but its reads \[\] leave that run out"):
        study.load_profile(str(bad))


def test_progress_lines_from_progress_files(tmp_path):
    doc = {"epoch": 1, "num_epochs": 4, "batch": 10, "batches": 40, "epoch_s": 5.0, "train_loss": 0.25,
           "metric": "micro_f1", "best": 0.4, "best_epoch": 0, "stop_reason": None}
    line = describe(doc, "cnn/seed13")
    assert line.startswith("cnn/seed13 · epoch 2/4 · batch 10/40 · loss 0.2500 · epoch ETA 15 s")
    assert "run ETA ≤ 55 s" in line                  # 15 s left in this epoch + 2 more epochs of 20 s
    end = describe({**doc, "batch": None, "stop_reason": "early_stopping"}, "cnn/seed13")
    assert "best dev micro_f1 0.4000 @ epoch 1" in end and "stop: early_stopping" in end
    lines = []
    with Monitor(tmp_path, "04/toy", write=lines.append, interval=0.05) as mon:
        (tmp_path / "cnn" / "seed13").mkdir(parents=True)
        (tmp_path / "cnn" / "seed13" / "progress.json").write_text(json.dumps(doc))
        time.sleep(0.5)
    assert lines and lines[0].startswith("[04/toy] cnn/seed13 · epoch 2/4"), (lines, mon.lines)
    shared = tmp_path / "bert_runs" / "toy" / "in_domain" / "hier_lan-1" / "seed13"   # notebooks 02/03 train here
    lines.clear()
    with Monitor(tmp_path / "nb", "02/toy", write=lines.append, interval=0.05, also=(tmp_path / "bert_runs" / "toy",)):
        shared.mkdir(parents=True)
        (shared / "progress.json").write_text(json.dumps(doc))
        time.sleep(0.5)
    assert lines and lines[0].startswith("[02/toy] in_domain/hier_lan-1/seed13 · epoch 2/4"), lines
    # a run another notebook run trains into the shared store at the same time is not shown as this one's
    lines.clear()
    other = shared.parent.parent / "hier_fcn-2" / "seed13"
    with Monitor(tmp_path / "nb", "02/toy", write=lines.append, interval=0.05, also=(tmp_path / "bert_runs" / "toy",)):
        other.mkdir(parents=True)
        (other / "progress.json").write_text(json.dumps({**doc, "caller": "03/toy"}))
        time.sleep(0.3)
        (shared / "progress.json").write_text(json.dumps({**doc, "caller": "02/toy", "epoch": 2}))
        time.sleep(0.5)
    assert all("hier_fcn-2" not in line for line in lines) and any("epoch 3/4" in line for line in lines), lines


def test_study_runs_then_skips_everything(tiny_study):
    outputs, profile, first, seconds = tiny_study
    assert "2 of 2 runs to do" in first.stdout and "never ran" in first.stdout
    rec = study.read_record(outputs / "04_cnn_retraining" / "tiny")
    assert rec["status"] == "done" and set(rec["parts"]) == {"params", "notebook", "package", "inputs", "files"}
    fixture = study.read_record(outputs / "01_preprocess" / "toy")["parts"]["files"]["input_path"]["files"]
    assert "NOTEEVENTS.csv.gz" in fixture and "splits/train_full_hadm_ids.csv" in fixture     # what 01 reads
    upstream = study.read_record(outputs / "01_preprocess" / "toy")["fingerprint"]
    assert rec["parts"]["inputs"] == {"01_preprocess/toy": upstream}
    # progress reached the terminal: which run, which model and seed, which epoch
    assert re.search(r"\[04_cnn_retraining/tiny\] (cnn|caml)/\w{8}/seed13 · epoch \d/2", first.stderr), \
        first.stderr[-3000:]
    # and nothing else: the kernels talk over Unix sockets (pipeline.kernel_manager), so ipykernel has no
    # unencrypted-TCP warning to print for each notebook
    assert "without encryption" not in first.stderr + first.stdout
    t0 = time.perf_counter()
    second = mcanb_cli(["study", str(profile), "--no-report"], outputs, timeout=300)
    took = time.perf_counter() - t0
    assert second.returncode == 0, second.stderr
    assert "0 of 2 runs to do" in second.stdout and second.stdout.count("skip: up to date") == 2
    assert took < 60, f"a study with nothing to do took {took:.0f} s"


def test_dry_run_says_why(tiny_study, tmp_path):
    outputs, profile, _, _ = tiny_study
    doc = yaml.safe_load(profile.read_text())
    doc["runs"][1]["params"]["num_filters"] = 9
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc))
    out = mcanb_cli(["study", str(changed), "--dry-run"], outputs, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"01_preprocess/toy\s+skip: up to date", out.stdout), out.stdout
    assert re.search(r"04_cnn_retraining/tiny\s+run: params changed", out.stdout), out.stdout
    doc["runs"][1]["params"]["run_name"] = "other"
    changed.write_text(yaml.safe_dump(doc))
    out = mcanb_cli(["study", str(changed), "--dry-run"], outputs, timeout=300)
    assert re.search(r"04_cnn_retraining/other\s+run: never ran", out.stdout), out.stdout
    assert not (outputs / "04_cnn_retraining" / "other").exists(), "a dry run must not create anything"


def test_a_changed_note_reruns_exactly_the_runs_that_read_it(tiny_study):
    import gzip

    outputs, profile, _, _ = tiny_study
    notes = outputs / "fixtures" / "toy_mimic" / "NOTEEVENTS.csv.gz"
    original = notes.read_bytes()
    text = gzip.decompress(original).decode()
    at = text.index("Discharge Diagnosis") if "Discharge Diagnosis" in text else text.index("\n", 200) + 60
    try:
        notes.write_bytes(gzip.compress((text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1:]).encode()))
        out = mcanb_cli(["study", str(profile), "--dry-run"], outputs, timeout=300)
        assert out.returncode == 0, out.stderr
        assert re.search(r"01_preprocess/toy\s+run: input changed: \S*NOTEEVENTS\.csv\.gz", out.stdout), out.stdout
        assert re.search(r"04_cnn_retraining/tiny\s+run: input changed \(01_preprocess/toy reruns\)", out.stdout)
    finally:
        notes.write_bytes(original)
    again = mcanb_cli(["study", str(profile), "--dry-run"], outputs, timeout=300)
    assert "0 of 2 runs to do" in again.stdout, again.stdout


def test_an_encoder_folders_bytes_count_in_the_fingerprint_of_a_run_that_names_it(tmp_path):
    """A run naming an encoder folder reruns when that folder's weights change (the training run's identity hashes
    them too, so a study that skipped it would keep results of the old weights)."""
    enc = tmp_path / "enc"
    enc.mkdir()
    for name, data in (("config.json", b"{}"), ("model.safetensors", b"weights"), ("tokenizer.json", b"{}")):
        (enc / name).write_bytes(data)
    spec = study.RunSpec("03_hierarchy", "toy", {"encoders": [str(enc), "in-domain"]})
    before = study.input_identities(spec)
    assert "encoders[1]" not in before and before["encoders[0]"]["path"] == str(enc)     # a name is no folder
    (enc / "model.safetensors").write_bytes(b"weightz")
    after = study.input_identities(spec)
    assert after["encoders[0]"]["sha"] != before["encoders[0]"]["sha"]
    assert study.identity.changed_files(before["encoders[0]"], after["encoders[0]"]) == ["model.safetensors"]


def test_runs_lists_the_run_store_and_prunes_what_no_result_uses(tiny_study):
    import shutil

    outputs, _, _, _ = tiny_study
    listed = mcanb_cli(["runs"], outputs, timeout=300)
    assert listed.returncode == 0, listed.stderr
    for model in ("cnn", "caml"):
        assert re.search(rf"runs/{model}/\w{{8}}/seed13  done  used by 04_cnn_retraining/tiny", listed.stdout)
    assert re.search(r"identity \w+: data \w+ \(toy/50\) · model \w+ \(caml\) · train \w+ · seed 13 · code \w+",
                     listed.stdout), listed.stdout
    assert "    trained on cpu (" in listed.stdout          # params.yaml records the device; the identity leaves it out
    (caml,) = (outputs / "runs" / "caml").glob("*/seed13")
    orphan = outputs / "runs" / "old_model" / "0123abcd" / "seed13"   # in the store, but no result lists it
    shutil.copytree(caml, orphan)
    for f in orphan.rglob("*"):
        os.utime(f, (time.time() - 3600, time.time() - 3600))               # not written just now
    dry = mcanb_cli(["runs", "--prune", "--dry-run"], outputs, timeout=300)
    assert re.search(r"would remove \S*old_model/0123abcd/seed13\n", dry.stdout) and "would remove 1 unused runs" in dry.stdout
    assert orphan.exists()
    pruned = mcanb_cli(["runs", "--prune"], outputs, timeout=300)
    assert "removed 1 unused runs" in pruned.stdout, pruned.stdout
    # the notebooks' stored paired tests read runs that stay: none is removed with the orphan (tests/test_metrics_bootstrap.py)
    assert re.search(r"removed 0 stored paired tests whose prediction files are gone", pruned.stdout), pruned.stdout
    assert not (outputs / "runs" / "old_model").exists() and caml.exists()


def test_killed_study_resumes_to_the_same_metrics(tiny_study, tmp_path):
    outputs, _, _, _ = tiny_study
    other = tmp_path / "outputs"
    other.mkdir()
    profile = tiny_profile(tmp_path / "p.yaml", other, with_01=False, data_dir=outputs / "01_preprocess" / "toy")
    env = dict(os.environ, MCANB_OUTPUTS=str(other), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "mcanb.cli", "study", str(profile), "--no-report"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = other / "04_cnn_retraining" / "tiny"
    deadline = time.time() + 300
    try:
        # notebook 04 trains cnn, then caml: kill while caml is mid-way (cnn finished, caml has an epoch checkpoint)
        while not list(other.glob("runs/caml/*/seed13/checkpoints/last.pt")) and time.time() < deadline:
            assert proc.poll() is None, "the study ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert study.read_record(run_dir)["status"] == "running"
    (cnn_done,) = other.glob("runs/cnn/*/seed13/metrics.json")          # finished: best.pt kept, last.pt dropped
    assert (cnn_done.parent / "checkpoints" / "best.pt").exists()
    assert not (cnn_done.parent / "checkpoints" / "last.pt").exists()
    cnn_written = cnn_done.stat().st_mtime_ns
    time.sleep(3)                                   # the orphaned kernel notices its parent is gone and exits
    dry = mcanb_cli(["study", str(profile), "--dry-run"], other, timeout=300)
    assert "interrupted: resumes" in dry.stdout, dry.stdout
    again = mcanb_cli(["study", str(profile), "--no-report"], other, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert cnn_done.stat().st_mtime_ns == cnn_written, "the finished cnn run was trained or evaluated again"
    assert _metrics(run_dir) == _metrics(outputs / "04_cnn_retraining" / "tiny")


def test_report_shows_every_table_beside_the_paper(tiny_study):
    outputs, profile, first, _ = tiny_study
    page = outputs / "report" / profile.stem.replace("_", "-") / "index.html"
    assert page.exists() and "report:" in first.stdout
    text = html.unescape(page.read_text())
    assert "Table 6 (top-50 codes)" in text and "not run: <b>CNN (Kim, 2014), HyperCore</b>: not implemented" not in text
    assert "not run: <b>HyperCore</b>: not implemented in mcanb" in text    # one line per reason
    assert "not run: <b>MultiResCNN</b>: not in this run's `models`" in text  # not trained here
    for href in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
        assert (page.parent / href).exists(), f"broken link {href}"
    md = (page.parent / "report.md").read_text()
    # the paper's row; the two dev-tuned F1 columns after P@5 are this run's only (the paper prints F1 at 0.5)
    assert "| Table 6 | CNN (retrained) |  | 90.8 | 93.1 | 62.4 | 67.1 | 64.0 |  |  |  |" in md
    row = next(line for line in md.splitlines() if line.startswith("| this run | [CNN (retrained)]"))
    assert "metrics.json" in row


def test_the_report_does_not_present_a_run_of_other_settings_as_the_profiles(tiny_study):
    """A folder last written with other parameters than the profile's (here its record says so, as after `mcanb run
    ... -p seeds "[13]"`) has "other settings" in the report, and its numbers are not shown as the profile's
    results; a plain `mcanb run` of the profile's file is the profile's run."""
    outputs, profile, _, _ = tiny_study
    record = outputs / "04_cnn_retraining" / "tiny" / study.RECORD
    original = record.read_text()
    rec = json.loads(original)
    try:
        record.write_text(json.dumps({**rec, "parts": {**rec["parts"], "params": "0123456789abcdef"}}))
        out = mcanb_cli(["report", str(profile)], outputs, timeout=300)
        assert out.returncode == 0, out.stderr
        md = (outputs / "report" / profile.stem.replace("_", "-") / "report.md").read_text()
        assert "| 04_cnn_retraining/tiny | other settings: parameters |" in md, md[-1500:]
        assert "other settings (04_cnn_retraining/tiny): its folder holds results of other parameters" in md
        assert not any(line.startswith("| this run | [CNN (retrained)]") for line in md.splitlines())
        # `mcanb run` records no reads (its inputs are fingerprinted as files): the same parameters are the profile's
        record.write_text(json.dumps({**rec, "parts": {**rec["parts"], "inputs": {}, "files": {"data_dir": {}}}}))
        from mcanb import report
        with pytest.MonkeyPatch.context() as mp:
            for module in (report, study):
                mp.setattr(module, "OUTPUTS", outputs)
            spec = next(s for s in study.load_profile(str(profile)).runs if s.key == "04_cnn_retraining/tiny")
            assert report._status(spec, set())[0] == "done"
            assert report._status(spec, {"01_preprocess/toy"})[0] == "done"          # it read no run, so none taints it
            record.write_text(original)                                    # as the study ran it: it read 01's run
            assert report._status(spec, {"01_preprocess/toy"})[0] == "other settings: reads 01_preprocess/toy"
    finally:
        record.write_text(original)


def test_predict_prints_top_codes_and_attention_spans(tiny_study, tmp_path):
    outputs, _, _, _ = tiny_study
    note = tmp_path / "note.txt"
    note.write_text("Admitted with atrial fibrillation and essential hypertension; type 2 diabetes mellitus.\n")
    run = outputs / "04_cnn_retraining" / "tiny" / "caml" / "seed13"
    out = mcanb_cli(["predict", "--model", str(run), "--text", str(note), "--top", "3"], outputs, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("model caml (top-50 codes)") and "tokens" in lines[1]
    ranked = [line for line in lines if re.match(r"\s+\d\s+\S+\s+0\.\d{3}\s+\S", line)]
    assert len(ranked) == 3
    assert any(re.search(r"attention 0\.\d{3} on '\w+': \".+\"", line) for line in lines), out.stdout
    cnn = mcanb_cli(["predict", "--model", str(run.parent.parent / "cnn" / "seed13"), "--text", "-", "--top", "2"],
                    outputs, timeout=300, input=note.read_text())
    assert cnn.returncode == 0 and "attention" not in cnn.stdout           # a max-pooled CNN has no attention
    bad = mcanb_cli(["predict", "--model", str(tmp_path), "--text", str(note)], outputs, timeout=300)
    assert bad.returncode != 0 and "params.yaml: missing" in bad.stderr
