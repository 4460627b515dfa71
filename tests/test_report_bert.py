"""The report's BERT tables (mcanb.reproduced.run_tables on a notebook-02 run folder): the paper's Tables 2 and 3 with
their numbers, this run's rows under them in the same columns with the paper rows they stand in for, one not-run line
per reason, and no difference column on data that is not MIMIC-III."""
from __future__ import annotations

import json
from pathlib import Path

from mcanb import comparison, published, report_items, reproduced


def _run(tmp_path, rows: dict[str, float]):
    run = tmp_path / "02_pretraining_domains" / "toy"
    run.mkdir(parents=True)
    m = {}
    for key, f1 in rows.items():
        for metric, v in (("macro_auc", 0.77), ("micro_auc", 0.83), ("macro_f1_caml", 0.49), ("micro_f1", f1),
                          ("p@5", 0.55)):
            m.update({f"{key}/test/{metric}/mean": v, f"{key}/test/{metric}/sd": 0.01, f"{key}/test/{metric}/seed13": v,
                      f"{key}/test/{metric}/seed14": v})
    (run / "metrics.json").write_text(json.dumps({"metrics": m}))
    return run


def test_bert_tables_put_this_run_under_the_papers_rows(tmp_path):
    run = _run(tmp_path, {"in_domain_mlm_on_training_notes/hier_lan": 0.57,
                          "general_mlm_on_english_docstrings/hier_lan": 0.41})
    values = {"label_space": "50", "encoders": ["general", "in-domain", "random"], "data_dir": None}
    tables = reproduced.run_tables("02_pretraining_domains", run, values)
    assert [(t.table, t.label_space) for t in tables] == [(2, "50"), (3, "50")]
    t2 = tables[0]
    assert [r.name for r in t2.paper] == list(dict.fromkeys(published.bert_frame(2).query("label_space == '50'")["encoder"]))
    assert t2.paper[0].values["micro_f1"] == 50.8                          # BERT-base as printed
    mine = {r.name: r for r in t2.this_run}
    ind = mine["in-domain (MLM on training notes)"]
    assert ind.source == "this run" and str(ind.values["micro_f1"]) == "57.0 ± 1.0" and ind.seeds == 2
    assert ind.stands_for == "in-domain (clinical) ↔ ClinicalBERT all notes"
    assert mine["general (MLM on English docstrings)"].stands_for == "general ↔ BERT-base"
    random = mine["random init (no pretraining)"]                          # asked for, but not in metrics.json
    assert random.source == "not run" and "no numbers in 02_pretraining_domains/toy/metrics.json" in random.note
    skipped = [r for r in t2.this_run if r.source == "not run" and "encoders" in r.note]
    assert len(skipped) == 1 and "BlueBERT" in skipped[0].name and "ClinicalBERT" not in skipped[0].name
    assert not t2.difference and not any(c.startswith("Δ") for c in t2.frame().columns)
    frame = t2.frame()
    assert set(frame["source"]) == {"paper", "this run", "not run"} and (frame["source"] == "this run").sum() == 2
    md = comparison.markdown(t2, "../metrics.json")
    assert "| this run | [in-domain (MLM on training notes)](../metrics.json) |" in md
    assert md.endswith(f"<sub>Table 2 as printed: {published.TABLE_NOTES[2]}</sub>\n")   # what a reader must know
    assert "Table 3 as printed: – marks a cell the paper's text leaves empty" in comparison.markdown(tables[1])
    assert comparison.DEV_THR_NOTE not in md                      # no row of this run has F1 at a dev threshold


def test_the_papers_rows_leave_the_dev_threshold_columns_empty_and_a_note_says_why(tmp_path):
    run = _run(tmp_path, {"in_domain_mlm_on_training_notes/hier_lan": 0.57})
    m = json.loads((run / "metrics.json").read_text())
    m["metrics"]["in_domain_mlm_on_training_notes/hier_lan/test/micro_f1@dev_threshold/mean"] = 0.6
    (run / "metrics.json").write_text(json.dumps(m))
    t2 = reproduced.run_tables("02_pretraining_domains", run, {"label_space": "50", "encoders": ["in-domain"]})[0]
    frame = t2.frame().set_index("source")
    assert set(frame.loc["paper", "micro-F1 (dev thr.)"]) == {""}          # the paper reports F1 at 0.5 only
    assert frame.loc["this run", "micro-F1 (dev thr.)"] == "60.0"
    md = comparison.markdown(t2)
    assert md.endswith(f"<sub>{comparison.DEV_THR_NOTE}</sub>\n") and "Table 2 as printed" in md


