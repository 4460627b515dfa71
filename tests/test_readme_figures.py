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
    metrics = {"caml/test/micro_f1/seed13": 0.67, "caml/test/micro_f1/seed14": 0.66,
               "caml/test/micro_f1/mean": 0.665, "caml/test/micro_f1/sd": 0.00707, "caml/test/macro_auc/mean": 0.82,
               "caml/test/macro_auc/sd": 0.01, "caml/test/p@5/mean": 0.6, "caml/test/p@5/sd": 0.0,
               "most_frequent/test/micro_f1/mean": 0.249,
               "most_frequent/test/micro_f1/sd": 0.0}
    outputs = _toy_outputs(tmp_path / "outputs", metrics, {"models": ["caml"], "baselines": ["most_frequent"],
                                                           "seeds": [13, 14], "num_epochs": 8, "num_threads": 1})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- figures:table6:start -->\nold numbers\n<!-- figures:table6:end -->\nmiddle\n"
                      "<!-- figures:fixture:start -->\n<!-- figures:fixture:end -->\nend\n")
    text = rf.update(readme, outputs, ("table6", "fixture"))
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("end\n") and "\nmiddle\n" in text
    # the comparison table of notebook 04 and the report: the paper's rows, this run's under them, same columns
    assert "| source | model | stands for | macro-AUC | micro-AUC | macro-F1 | micro-F1 | P@5 | seeds |" in text
    assert "| Table 6 | CAML |  | 87.5 | 90.9 | 53.2 | 61.4 | 60.9 |  |" in text
    assert "| this run | CAML |  | 82.0 | – | – | 66.5 ± 0.7 | 60.0 | 2 |" in text   # ± only over several seeds
    assert "| this run | Most frequent codes | reference point, not in the paper | – | – | – | 24.9 | – | 1 |" in text
    assert text.index("| Table 6 | CAML") < text.index("| this run | CAML") < text.index("| this run | Most frequent")
    assert "| not run | HyperCore | not implemented in mcanb" in text and "Δ" not in text   # not MIMIC-III data
    assert "seeds 13, 14, at most 8 epochs, 1 torch thread" in text
    assert "**0.858** and the floor **0.249**" in text
    assert text.count("Written by `python run.py readme-figures` on ") == 2
    assert rf.update(readme, outputs, ("table6", "fixture")) == text   # idempotent


def test_bert_block_renders_tables_2_and_5(tmp_path):
    for nb, rows in (("02_pretraining_domains", {"in_domain_mlm_on_training_notes/hier_lan": 0.57,
                                                 "random_init_no_pretraining/hier_lan": 0.6}),
                     ("03_hierarchy", {"in_domain_mlm_on_training_notes/hier_lan": 0.57,
                                       "in_domain_mlm_on_training_notes/trun_lan": 0.29})):
        m = {"most_frequent/test/micro_f1/mean": 0.249, "most_frequent/test/micro_f1/sd": 0.0}
        for key, f1 in rows.items():
            m.update({f"{key}/test/micro_f1/mean": f1, f"{key}/test/micro_f1/sd": 0.01,
                      f"{key}/test/macro_auc/mean": 0.8, f"{key}/test/p@5/mean": 0.5})
        (tmp_path / nb / "toy").mkdir(parents=True)
        (tmp_path / nb / "toy" / "metrics.json").write_text(json.dumps({"metrics": m}))
    body = rf.bert_block(tmp_path)
    assert "**Table 2 (top-50 codes)" in body and "**Table 5 (top-50 codes)" in body and "Table 3" not in body
    assert ("| this run | in-domain (MLM on training notes) | in-domain (clinical) ↔ ClinicalBERT all notes | 80.0 | – "
            "| – | 57.0 | 50.0 | 1 |") in body
    assert "| Table 2 | ClinicalBERT all notes |  | 89.2 |" in body             # the row it stands in for
    assert "BERT-trun + LAN | no paper row" in body                            # Table 5 shows every architecture
    assert "| Table 2 | … 6 more rows of the paper |" in body


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
