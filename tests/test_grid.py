"""The one metric-key scheme of every notebook's metrics.json (mcanb.grid.flat_metrics) and its readers."""
from __future__ import annotations

import pytest

from mcanb import comparison, grid, reporting


def _rec(row, seed, f1, **extra):
    return {"row": row, "label": row, "model": row, "encoder": "", "architecture": "", "seed": seed, "dir": "",
            "predictions": "", "seconds": 1.0, "epochs": 3, "best_epoch": 2, "stop_reason": "patience",
            "dev_threshold": 0.3, "warning": None, "test/micro_f1": f1, "dev/micro_f1": f1 / 2, "test/n_docs": 10,
            **extra}


def test_one_key_scheme_for_both_families_and_baselines():
    results = [_rec("cnn", 13, 0.5), _rec("cnn", 14, 0.7), _rec("in_domain/hier_lan", 13, 0.4),
               {**_rec("most_frequent", None, 0.2), "epochs": None, "best_epoch": None, "stop_reason": None,
                "dev_threshold": None}]
    m = grid.flat_metrics(results)
    assert m["cnn/test/micro_f1/seed13"] == 0.5 and m["cnn/test/micro_f1/seed14"] == 0.7
    assert m["cnn/test/micro_f1/mean"] == pytest.approx(0.6) and m["cnn/test/micro_f1/sd"] == pytest.approx(0.1414, 1e-3)
    assert m["in_domain/hier_lan/test/micro_f1/mean"] == 0.4 and m["in_domain/hier_lan/test/micro_f1/sd"] == 0.0
    assert m["cnn/fit/stop_reason/seed13"] == "patience" and m["cnn/fit/dev_threshold/seed14"] == 0.3
    assert m["most_frequent/test/micro_f1/mean"] == 0.2 and not any(k.startswith("most_frequent/fit/") for k in m)
    assert not any(k.startswith("cnn/dev/") for k in m) and "cnn/test/n_docs/mean" not in m   # test split, scores
    assert all(k.count("/seed") <= 1 for k in m) and not any("/seed13/" in k for k in m)      # seed last, once
    cells = comparison.measured(m)
    assert cells["cnn"]["micro_f1"].n == 2 and cells["in_domain/hier_lan"]["micro_f1"].n == 1
    assert cells["most_frequent"]["micro_f1"].n == 1 and cells["cnn"]["micro_f1"].mean == pytest.approx(60.0)
    assert reporting.seed_count(m, "cnn", "test", "micro_f1") == 2


def test_the_store_lists_who_uses_a_run_and_prunes_the_rest(tmp_path):
    import json
    import os
    import time

    from mcanb import identity, runs
    store = tmp_path / "runs"
    made = {}
    for key in ("caml/0123abcd", "dr_caml/89abcdef", "in_domain/hier_lan/0a0b0c0d"):
        run = store / key / "seed13"
        identity.write(run, identity.run_parts(data={"sha": "d"}, model={"model": key}, train={}, seed=13))
        for f in run.rglob("*"):
            os.utime(f, (time.time() - 3600, time.time() - 3600))             # not written just now
        made[key] = run
    result = tmp_path / "04_cnn_retraining" / "toy"
    result.mkdir(parents=True)
    (result / "metrics.json").write_text("{}")
    (result / identity.USES_FILE).write_text(json.dumps([str(made["caml/0123abcd"].resolve())]))
    found = {r.path.relative_to(store).as_posix(): r for r in runs.find(tmp_path)}
    assert set(found) == {f"{k}/seed13" for k in made}
    assert found["caml/0123abcd/seed13"].used_by == ["04_cnn_retraining/toy"]
    assert not found["dr_caml/89abcdef/seed13"].used_by
    # a notebook run folder, a row and a seed name the training run it used (mcanb predict --model)
    assert runs.used_run(result / "caml" / "seed13") == made["caml/0123abcd"].resolve()
    assert runs.used_run(result / "dr_caml" / "seed13") is None and runs.used_run(result / "caml" / "seed14") is None
    gone = runs.prune(list(found.values()))
    assert {r.path for r in gone} == {made["dr_caml/89abcdef"], made["in_domain/hier_lan/0a0b0c0d"]}
    assert sorted(p.name for p in store.iterdir()) == ["caml"] and made["caml/0123abcd"].exists()