def test_a_run_that_did_not_finish_is_one_row_with_its_reason(tmp_path):
    run = tmp_path / "03_hierarchy" / "toy"
    values = {"label_space": "50", "encoders": ["in-domain"], "architectures": ["trun_fcn", "hier_lan"]}
    tables = reproduced.run_tables("03_hierarchy", run, values, status="run 03_hierarchy/toy never ran")
    assert [t.table for t in tables] == [5]      # one BERT-trun row, no more-data pair: Table 5 only
    for t in tables:
        assert len(t.this_run) == 1 and t.this_run[0].note == "run 03_hierarchy/toy never ran"


def test_table_4_stands_beside_a_run_that_fine_tuned_a_more_data_pair_under_bert_trun():
    """The paper's Table 4 asks whether more pretraining data helps BERT-trun + FCN: notebook 02 answers it with its
    more_data_pairs (top-50 only, as its cell "Fine-tuning" runs them); notebook 03 only when given both encoders of a
    pair; a single BERT-trun row of notebook 03 stands beside Table 5 alone."""
    nb02 = {"label_space": "50", "encoders": ["general", "in-domain", "in-domain-less"], "less_data": 0.25,
            "more_data_pairs": [["in-domain-less", "in-domain"]]}
    assert reproduced.tables_of("02_pretraining_domains", nb02) == [(2, "50"), (3, "50"), (4, "50")]
    assert reproduced.asked_rows("02_pretraining_domains", nb02) == [
        ("general", "hier_lan"), ("in-domain", "hier_lan"), ("in-domain-less", "hier_lan"),
        ("in-domain-less", "trun_fcn"), ("in-domain", "trun_fcn")]            # the general encoder has no pair
    keys = reproduced.requested_keys("02_pretraining_domains", nb02)
    assert [k for k in keys if k.endswith("/trun_fcn")] == ["in_domain_less_data_mlm_on_25_of_training_notes/trun_fcn",
                                                          "in_domain_mlm_on_training_notes/trun_fcn"]
    assert reproduced.tables_of("02_pretraining_domains", {**nb02, "label_space": "full"}) == [(2, "full"), (3, "full")]
    assert (4, "50") not in reproduced.tables_of("02_pretraining_domains", {**nb02, "more_data_pairs": []})
    nb03 = {"label_space": "50", "encoders": ["in-domain"], "architectures": ["trun_fcn", "hier_lan"]}
    assert reproduced.tables_of("03_hierarchy", nb03) == [(5, "50")]
    assert reproduced.tables_of("03_hierarchy", {**nb03, "encoders": ["in-domain-less", "in-domain"]}) == \
        [(4, "50"), (5, "50")]
    paper_pair = [published.BERT_ENCODERS["BioBERT abstract"], published.BERT_ENCODERS["BioBERT full text"]]
    assert reproduced.tables_of("03_hierarchy", {**nb03, "encoders": paper_pair, "architectures": ["trun_fcn"]}) == \
        [(4, "50"), (5, "50")]


def test_in_the_more_data_tables_a_less_data_row_stands_for_the_papers_less_data_encoders():
    """Table 3 pairs ClinicalBERT on discharge summaries (less) with ClinicalBERT on all notes (more): the local
    less-data encoder stands for the first, the encoder pretrained on every training note for the second; Table 2,
    which has only the second, maps both rows to it."""
    flat = {}
    for key, f1 in (("in_domain_mlm_on_training_notes/hier_lan", 0.5),
                    ("in_domain_less_data_mlm_on_25_of_training_notes/hier_lan", 0.4)):
        flat.update({f"{key}/test/micro_f1/mean": f1, f"{key}/test/micro_f1/sd": 0.0})
    results = comparison.measured(flat)
    said = {t: {r.name: r.stands_for for r in comparison.build(t, "50", results, data="the toy fixture").this_run}
            for t in (2, 3)}
    assert said[3]["in-domain, less data (MLM on 25 % of training notes)"] == "in-domain (clinical) ↔ ClinicalBERT disch. sum."
    assert said[3]["in-domain (MLM on training notes)"] == "in-domain (clinical) ↔ ClinicalBERT all notes"
    assert said[2]["in-domain, less data (MLM on 25 % of training notes)"] == "in-domain (clinical) ↔ ClinicalBERT all notes"


