"""README.md's result tables are written by `python run.py readme-figures` from the toy outputs, never by hand."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from mcanb import readme_figures as rf
from mcanb.paths import ROOT


def _toy_outputs(root, metrics, params):
    run = root / "04_cnn_retraining" / "toy"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"created": "2026-01-02T03:04:05+00:00", "metrics": metrics}))
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    fx = root / "fixtures" / "toy_mimic"
    fx.mkdir(parents=True)
    (fx / "fixture.json").write_text(json.dumps({"oracle": {"test_50": {"micro_f1": 0.8579}},
                                                 "baseline_most_frequent": {"test_50": {"micro_f1": 0.2491}}}))
    return root


def test_blocks_are_rewritten_from_metrics_json(tmp_path):
    metrics = {"caml/seed13/test/micro_f1": 0.67, "caml/seed14/test/micro_f1": 0.66,
               "caml/test/micro_f1/mean": 0.665, "caml/test/micro_f1/sd": 0.00707, "caml/test/macro_auc/mean": 0.82,
               "caml/test/macro_auc/sd": 0.01, "caml/test/p@5/mean": 0.6, "caml/test/p@5/sd": 0.0,
               "most_frequent/seed0/test/micro_f1": 0.249, "most_frequent/test/micro_f1/mean": 0.249,
               "most_frequent/test/micro_f1/sd": 0.0}
    outputs = _toy_outputs(tmp_path / "outputs", metrics, {"models": ["caml"], "baselines": ["most_frequent"],
                                                           "seeds": [13, 14], "num_epochs": 8, "num_threads": 1})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- figures:table6:start -->\nold numbers\n<!-- figures:table6:end -->\nmiddle\n"
                      "<!-- figures:fixture:start -->\n<!-- figures:fixture:end -->\nend\n")
    text = rf.update(readme, outputs, ("table6", "fixture"))
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("end\n") and "\nmiddle\n" in text
    assert "| CAML | 0.665 ± 0.007 | 0.820 | 0.600 |" in text
    assert "| most frequent codes | 0.249 |  |  |" in text      # one seed: no ±; metrics it lacks stay empty
    assert text.index("| CAML") < text.index("| most frequent")  # models, then baselines
    assert "seeds 13, 14, at most 8 epochs, 1 torch thread" in text
    assert "**0.858** and the floor **0.249**" in text
    assert text.count("Written by `python run.py readme-figures` on ") == 2
    assert rf.update(readme, outputs, ("table6", "fixture")) == text   # idempotent


def test_bert_block_gathers_notebooks_02_and_03(tmp_path):
    for nb, rows in (("02_pretraining_domains", {"in_domain/hier_lan": 0.57, "random_init/hier_lan": 0.6}),
                     ("03_hierarchy", {"in_domain/hier_lan": 0.57, "in_domain/trun_lan": 0.29})):
        m = {"most_frequent/test/micro_f1": 0.249}
        for key, f1 in rows.items():
            m.update({f"{key}/test/micro_f1/mean": f1, f"{key}/test/micro_f1/sd": 0.01,
                      f"{key}/test/macro_auc/mean": 0.8, f"{key}/test/p@5/mean": 0.5})
        (tmp_path / nb / "toy").mkdir(parents=True)
        (tmp_path / nb / "toy" / "metrics.json").write_text(json.dumps({"metrics": m}))
    body = rf.bert_block(tmp_path)
    assert "| in domain | BERT-hier + LAN | 0.570 ± 0.010 | 0.800 | 0.500 | 02 |" in body
    assert "| in domain | BERT-trun + LAN | 0.290 ± 0.010 | 0.800 | 0.500 | 03 |" in body
    assert body.count("| in domain | BERT-hier + LAN") == 1 and "floor 0.249" in body   # 03 reused 02's run


def test_missing_outputs_or_markers_are_errors_that_name_them(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- figures:table6:start -->\n<!-- figures:table6:end -->\n")
    with pytest.raises(rf.FiguresError, match=r"metrics.json: not found; run `python run.py toy`"):
        rf.update(readme, tmp_path / "nothing", ("table6",))
    with pytest.raises(rf.FiguresError, match="expected one '<!-- figures:fixture:start -->'"):
        rf.replace_block(readme.read_text(), "fixture", "x")


def test_readme_blocks_carry_the_stamp_of_the_command():
    """Each figure block of the committed README was written by the command (its stamp), not typed."""
    text = (ROOT / "README.md").read_text()
    for name in rf.BLOCKS:
        body = re.search(rf"<!-- figures:{name}:start -->\n(.*?)<!-- figures:{name}:end -->", text, re.S)
        assert body, f"README.md lacks the {name} block"
        assert re.search(r"<sub>Written by `python run.py readme-figures` on \d{4}-\d\d-\d\d from `outputs/",
                         body.group(1)), f"README.md: the {name} block was not written by the command"
