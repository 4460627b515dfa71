"""The same command from an empty ``outputs/`` gives the same numbers: a whole toy study, twice.

A reduced `mcanb study` over every numbered notebook (tests/conftest.py ``tiny_profile(whole=True)``: notebook 01 on
the toy fixture, two small local encoders pretrained and fine-tuned in 02, 03 reusing them, two CNNs in 04, 05 over
all their predictions) runs in two separate processes from two empty outputs folders, one with
``OMP_NUM_THREADS=1`` and one run at a time, one with ``2`` and ``--jobs 2`` (notebook 04 beside 02 and 03), both
at once, and every number of every ``metrics.json`` must agree, as must the
word2vec vectors and the local encoders' files, byte for byte.

What it guards: torch's CPU kernels sum in another order with another number of intra-op threads (the notebooks
train with a fixed ``num_threads``, 1), and a WordPiece vocabulary trained by `tokenizers` differed from one process
to the next (local encoders now build it in a written-down order, mcanb.wordpiece_vocab).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import mcanb_cli, tiny_profile

NOTEBOOK_RUNS = ("01_preprocess/toy", "02_pretraining_domains/tiny", "03_hierarchy/tiny", "04_cnn_retraining/tiny",
                 "05_frequency_analysis/tiny")


def _study(outputs: Path, omp_threads: int, jobs: int) -> Path:
    outputs.mkdir(parents=True)
    profile = tiny_profile(outputs / "whole.yaml", outputs, whole=True)
    done = mcanb_cli(["study", str(profile), "--no-report", "--jobs", str(jobs)], outputs, threads=omp_threads,
                     timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "5 of 5 runs to do" in done.stdout, done.stdout[-3000:]
    if jobs > 1:                 # notebook 04 (reads only 01) ran beside 02 and 03
        assert "04_cnn_retraining/tiny: never ran (started beside" in done.stdout, done.stdout[-3000:]
    return outputs


def _metrics(outputs: Path, run: str) -> dict:
    return json.loads((outputs / run / "metrics.json").read_text())["metrics"]


def _encoder_files(outputs: Path) -> dict[str, bytes]:
    """Every file of every local encoder, by path (pretraining.json without its timing)."""
    out = {}
    for f in sorted((outputs / "encoders").rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == "pretraining.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
            out[str(f.relative_to(outputs))] = data
    return out


@pytest.mark.slow
def test_a_whole_toy_study_twice_from_empty_outputs_gives_identical_metrics(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:       # two processes at once: half the wall time, and neither sees the other
        studies = [pool.submit(_study, tmp_path / "a", omp_threads=1, jobs=1),
                   pool.submit(_study, tmp_path / "b", omp_threads=2, jobs=2)]
        a, b = (s.result() for s in studies)
    for run in NOTEBOOK_RUNS:
        ma, mb = _metrics(a, run), _metrics(b, run)
        assert len(ma) > 20 and ma.keys() == mb.keys(), run
        # json.dumps: NaN (no positive label in a bin) equals NaN here, as it does on disk
        differ = {k: (ma[k], mb[k]) for k in ma if json.dumps(ma[k]) != json.dumps(mb[k])}
        assert not differ, f"{run}: {len(differ)} of {len(ma)} metrics differ, e.g. {list(differ.items())[:3]}"
    # the inputs of training too: the same word2vec vectors and local encoders (vocabulary, weights), bit for bit
    emb = [np.load(d / "01_preprocess" / "toy" / "embeddings.npy") for d in (a, b)]
    assert emb[0].tobytes() == emb[1].tobytes()
    enc_a, enc_b = _encoder_files(a), _encoder_files(b)
    assert any(p.endswith("model.safetensors") for p in enc_a) and enc_a.keys() == enc_b.keys()
    assert [p for p in enc_a if enc_a[p] != enc_b[p]] == []
    # every notebook's results are in the comparison: 05 read the predictions of 02, 03 and 04
    freq = _metrics(a, "05_frequency_analysis/tiny")
    assert freq["n_prediction_sets"] >= 5, freq["n_prediction_sets"]
    # and the CNNs learned something, so the comparison is not between two untrained models
    m = _metrics(a, "04_cnn_retraining/tiny")
    assert m["caml/test/macro_auc/mean"] > 0.55 and m["cnn/test/macro_auc/mean"] > 0.55
    # the report's verdicts read the runs' records to test for noise: one per training run, with the numbers of the
    # notebook's metrics.json and readable predictions
    from mcanb import comparison, report, report_answers
    from mcanb.paired import paired_on_test
    run02 = a / "02_pretraining_domains" / "tiny"
    found02 = report_answers.seed_records(run02)
    data, records = found02.data, found02.records
    assert found02.floor["row"] == "most_frequent"          # the run's floor, rebuilt from its saved scores
    assert len(records) == len(json.loads((run02 / "training_runs.json").read_text()))
    assert {r["encoder"] for r in records} == {"in-domain (MLM on training notes)", "random init (no pretraining)"}
    m02 = _metrics(a, "02_pretraining_domains/tiny")
    for r in records:
        assert r["test/micro_f1"] == m02[f"{r['row']}/test/micro_f1/{r['seed']}"]
        assert paired_on_test(data, r, r, "p@5", n_resamples=1).estimate_a == pytest.approx(r["test/p@5"])
    assert report_answers.seed_records(a / "03_hierarchy" / "no_such_run") is None
    seen = {}
    measured = comparison.measured(report.load_metrics(run02))
    said = report_answers.as_text(report_answers.answer(
        lambda rows, res, processed=None, **kw: seen.update(n=len(res), data=processed, **kw) or "the verdict.",
        measured, found02, ("hier_lan",)))
    # the run's most-frequent floor reaches the verdict (its warnings) and its floor verdict follows, as notebook 02
    assert seen["floor"]["row"] == "most_frequent" and said.startswith("the verdict.\n")
    assert "the most-frequent floor" in said.splitlines()[1]
    assert seen["n"] == len(records) and seen["data"].num_codes == data.num_codes
    assert seen["extra_metrics"] == ["micro_f1@dev_threshold"]          # as the notebooks print the verdicts
    assert seen["label_space"] == data.label_space == "50"
    # RQ3: the best BERT row against the best CNN, tested over the test notes on the seeds both ran (02 and 04 here)
    run04 = a / "04_cnn_retraining" / "tiny"
    cnn = comparison.measured(report.load_metrics(run04))
    pair, paper = report_answers.bert_vs_cnn(measured, cnn, [found02, report_answers.seed_records(run04)])
    assert paper.startswith("Paper, top-50 codes") and pair.line.startswith("The best BERT variant of this run")
    assert pair.b in {"CNN (retrained)", "CAML"} and set(pair.ps) and set(pair.ps) <= set(pair.metrics)
    assert all(0 < p <= 1 for p in pair.ps.values())
    assert report_answers.bert_vs_cnn(measured, cnn)[0].ps == {}              # no run folders: the means only