def test_the_difference_column_needs_mimic_data(tmp_path):
    results = comparison.measured({"cnn/test/micro_f1/mean": 0.66, "cnn/test/micro_f1/sd": 0.004,
                                   "cnn/test/micro_f1/seed1": 0.66, "cnn/test/micro_f1/seed2": 0.66})
    toy = comparison.build(6, "50", results, data="the toy fixture")
    mimic = comparison.build(6, "50", results, data="MIMIC-III")
    assert "Δ micro-F1" not in toy.frame().columns
    row = mimic.frame().query("source == 'this run'").iloc[0]
    assert row["model"] == "CNN (retrained)" and row["Δ micro-F1"] == "-1.1"   # 66.0 - 67.1
    assert row["Δ macro-AUC"] == ""                                        # no number of this run there


def test_data_source_tells_mimic_from_the_toy_fixture(tmp_path):
    for name, fixture in (("real", False), ("toy", True)):
        notes, data = tmp_path / name / "mimic", tmp_path / name / "data"
        notes.mkdir(parents=True)
        data.mkdir()
        if fixture:
            (notes / "fixture.json").write_text("{}")
        (data / "report.json").write_text(json.dumps({"input_format": "mimic3",
                                                      "input_files": {"NOTEEVENTS": str(notes / "NOTEEVENTS.csv.gz")}}))
        assert comparison.data_source(data) == ("the toy fixture" if fixture else "MIMIC-III")
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "report.json").write_text(json.dumps({"input_format": "table"}))
    assert comparison.data_source(tmp_path / "table") == "a coded-notes table"
    assert comparison.data_source(tmp_path / "nothing") == "unknown data"


def test_a_coded_notes_table_is_shown_without_the_papers_rows(tmp_path):
    """Another corpus (input_format: table): this run's rows only, no paper rows, no mapping onto the paper's models,
    no "not run" lines for the paper's encoders; a row the parameters asked for but that has no numbers stays."""
    run = _run(tmp_path, {"in_domain_mlm_on_training_notes/hier_lan": 0.57})
    data = tmp_path / "mycorpus"
    data.mkdir()
    (data / "report.json").write_text(json.dumps({"input_format": "table"}))
    values = {"label_space": "50", "encoders": ["in-domain", "random"], "data_dir": str(data)}
    for t in reproduced.run_tables("02_pretraining_domains", run, values):
        assert t.data == "a coded-notes table" and not t.with_paper and not t.paper and not t.difference
        assert f"Table {t.table})" in t.title and not t.title.startswith("Table")
        frame = t.frame()
        assert set(frame["source"]) <= {"this run", "not run"} and (frame["source"] == "this run").sum() == 1
        assert (frame["stands for"].iloc[0] == "") and "ClinicalBERT" not in comparison.markdown(t)
        assert [r.name for r in t.this_run if r.source == "not run"] == ["random init (no pretraining)"]
    cnn = comparison.build(6, "50", comparison.measured({"cnn/test/micro_f1/mean": 0.3, "cnn/test/micro_f1/sd": 0.0}),
                           data="a coded-notes table", requested=["cnn"])
    assert not cnn.original and [r.source for r in cnn.this_run] == ["this run"]
    assert comparison.shows_paper("the toy fixture") and comparison.shows_paper("MIMIC-III")
    empty = comparison.build(3, "50", {}, data="a coded-notes table")       # no less/more-data pair asked for
    assert empty.frame().empty and {"source", "model", "micro-F1"} <= set(empty.frame().columns)


