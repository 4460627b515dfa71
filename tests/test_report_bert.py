"""The report's Tables 2 and 5 rows (mcanb.report.bert_rows): the paper's rows with their numbers, this run's rows
with theirs, and every row that did not run says why."""
from __future__ import annotations

import json

from mcanb import report, study


def test_bert_rows_put_this_run_beside_the_papers_table(tmp_path, monkeypatch):
    run = tmp_path / "02_pretraining_domains" / "toy"
    run.mkdir(parents=True)
    m = {}
    for metric, v in (("macro_auc", 0.77), ("micro_auc", 0.83), ("macro_f1_caml", 0.49), ("micro_f1", 0.57),
                      ("p@5", 0.55)):
        key = "in_domain_mlm_on_training_notes/hier_lan"
        m.update({f"{key}/test/{metric}/mean": v, f"{key}/test/{metric}/sd": 0.01, f"{key}/seed13/{metric}": v,
                  f"{key}/seed14/{metric}": v})
    (run / "metrics.json").write_text(json.dumps({"metrics": m}))
    monkeypatch.setattr(report, "OUTPUTS", tmp_path)
    monkeypatch.setattr(report, "_status", lambda spec: ("done", {}))
    spec = next(s for s in study.load_profile("toy").runs if s.notebook == "02_pretraining_domains")
    rows = {(r["model"], r["metric"]): r for r in report.bert_rows(spec, tmp_path / "report")}
    mine = rows[("in-domain (MLM on training notes) · BERT-hier + LAN", "micro-F1")]
    assert abs(mine["this run"] - 57.0) < 1e-9 and mine["seeds"] == 2 and mine["paper"] is None and mine["difference"] is None
    base = rows[("BERT-base · BERT-hier + LAN", "micro-F1")]
    assert base["paper"] == 50.8 and "not in this run" in base["why"]
    missing = rows[("random init (no pretraining) · BERT-hier + LAN", "micro-F1")]
    assert "not in" in missing["why"]              # listed in the toy parameters, absent from metrics.json
    assert all(("this run" in r) != ("why" in r) for r in rows.values())   # a number or a reason, never a blank
    assert {r["table"] for r in rows.values()} == {"Table 2 (top-50 codes)"}
