"""mcanb.rehearse: the rehearsal of a real profile, on a scaled-down full-size fixture with tiny stand-in encoders."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from mcanb import cost, rehearsal_env, rehearse
from mcanb.study import StudyError, load_profile

HUB = ["bert-base-uncased", "emilyalsentzer/Bio_ClinicalBERT"]   # one uncased, one cased vocabulary


def tiny(hub_id: str):
    """The model card with small sizes: vocabulary / 40, one 48-wide layer (positions kept: 512)."""
    f = rehearse.encoder_facts(hub_id)
    return dataclasses.replace(f, vocab_size=f.vocab_size // 40, layers=1, hidden_size=48, heads=2,
                               intermediate_size=96)


def small_profile(path: Path) -> Path:
    """The real parameter files of mimic3-50 (preprocessing, Table 2, Table 6), with two encoders, two CNNs and one
    baseline (a few minutes; tests/test_study.py covers notebook 05 and the report in a study)."""
    runs = [{"notebook": "01_preprocess", "run": "mimic3_caml"},
            {"notebook": "02_pretraining_domains", "run": "mimic3_50", "params": {"encoders": HUB}},
            {"notebook": "04_cnn_retraining", "run": "mimic3_50_all", "seeds": [13, 14],
             "params": {"models": ["cnn", "caml"], "baselines": ["most_frequent"]},
             "reads": ["01_preprocess/mimic3_caml"]}]
    path.write_text(yaml.safe_dump({"description": "mimic3-50, small", "runs": runs}, sort_keys=False))
    return path


def test_encoder_facts_are_recorded_for_every_encoder_of_the_real_profiles():
    for profile in ("mimic3_50", "mimic3_full"):
        for spec in load_profile(profile).runs:
            for hub_id in rehearse._hub_encoders({"notebook": spec.notebook, "run": spec.run,
                                                  "params": spec.overrides}):
                f = rehearse.encoder_facts(hub_id)
                assert f.vocab_size > 20000 and f.hidden_size % f.heads == 0, hub_id
    with pytest.raises(ValueError, match="no recorded architecture"):
        rehearse.encoder_facts("someone/unknown-bert")


def test_derived_runs_substitute_only_the_inputs_seeds_and_precision(tmp_path):
    prof = load_profile("mimic3_50")
    runs = {e["notebook"] + "/" + e["run"]: e["params"] for e in
            rehearse.derived_runs(prof, tmp_path / "fx", tmp_path / "splits", cuda=False, batch_docs=1)}
    assert runs["01_preprocess/mimic3_caml"] == {"input_path": str(tmp_path / "fx"),
                                                 "splits_dir": str(tmp_path / "splits"), "verify_caml_splits": False}
    assert runs["02_pretraining_domains/mimic3_50"] == {"seeds": [13], "grad_accum_steps": 1, "batch_size": 1,
                                                        "amp": "off"}
    assert runs["04_cnn_retraining/mimic3_50_all"] == {"seeds": [13], "batch_size": 1}
    assert runs["05_frequency_analysis/mimic3_50"] == {}


def test_caps_apply_only_inside_a_rehearsal_folder(tmp_path, monkeypatch):
    from mcanb.train import TrainConfig

    cfg = TrainConfig()
    assert rehearsal_env.apply_caps(cfg, None, None, tmp_path) == (cfg, None, None)   # not rehearsing: unchanged
    monkeypatch.setenv(rehearsal_env.ENV, json.dumps({"max_steps": 2, "eval_docs": 4, "encoders": {"x/y": "/dir"}}))
    assert rehearsal_env.stand_in("x/y") == "/dir" and rehearsal_env.stand_in("bert-base-uncased") is None
    with pytest.raises(RuntimeError, match="must never land beside real results"):
        rehearsal_env.apply_caps(cfg, None, None, tmp_path)


def test_eval_splits_keep_train_and_cut_dev_and_test(tmp_path):
    src = tmp_path / "fx" / "splits"
    src.mkdir(parents=True)
    for split, n in (("train", 30), ("dev", 10), ("test", 12)):
        full = [f"{split}{i}" for i in range(n)]
        (src / f"{split}_full_hadm_ids.csv").write_text("\n".join(full) + "\n")
        (src / f"{split}_50_hadm_ids.csv").write_text("\n".join(full[::2]) + "\n")
    (src / "TOP_50_CODES.csv").write_text("4019\n")
    sizes = rehearse.eval_splits(tmp_path / "fx", tmp_path / "out", 3)
    # top-50 at CAML's shares of the full splits (8,066/47,723 train, 1,573/1,631 dev, 1,729/3,372 test)
    assert sizes == {"train_full": 30, "train_50": 5, "dev_full": 10, "dev_50": 5, "test_full": 12, "test_50": 6}
    read = lambda name: (tmp_path / "out" / name).read_text().split()  # noqa: E731
    assert read("train_full_hadm_ids.csv") == [f"train{i}" for i in range(30)]
    assert read("train_50_hadm_ids.csv") == [f"train{i}" for i in (0, 8, 14, 20, 28)]   # evenly spaced
    assert read("dev_50_hadm_ids.csv") == ["dev0", "dev4", "dev8"]
    assert set(read("dev_50_hadm_ids.csv")) <= set(read("dev_full_hadm_ids.csv"))   # top-50 stays in its full split
    assert len(read("test_full_hadm_ids.csv")) <= 6 and (tmp_path / "out" / "TOP_50_CODES.csv").exists()


@pytest.mark.slow
def test_rehearsal_runs_the_real_parameter_files_and_fails_loudly(tmp_path, capfd):
    root = tmp_path / "rehearsal"
    table = rehearse.rehearse_study(str(small_profile(tmp_path / "small.yaml")), scale=0.002, root=root, facts=tiny,
                                    echo=lambda s: None)
    text = table.read_text()
    for run in ("01_preprocess/mimic3_caml | done", "02_pretraining_domains/mimic3_50 | done",
                "04_cnn_retraining/mimic3_50_all | done",
                "runs/bert_base/hier_lan (top-50) | ", "runs/clinicalbert_all_notes/hier_lan (top-50) | ",
                "runs/cnn (top-50) | ", "runs/caml (top-50) | ",
                "projected from FLOPs at 40% MFU"):
        assert run in text, run
    assert "(2 × 200)" in text and "(3 × 20)" in text        # projections: the profile's seeds × num_epochs
    fits = sorted(p.parent for p in root.rglob(cost.COST_FILE))
    assert len(fits) == 4                                   # two encoders, two CNNs, one seed each
    for d in fits:
        c = json.loads((d / cost.COST_FILE).read_text())
        assert c["epoch_flops"] > c["flops_per_step"] > 0 and c["s_per_step"] > 0
        assert json.loads((d / "rehearsal.json").read_text())["max_steps"] == 1
    stand_ins = json.loads((root / "rehearsal.json").read_text())["encoders"]
    assert set(stand_ins) == set(HUB) and len(set(stand_ins.values())) == 2
    cased = json.loads((Path(stand_ins[HUB[1]]) / "config.json").read_text())
    assert cased["vocab_size"] == 28996 // 40 and cased["hidden_size"] == 48
    # settings the encoders do not fit (segments of 1,024 word pieces, the stand-ins' 512 positions) stop the
    # rehearsal: the same caps and stand-ins, so the runs that did not change (01, 04) are reused, and notebook 02's
    # run is refused by its check before any work (read from the stand-in's config.json), its finished run kept
    kept = {r: (root / r / "metrics.json").stat().st_mtime_ns
            for r in ("01_preprocess/mimic3_caml", "04_cnn_retraining/mimic3_50_all", "02_pretraining_domains/mimic3_50")}
    capfd.readouterr()
    with pytest.raises(StudyError, match="rehearsal of .* failed"):
        rehearse.rehearse_study(str(tmp_path / "small.yaml"), scale=0.002, root=root, facts=tiny,
                                extra={"02_pretraining_domains": {"segment_length": 1024}}, echo=lambda s: None)
    said = capfd.readouterr()
    assert "segment_length: 1024 word pieces do not fit the positions of" in said.out + said.err, said.err[-2000:]
    run = root / "02_pretraining_domains" / "mimic3_50"
    assert json.loads((run / ".mcanb-run.json").read_text())["status"] == "done"
    assert {r: (root / r / "metrics.json").stat().st_mtime_ns for r in kept} == kept