def test_the_report_takes_a_less_data_twin_after_its_encoder():
    """metrics.json lists rows alphabetically, so the less-data twin comes first there; the domain verdict takes a
    domain's first encoder, so the report must put the twin after the encoder it halves (as the notebooks do)."""
    from mcanb import report_answers
    cell = comparison.Cell(50.0, 0.0, 1)
    measured = {k: {"micro_f1": cell} for k in ("in_domain_less_data_mlm_on_25_of_training_notes/hier_lan",
                                                "in_domain_mlm_on_training_notes/hier_lan",
                                                "random_init_no_pretraining/hier_lan")}
    rows, _ = report_answers._verdict_inputs(measured)
    assert [r.label for r in rows] == ["in-domain (MLM on training notes)", "random init (no pretraining)",
                                       "in-domain, less data (MLM on 25 % of training notes)"]
    assert comparison.less_data_twin("in_domain_less_data_mlm_on_25_of_training_notes/hier_lan")
    assert not comparison.less_data_twin("in_domain_mlm_on_training_notes/hier_lan")
    assert not comparison.less_data_twin("caml")


def test_the_reports_research_question_sentences_name_the_dev_tuned_micro_f1_as_the_notebooks_do():
    """Notebooks 02 and 03 print their verdicts on the paper's metrics and micro-F1 at the dev-tuned threshold; the
    report's RQ1 and RQ2 sentences must say the same (here without the runs' records: on the means)."""
    from mcanb import report_answers
    from mcanb.bert_verdicts import domain_verdict
    cells = lambda f1, tuned: {"micro_f1": comparison.Cell(f1, 0.0, 1),              # noqa: E731
                               "micro_f1@dev_threshold": comparison.Cell(tuned, 0.0, 1)}
    measured = {"in_domain_mlm_on_training_notes/hier_lan": cells(50.0, 52.0),
                "random_init_no_pretraining/hier_lan": cells(48.0, 53.0)}
    text = report_answers.as_text(report_answers.answer(domain_verdict, measured, None))
    assert text == ("BERT-hier + LAN: in-domain (MLM on training notes) is above random init (no pretraining) on micro-F1 (50.0 vs "
                    "48.0); random init (no pretraining) is ahead on micro-F1 (dev thr.) (53.0 vs 52.0).")


def test_the_reports_rq1_adds_the_more_data_verdict_on_the_runs_pairs():
    """Notebook 02 answers RQ1 with the domain verdict and the more-data verdict (Tables 3 and 4); the report's RQ1
    does too, pairing a local less-data twin with the in-domain encoder, and the paper's pairs where a run has both."""
    from mcanb import report_answers
    cell = lambda v: {"micro_f1": comparison.Cell(v, 0.0, 1)}        # noqa: E731
    measured = {"in_domain_less_data_mlm_on_25_of_training_notes/hier_lan": cell(46.0),
                "in_domain_mlm_on_training_notes/hier_lan": cell(50.0),
                "random_init_no_pretraining/hier_lan": cell(48.0)}
    text = report_answers.as_text(report_answers.answer(report_answers.pretraining_verdict, measured, None))
    assert text.splitlines() == [
        "BERT-hier + LAN: in-domain (MLM on training notes) is above random init (no pretraining) on micro-F1 (50.0 vs 48.0).",
        "BERT-hier + LAN: in-domain (MLM on training notes) is above in-domain, less data (MLM on 25 % of training "
        "notes) on micro-F1 (50.0 vs 46.0)."]
    rows, results = report_answers._verdict_inputs({k: v for k, v in measured.items() if "less_data" not in k})
    assert "\n" not in report_answers.pretraining_verdict(rows, results)        # no pair: the domain verdict alone
    hub = [{"row": f"{slug}/hier_lan", "encoder": label, "architecture": "hier_lan", "seed": 0, "test/micro_f1": v}
           for slug, label, v in (("a", "BioBERT abstract", 0.60), ("b", "BioBERT full text", 0.62))]
    assert report_answers.pretraining_verdict([], hub).endswith(
        "BERT-hier + LAN: BioBERT full text is above BioBERT abstract on micro-F1 (62.0 vs 60.0).")