def test_a_moved_or_copied_outputs_folder_keeps_its_runs_and_pruning_refuses_dangling_entries(tmp_path):
    """training_runs.json names the store's runs relative to the outputs folder, so a copy of the folder still knows
    which runs its results use; results written with absolute entries elsewhere make --prune refuse rather than
    remove runs they may use."""
    import json
    import shutil

    from mcanb import identity, runs
    from mcanb.errors import UserError
    a = tmp_path / "a"
    run = a / "runs" / "caml" / "0123abcd" / "seed13"
    identity.write(run, identity.run_parts(data={"sha": "d"}, model={"model": "caml"}, train={}, seed=13))
    result = a / "04_cnn_retraining" / "toy"
    result.mkdir(parents=True)
    (result / "metrics.json").write_text("{}")
    identity.record_use(result, run)
    assert json.loads((result / identity.USES_FILE).read_text()) == ["runs/caml/0123abcd/seed13"]
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert identity.uses(b / "04_cnn_retraining" / "toy") == [(b / "runs/caml/0123abcd/seed13").resolve()]
    assert [r.used_by for r in runs.find(b)] == [["04_cnn_retraining/toy"]]
    # a results folder written before this format: absolute entries into the folder it was copied from
    (b / "04_cnn_retraining" / "toy" / identity.USES_FILE).write_text(json.dumps([str(tmp_path / "gone" / "x")]))
    with pytest.raises(UserError, match=r"1 training run\(s\) that notebook results list are not where they say"):
        runs.main(prune_unused=True, dry_run=True, outputs=b, echo=lambda line: None)
    assert run.exists() and (b / "runs/caml/0123abcd/seed13").exists()


def test_still_improving_names_the_runs_that_num_epochs_ended_at_their_best():
    from mcanb import plots

    runs = [{"epochs": 5, "best_epoch": 4, "stop_reason": "num_epochs"},      # best at the last epoch: still rising
            {"epochs": 5, "best_epoch": 2, "stop_reason": "num_epochs"},
            {"epochs": 4, "best_epoch": 3, "stop_reason": "early_stopping"},
            {"epochs": None, "best_epoch": None, "stop_reason": None}]        # a baseline: not trained
    assert plots.still_improving(runs) == ("1 of 3 runs had their best dev epoch at their last one: num_epochs "
                                           "ended them while they were still improving, so more epochs may "
                                           "raise their scores")
    assert plots.still_improving(runs[1:]) == ""


def test_a_model_folder_that_names_several_training_runs_is_refused(tmp_path):
    """``outputs/02_pretraining_domains/toy/hier_lan/seed13`` fits one BERT-hier + LAN run per encoder: mcanb predict
    used to take the first silently; it names each instead, and the full row key picks one."""
    from mcanb import identity, runs
    from mcanb.errors import UserError
    result = tmp_path / "02_pretraining_domains" / "toy"
    made = {}
    for enc in ("general", "in_domain"):
        run = tmp_path / "runs" / enc / "hier_lan" / "0a0b0c0d" / "seed13"
        identity.write(run, identity.run_parts(data={"sha": "d"}, model={"model": enc}, train={}, seed=13))
        identity.record_use(result, run)
        made[enc] = run.resolve()
    with pytest.raises(UserError, match=r"names 2 training runs: .*general/hier_lan/seed13, .*in_domain/hier_lan/seed13"):
        runs.used_run(result / "hier_lan" / "seed13")
    assert runs.used_run(result / "in_domain" / "hier_lan" / "seed13") == made["in_domain"]


@pytest.mark.parametrize("text", ['["not", "a", "record"]', '{"identity": "x", "parts": {"seed": 13}}', "{not json"])
def test_a_hand_edited_identity_json_is_a_run_without_an_identity_not_a_traceback(tmp_path, text):
    """mcanb runs describes it as unreadable, and training treats the run as one to start afresh."""
    from mcanb import identity, runs
    run = tmp_path / "runs" / "caml" / "0123abcd" / "seed13"
    identity.write(run, identity.run_parts(data={"sha": "d"}, model={"model": "caml"}, train={}, seed=13))
    (run / identity.IDENTITY_FILE).write_text(text)
    assert identity.read(run) is None
    parts = identity.run_parts(data={"sha": "d"}, model={"model": "caml"}, train={}, seed=13)
    assert identity.differences(identity.read(run), parts) == ["no identity.json"]
    lines = []
    runs.main(outputs=tmp_path, echo=lines.append)
    assert "made from: unknown (identity.json is not the record mcanb writes: edited by hand?)" in lines[0]
    assert lines[-1].startswith("1 training runs in the run store") and lines[-1].endswith(", 1 unused")


@pytest.mark.parametrize("text", ['["runs/caml/0123abcd/seed13",]', '{"runs": ["runs/caml/0123abcd/seed13"]}',
                                  "[1, null]"])
def test_a_damaged_training_runs_json_stops_pruning_instead_of_freeing_its_runs(tmp_path, text):
    """A damaged list must not read as "this result uses no training run": --prune would delete what it uses."""
    from mcanb import identity, runs
    from mcanb.errors import DamagedOutput
    run = tmp_path / "runs" / "caml" / "0123abcd" / "seed13"
    identity.write(run, identity.run_parts(data={"sha": "d"}, model={"model": "caml"}, train={}, seed=13))
    result = tmp_path / "04_cnn_retraining" / "toy"
    result.mkdir(parents=True)
    (result / "metrics.json").write_text("{}")
    (result / identity.USES_FILE).write_text(text)
    with pytest.raises(DamagedOutput, match=r"04_cnn_retraining/toy/training_runs.json: not the list of training runs "
                                            r"mcanb writes.*mcanb study PROFILE"):
        runs.main(prune_unused=True, outputs=tmp_path, echo=lambda line: None)
    assert run.exists()
    assert identity.uses(tmp_path / "04_cnn_retraining" / "no_such_run") is None     # missing: trains nothing