def test_the_reports_verdicts_use_the_metrics_of_the_runs_label_space():
    """A full-code run reports P@8 and P@15, not the top-50 P@5: the report's sentences compare those."""
    from mcanb import report_answers
    from mcanb.bert_verdicts import domain_verdict
    cells = lambda v: {"p@8": comparison.Cell(v, 0.0, 1), "p@15": comparison.Cell(v - 10, 0.0, 1)}   # noqa: E731
    measured = {"in_domain_mlm_on_training_notes/hier_lan": cells(50.0),
                "random_init_no_pretraining/hier_lan": cells(48.0)}
    assert report_answers.as_text(report_answers.answer(domain_verdict, measured, None)) == (
        "BERT-hier + LAN: in-domain (MLM on training notes) is above random init (no pretraining) on P@8 (50.0 vs 48.0) and P@15 "
        "(40.0 vs 38.0).")


def test_the_report_names_results_without_a_run_record_and_shows_no_figure_for_them(tmp_path, monkeypatch):
    """A notebook run in JupyterLab (or by the notebook tests) writes its folder but no `.mcanb-run.json`: the report
    does not know what those numbers were computed from, so it shows none of them, no figure beside the question
    either. It says what each status means once, in "Not finished" with the command that runs them; the questions
    and the tables' rows name the run and its status only."""
    from mcanb import report
    from mcanb.study import Profile, RunSpec
    monkeypatch.setattr(report, "OUTPUTS", tmp_path)
    for nb in ("02_pretraining_domains", "03_hierarchy"):
        (tmp_path / nb / "toy" / "figures").mkdir(parents=True)
        (tmp_path / nb / "toy" / "figures" / ("fig_domains.png" if nb.startswith("02") else "fig_architectures.png")
         ).write_bytes(b"png")
    (tmp_path / "02_pretraining_domains" / "toy" / "metrics.json").write_text(json.dumps({"metrics": {}}))
    profile = Profile("p", tmp_path / "p.yaml", "Test profile.",
                      [RunSpec("02_pretraining_domains", "toy"), RunSpec("03_hierarchy", "toy")])
    data = report.gather(profile, tmp_path / "report")
    (q1, [text1], fig1), (q2, [text2], fig2) = data["questions"][:2]
    assert fig1 is None and fig2 is None
    assert text1 == ("Notebook 02 has not finished in this profile (02_pretraining_domains/toy: no run record), so "
                     "this run cannot answer it.")
    assert text2 == "Notebook 03 has not finished in this profile (03_hierarchy/toy: never ran), so this run cannot answer it."
    notes = {(r.name, r.note) for t in data["tables"] for r in t.this_run}
    assert notes == {("run 02_pretraining_domains/toy", "no run record"), ("run 03_hierarchy/toy", "never ran")}
    assert [r["status"] for r in data["runs"]] == ["no run record", "never ran"]
    lead, lines = report.unfinished(profile, data)
    assert lead.startswith("None of the profile's 2 runs has finished") and "`mcanb study p`" in lead
    assert lines == [f"no run record (02_pretraining_domains/toy): {report.STATUS_MEANS['no run record']}.",
                     "never ran (03_hierarchy/toy): not started yet."]
    for page in (report.render_md(profile, data, tmp_path), report.render_html(profile, data, tmp_path)):
        assert page.count("ran outside `mcanb run`") == 1 and page.count("Not finished") == 1
        assert "This profile does not run notebook 05." in page
        assert "None: no run of this profile has finished." in page
    (tmp_path / "03_hierarchy" / "toy" / "metrics.json").write_text(json.dumps({"metrics": {}}))
    monkeypatch.setattr(report, "read_record", lambda folder: {"status": "done"} if "03_hierarchy" in Path(folder).parts else None)
    data = report.gather(profile, tmp_path / "report")
    assert report.unfinished(profile, data)[0].startswith("1 of the profile's 2 runs has not finished, so")


def test_the_report_sets_each_answers_noise_clause_apart():
    """Each line of a question's answer is a list item; its noise clause (bert_verdicts.noise_clause) goes on a line
    of its own, in the note style on the page and after a hard line break in report.md."""
    from mcanb import report
    from mcanb.study import Profile
    line = "a is above b on micro-F1 (50.0 vs 48.0)."
    noise = " Beyond test-set noise (paired bootstrap over the 9 test notes): no difference."
    data = {"questions": [("RQ1", [f"{line}{noise}\nc is above d on P@5 (1.0 vs 0.5)."], None)], "tables": [],
            "figure3": [], "notebooks": [], "runs": [], "unfinished": {}, "figure3_missing": "none",
            "top": {"glance": [], "paper": {}, "limits": "", "glossary": ()}}
    profile = Profile("p", Path("p.yaml"), "Test profile.", [])
    page = report.render_html(profile, data, Path("."))
    assert (f"<ul><li>{line}<br><span class=\"note\">{noise.strip()}</span></li>"
            "<li>c is above d on P@5 (1.0 vs 0.5).</li></ul>") in page
    md = report.render_md(profile, data, Path("."))
    assert f"- {line}\\\n  {noise.strip()}\n- c is above d on P@5 (1.0 vs 0.5).\n" in md


def test_a_failed_runs_error_is_one_line_in_the_report(tmp_path, monkeypatch):
    """A failed run's error keeps its traceback's line breaks and may hold a ``|``: the report's status puts it on one
    line, cut to 160 characters, so the runs table keeps its rows."""
    from mcanb import report
    from mcanb.study import RunSpec
    monkeypatch.setattr(report, "OUTPUTS", tmp_path)
    monkeypatch.setattr(report, "read_record", lambda folder: {"status": "failed", "error": "ValueError: bad | value\n"
                                                               "  File x.py, line 3\n" + "y" * 300})
    status, _ = report._status(RunSpec("02_pretraining_domains", "toy"), set())
    assert status.startswith("failed: ValueError: bad / value File x.py, line 3 yyy") and "\n" not in status
    assert len(status) == len("failed: ") + 160 and status.endswith("…")


def test_the_report_shows_each_comparison_as_a_table():
    """A comparison of two rows (bert_verdicts.Pair) is a small table on both pages: the two rows' means, the better
    in bold, and the one-sided p, with a tick where the difference stands beyond test-set noise; the floor caveat
    above it. Without a noise test the p row is left out."""
    from mcanb.bert_verdicts import Pair
    pair = Pair("BERT-hier + LAN: ", "more", "less", {"micro_f1": 50.84, "p@5": 49.5, "macro_auc": float("nan")},
                {"micro_f1": 46.1, "p@5": 49.5, "macro_auc": 70.0}, ("macro_auc", "micro_f1", "p@5"),
                {"micro_f1": 0.0004}, "Read with care: less does not clear the floor.", "the line")
    head, rows = report_items.pair_cells(pair)
    assert head == ["micro-F1", "P@5"]                                   # a metric a row lacks is left out
    assert rows == [("more", [("50.8", True), ("49.5", False)]), ("less", [("46.1", False), ("49.5", False)]),
                    ("one-sided p (largest over seeds)", [("< 0.001 ✓", False), ("–", False)])]   # bold: the better value only
    md = report_items.md_item(pair)
    assert md.startswith("- BERT-hier + LAN: more vs less\\\n  Read with care: less does not clear the floor.\n")
    assert "  | more | **50.8** | 49.5 |\n" in md and "| one-sided p (largest over seeds) | < 0.001 ✓ | – |" in md
    page = report_items.html_item(pair)
    assert '<td class="n"><b>50.8</b></td>' in page and page.index("Read with care") < page.index("<table>")
    untested = report_items.pair_cells(Pair("", "a", "b", {"p@5": 1.0}, {"p@5": 2.0}, ("p@5",), {}, "", ""))[1]
    assert [label for label, _ in untested] == ["a", "b"]


def test_the_report_shows_every_row_against_the_floor_as_one_table():
    """The floor verdict (bert_verdicts.FloorRows) is one table on both pages: the floor's own row, then each row's
    mean and p per metric (cnn_scores.floor_table: "not above" where the mean is not above the floor's, "by its mean"
    where an AUC was not resampled), a cell beyond test-set noise in bold; a WARNING above it."""
    import pandas as pd

    from mcanb.bert_verdicts import FloorRows
    from mcanb.cnn_scores import floor_table
    check = pd.DataFrame([("a", "micro_f1@dev_threshold", 0.40, 0.25, 0.0004, True),
                          ("a", "macro_auc", 0.70, 0.50, float("nan"), True),
                          ("b", "micro_f1@dev_threshold", 0.26, 0.25, 0.061, False),
                          ("b", "macro_auc", 0.45, 0.50, float("nan"), False)],
                         columns=["model", "metric", "value", "floor", "p", "above"])
    rows = FloorRows(floor_table(check, {"a": "in · BERT-hier + LAN"}), "paired bootstrap", "the line",
                     "WARNING: b does not clear the floor.")
    head, cells = report_items.floor_cells(rows)
    assert head == ["micro-F1 (dev thr.)", "p", "macro-AUC", "p"]
    assert cells == [("most-frequent floor", [("25.0", False), ("", False), ("50.0", False), ("", False)]),
                     ("in · BERT-hier + LAN", [("40.0", False), ("< 0.001 ✓", True), ("70.0", False),
                                               ("by its mean ✓", True)]),
                     ("b", [("26.0", False), ("0.061", False), ("45.0", False), ("not above", False)])]
    md = report_items.md_item(rows)
    assert md.startswith("- Every row against the most-frequent floor") and "(paired bootstrap)." in md
    assert "\\\n  WARNING: b does not clear the floor.\n" in md
    assert "  | in · BERT-hier + LAN | 40.0 | **< 0.001 ✓** | 70.0 | **by its mean ✓** |\n" in md
    page = report_items.html_item(rows)
    assert "<td>most-frequent floor</td>" in page and page.index("WARNING") < page.index("<table>")


def test_rq3_compares_the_best_bert_row_with_the_best_cnn_family_model():
    """RQ3 is one comparison (a table like RQ1's and RQ2's): the best BERT row against the best CNN-family model by
    test micro-F1, the baselines left out, on every metric both have; without run folders the means only."""
    from mcanb import report_answers
    cell = lambda v: comparison.Cell(v, 0.0, 1)        # noqa: E731
    bert = {"in_domain_mlm_on_training_notes/hier_lan": {"micro_f1": cell(50.0), "p@5": cell(40.0)},
            "in_domain_mlm_on_training_notes/trun_fcn": {"micro_f1": cell(20.0), "p@5": cell(30.0)}}
    cnn = {"caml": {"micro_f1": cell(57.0), "p@5": cell(45.0), "macro_auc": cell(80.0)},
           "cnn": {"micro_f1": cell(55.0)}, "tfidf_lr": {"micro_f1": cell(60.0)}}
    pair, paper = report_answers.bert_vs_cnn(bert, cnn)
    assert (pair.a, pair.b, pair.metrics) == ("in-domain (MLM on training notes) · BERT-hier + LAN", "CAML",
                                              ("micro_f1", "p@5"))
    assert pair.line == ("The best BERT variant of this run, in-domain (MLM on training notes) · BERT-hier + LAN "
                         "(50.0 test micro-F1), does NOT beat the best CNN-family model, CAML (57.0).")
    assert pair.ps == {} and paper.startswith("Paper, top-50 codes (Table 2 vs Table 6): PubMedBERT full text")
    assert report_answers.bert_vs_cnn({}, cnn)[0].startswith("This run lacks a BERT run (notebooks 02/03) to compare.")


def test_the_report_opens_with_each_comparison_at_a_glance_and_the_toys_limits():
    """The report's top (mcanb.report_glance): one line per comparison (who is ahead on how many metrics, and which
    differences stand beyond test-set noise), one per floor table (how many rows clear it, per metric), the paper's
    own answers to RQ1 and RQ2, and, on the toy fixture, what the run is, from its own parameters."""
    import pandas as pd

    from mcanb import report_glance
    from mcanb.bert_verdicts import FloorRows, Pair
    from mcanb.cnn_scores import floor_table
    pair = Pair("BERT-hier + LAN: ", "more", "less", {"micro_f1": 50.84, "p@5": 49.5, "macro_auc": 70.0},
                {"micro_f1": 46.1, "p@5": 49.5, "macro_auc": 71.0}, ("macro_auc", "micro_f1", "p@5"),
                {"micro_f1": 0.0004, "macro_auc": 0.2}, "", "the line")
    untested = Pair("", "a", "b", {"p@5": 1.0}, {"p@5": 2.0}, ("p@5",), {}, "", "")
    check = pd.DataFrame([("a", "micro_f1@dev_threshold", 0.40, 0.25, 0.0004, True),
                          ("b", "micro_f1@dev_threshold", 0.26, 0.25, 0.061, False)],
                         columns=["model", "metric", "value", "floor", "p", "above"])
    floor = FloorRows(floor_table(check), "paired bootstrap", "the line")
    lines = report_glance.glance([("RQ1", [pair, "a sentence", floor], None), ("RQ3", [untested], None)])
    assert lines == [
        {"question": "RQ1", "comparison": "BERT-hier + LAN: more vs less",
         "ahead": "more on 1 of 3 (micro-F1); less on 1 of 3 (macro-AUC)", "beyond test-set noise": "micro-F1"},
        {"question": "RQ1", "comparison": "2 rows against the most-frequent floor",
         "ahead": "rows above it beyond noise: 1 on micro-F1 (dev thr.)", "beyond test-set noise": "see its table"},
        {"question": "RQ3", "comparison": "a vs b", "ahead": "b on 1 of 1 (P@5)",
         "beyond test-set noise": "not tested (no predictions at hand)"}]
    said = report_glance.paper_says("50")
    assert said["RQ1"][0].startswith("Paper, Table 2 (top-50 codes)") and len(said["RQ1"]) == 3
    assert "more pretraining data scores higher in 13 of 15 comparisons" in said["RQ1"][2]
    assert said["RQ2"][0].startswith("Paper, Table 5: BERT-hier + FCN above BERT-trun + FCN")
    assert report_glance.paper_says("full")["RQ2"] == []                   # Table 5 is top-50 only
    values = {"02_pretraining_domains": {"mlm_layers": 2, "mlm_hidden_size": 64, "mlm_steps": 80, "max_words": 256,
                                         "segment_length": 64, "seeds": [13], "data_dir": "x"},
              "04_cnn_retraining": {"seeds": [13, 14]}}
    counts = {"documents": 1000, "50/train": 698, "50/dev": 150, "50/test": 149}
    top = report_glance.gather_top([], values, counts, "the toy fixture")
    assert top["limits"].startswith("This is a teaching run on the toy fixture: synthetic MIMIC-shaped notes (1000 "
                                    "admissions; 698 / 150 / 149 train / dev / test on the top-50 codes)")
    assert "local encoders of 2 layers × 64 pretrained for 80 masked-word steps" in top["limits"]
    assert "seeds per row: 02 1, 04 2" in top["limits"]
    assert report_glance.gather_top([], values, counts, "MIMIC-III")["limits"] == ""
    md = "\n".join(report_glance.render_top_md(top))
    assert md.startswith("## At a glance\n") and "- **most-frequent floor**: every note gets the same scores" in md
    assert '<p class="limits">This is a teaching run' in report_glance.render_top_html(top)


def test_the_reports_floor_rows_follow_the_runs_encoders_not_the_folder_names():
    """The run store's folders sort the less-data twin before its encoder; the report lists rows as the parameters
    name the encoders, each encoder's architectures together."""
    from mcanb import report_answers
    from mcanb.reproduced import requested_keys
    values = {"encoders": ["general", "in-domain", "in-domain-less", "random"], "less_data": 0.25,
              "label_space": "50", "more_data_pairs": [["in-domain-less", "in-domain"]]}
    keys = requested_keys("02_pretraining_domains", values)
    records = [{"row": k, "seed": "seed13"} for k in sorted(keys)]
    assert [r["row"] for r in report_answers._in_run_order(records, keys)] == [
        "general_mlm_on_english_docstrings/hier_lan", "in_domain_mlm_on_training_notes/hier_lan",
        "in_domain_mlm_on_training_notes/trun_fcn", "in_domain_less_data_mlm_on_25_of_training_notes/hier_lan",
        "in_domain_less_data_mlm_on_25_of_training_notes/trun_fcn", "random_init_no_pretraining/hier_lan"]
