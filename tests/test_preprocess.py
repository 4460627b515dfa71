"""Preprocessing on a hand-made MIMIC-III folder whose every outcome is worked out by hand, plus bad input."""
from __future__ import annotations

import csv
import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from mcanb import coded_table, data, preprocess, processed

NOTE_HEADER = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
               "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
# (ROW_ID, SUBJECT_ID, HADM_ID, CATEGORY, DESCRIPTION, ISERROR, TEXT)
NOTES = [
    (11, 1, "101", "Discharge summary", "Addendum", "", "Addendum: Pt's BP 120/80, stable."),
    (10, 1, "101", "Discharge summary", "Report", "", "Admission Date: [**2151-7-16**]\nHypertension, \"essential\" 25 mg"),
    (12, 1, "101", "Nursing/other", "Report", "", "nursing words never kept"),
    (20, 2, "102", "Discharge summary", "Report", "", "Long-term anticoagulants; fall"),
    (30, 3, "103", "Discharge summary", "Report", "1", "Septicemia m² cafe\u0301"),
    (40, 4, "104", "Physician ", "Report", "", "no discharge summary for this admission"),
    (50, 5, "", "Discharge summary", "Report", "", "note without an admission"),
    (60, 6, "105", "Discharge summary", "Report", "", "only an empty code"),
    (70, 7, "106", "Discharge summary", "Report", "", "admission outside every split"),
    (80, 8, "107", "Discharge summary", "Report", "", "123 456"),
]
DIAGNOSES = [(1, 1, 101, 1, "4019"), (2, 1, 101, 2, "4019"), (3, 2, 102, 1, "V5861"), (4, 2, 102, 2, "E8889"),
             (5, 2, 102, 3, ""), (6, 3, 103, 1, "0389"), (7, 4, 104, 1, "4280"), (8, 6, 105, 1, ""),
             (9, 7, 106, 1, "4019"), (10, 8, 107, 1, "4019")]
PROCEDURES = [(1, 1, 101, 1, "9671"), (2, 3, 103, 1, "0117")]
SPLITS = {"train": [101, 105, 107], "dev": [102], "test": [103, 999]}


def write_csv_gz(path, header, rows):
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)


def make_mimic(root, notes=NOTES, diagnoses=DIAGNOSES, procedures=PROCEDURES):
    root.mkdir(parents=True, exist_ok=True)
    write_csv_gz(root / "NOTEEVENTS.csv.gz", NOTE_HEADER,
                 [(r, s, h, "2151-07-20", "", "", c, d, "", e, t) for r, s, h, c, d, e, t in notes])
    write_csv_gz(root / "DIAGNOSES_ICD.csv.gz", data.CODE_COLUMNS, diagnoses)
    write_csv_gz(root / "PROCEDURES_ICD.csv.gz", data.CODE_COLUMNS, procedures)
    write_csv_gz(root / "D_ICD_DIAGNOSES.csv.gz", data.DESCRIPTION_COLUMNS,
                 [(1, "4019", "Hypertension NOS", "Unspecified essential hypertension")])
    (root / "splits").mkdir(exist_ok=True)
    for s, ids in SPLITS.items():
        (root / "splits" / f"{s}_full_hadm_ids.csv").write_text("".join(f"{i}\n" for i in ids))
    return root


def run(tmp_path, raw=None, **kw):
    raw = raw or make_mimic(tmp_path / "mimic")
    cfg = preprocess.PreprocessConfig(input_path=str(raw), out_dir=str(tmp_path / "out"), top_k=2,
                                      vocab_min_docs=1, word2vec=False, progress=False, **kw)
    return preprocess.run(cfg), tmp_path / "out"


def test_hand_computed_documents_codes_and_drops(tmp_path):
    report, out = run(tmp_path)
    c = report["counts"]
    assert c["notes_total"] == 10 and c["discharge_notes"] == 8
    assert c["notes_by_category"]["Physician "] == 1          # MIMIC's trailing space is kept verbatim
    assert c["admissions_with_discharge"] == 6 and c["admissions_with_addenda"] == 1
    assert c["iserror_discharge_notes"] == 1                    # kept, as in CAML
    assert c["empty_code_rows"] == 2 and c["duplicate_code_rows"] == 1
    assert report["dropped"] == {
        "discharge_note_without_hadm_id": 1, "duplicate_note": 0, "empty_code_row": 2, "empty_text": 1, "no_code_rows": 0,
        "full/no_labels/train": 1, "full/no_labels/dev": 0, "full/no_labels/test": 0,
        "50/no_top_code/train": 1, "50/no_top_code/dev": 1, "50/no_top_code/test": 0,
        "not_in_split": 1, "split_id_without_document/full/test": 1,
        "split_id_without_document/full/dev": 0, "split_id_without_document/full/train": 0}
    full = processed.load(out, "full")
    train = full.frames["train"]
    assert train["hadm_id"].tolist() == [101]
    # report (ROW_ID 10) before addendum (ROW_ID 11); numbers and punctuation gone; nursing note not used
    assert train["text"][0] == ("admission date hypertension essential mg addendum pt s bp stable")
    assert train["codes"][0] == ["401.9", "96.71"]               # duplicate 4019 row counted once here
    assert full.frames["dev"]["codes"][0] == ["E888.9", "V58.61"]
    assert full.frames["test"]["codes"][0] == ["01.17", "038.9"]
    assert full.codes == ["01.17", "038.9", "401.9", "96.71", "E888.9", "V58.61"]
    assert full.frames["test"]["text"][0] == "septicemia m² cafe"  # Python re: m² kept, accent splits
    # top-2 by rows over all documents: 401.9 (2 rows of 101) then ties at 1 broken by code string
    assert report["top_codes"] == ["401.9", "01.17"]
    fifty = processed.load(out, "50")
    assert fifty.codes == ["01.17", "401.9"] and len(fifty.frames["dev"]) == 0
    dropped = pd.read_csv(out / "dropped.csv")
    assert set(dropped.loc[dropped.reason == "not_in_split", "id"]) == {106}
    assert set(dropped.loc[dropped.reason == "empty_text", "id"]) == {107}
    labels = pd.read_csv(out / "full" / "labels.csv", keep_default_na=False)
    assert labels.set_index("code").loc["401.9", "description"] == "Unspecified essential hypertension"
    assert labels.set_index("code").loc["96.71", "description"].startswith("Continuous mechanical ventilation for less than 96")


def test_caml_compat_reproduces_the_int_cast(tmp_path):
    report, out = run(tmp_path, caml_compat=True)
    full = processed.load(out, "full")
    assert full.frames["test"]["codes"][0] == ["038.9", "11.7"]    # 0117 -> 117 -> 11.7
    labels = full.labels.set_index("code")
    assert labels.loc["11.7", "artefact"] == "int_cast" and labels.loc["401.9", "artefact"] == ""
    assert report["counts"]["artefact_labels"] == {"int_cast": 1}


def test_iserror_drop_and_token_rule_are_options(tmp_path):
    report, out = run(tmp_path, drop_iserror=True, token_rule="alpha")
    assert report["dropped"]["iserror_note"] == 1
    loaded = processed.load(out, "full")
    assert "test" in loaded.frames and len(loaded.frames["test"]) == 0
    assert (loaded.token_rule, loaded.regex_engine) == ("alpha", "re")  # the tokenisation travels with the data
    (out / "preprocess_config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="preprocess_config.yaml"):
        processed.load(out, "full")


def test_config_from_params_takes_fields_by_name_with_the_notebooks_defaults():
    from mcanb.params import notebook_defaults
    from mcanb.paths import NOTEBOOKS

    defaults = notebook_defaults(NOTEBOOKS / "01_preprocess.ipynb")
    cfg = preprocess.config_from_params(defaults, input_path="raw", out_dir="out")
    assert cfg == preprocess.PreprocessConfig(input_path="raw", out_dir="out")  # one default per setting
    picked = preprocess.config_from_params({"top_k": 20, "token_rule": "alpha", "run_name": "x"},
                                           input_path="raw", out_dir="out")
    assert (picked.top_k, picked.token_rule) == (20, "alpha")


def test_caml_format_files_and_rerun_is_skipped(tmp_path):
    report, out = run(tmp_path)
    caml = pd.read_csv(out / "full" / "train_full.csv", dtype=str)
    assert list(caml.columns) == ["SUBJECT_ID", "HADM_ID", "TEXT", "LABELS", "length"]
    assert caml["LABELS"][0] == "401.9;96.71"
    assert (out / "preprocess_config.yaml").exists()
    assert (out / "vocab.csv").read_text().split("\n")[0] == "addendum"
    before = (out / "report.json").stat().st_mtime_ns
    again, _ = run(tmp_path, raw=tmp_path / "mimic")
    assert again == json.loads((out / "report.json").read_text())
    assert (out / "report.json").stat().st_mtime_ns == before



def test_a_finished_preprocessing_is_reused_only_for_the_same_input_bytes_and_code(tmp_path, monkeypatch):
    """Same settings are not enough: another byte in a table or a split file, or another version of the code that
    preprocesses, runs it again (the notebooks that read the output then see what an empty folder would give)."""
    from mcanb import identity
    first, out = run(tmp_path)
    stamp = (out / "report.json").stat().st_mtime_ns

    def rerun():
        nonlocal stamp
        run(tmp_path, raw=tmp_path / "mimic")
        changed, stamp = (out / "report.json").stat().st_mtime_ns != stamp, (out / "report.json").stat().st_mtime_ns
        return changed
    assert not rerun()
    with monkeypatch.context() as m:
        m.setattr(identity, "code_version", lambda *roots, **kw: "edited")
        assert rerun()
    assert rerun()                                                   # back to this code: computed again
    make_mimic(tmp_path / "mimic", notes=NOTES[:-1])                 # one note fewer, same settings
    assert rerun() and json.loads((out / "report.json").read_text())["counts"]["notes_total"] == 9
    split = next((tmp_path / "mimic" / "splits").glob("*"))
    split.write_text(split.read_text() + "\n")
    assert rerun() and not rerun()


def test_word2vec_is_reproducible_and_aligned(tmp_path):
    raw = make_mimic(tmp_path / "mimic")
    embs = []
    for i in range(2):
        cfg = preprocess.PreprocessConfig(input_path=str(raw), out_dir=str(tmp_path / f"o{i}"), top_k=2,
                                          vocab_min_docs=1, progress=False)
        preprocess.run(cfg)
        embs.append(np.load(tmp_path / f"o{i}" / "embeddings.npy"))
    assert np.array_equal(embs[0], embs[1])
    vocab = (tmp_path / "o0" / "vocab.csv").read_text().split()
    assert embs[0].shape == (len(vocab) + 2, 100)
    assert not embs[0][0].any()                                   # PAD is zero
    assert np.allclose(np.linalg.norm(embs[0][1:], axis=1), 1, atol=1e-4)
    line = (tmp_path / "o0" / "processed_full.embed").read_text().split("\n")[0].split()
    assert line[0] == vocab[0] and len(line) == 101


# ------------------------------------------------------------------------------------- bad input
def test_missing_folder_file_and_column(tmp_path):
    with pytest.raises(data.DataError, match="folder not found"):
        run(tmp_path, raw=tmp_path / "nope")
    raw = make_mimic(tmp_path / "m1")
    (raw / "PROCEDURES_ICD.csv.gz").unlink()
    with pytest.raises(data.DataError, match="PROCEDURES_ICD.csv.gz or PROCEDURES_ICD.csv not found"):
        run(tmp_path, raw=raw)
    raw = make_mimic(tmp_path / "m2")
    write_csv_gz(raw / "DIAGNOSES_ICD.csv.gz", ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM"], [(1, 1, 101, 1)])
    with pytest.raises(data.DataError, match=r"DIAGNOSES_ICD.csv.gz: missing column\(s\) \['ICD9_CODE'\]"):
        run(tmp_path, raw=raw)


def test_unreadable_gzip_and_malformed_rows(tmp_path):
    raw = make_mimic(tmp_path / "m1")
    (raw / "NOTEEVENTS.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(data.DataError, match="NOTEEVENTS.csv.gz: cannot be read as gzip"):
        run(tmp_path, raw=raw)
    raw = make_mimic(tmp_path / "m2")
    with gzip.open(raw / "NOTEEVENTS.csv.gz", "wt") as f:
        f.write(",".join(NOTE_HEADER) + "\n1,1,101,x,x,x,Discharge summary,Report\n")
    with pytest.raises(data.DataError, match="NOTEEVENTS.csv.gz: not a readable.*expected 11 fields, found 8"):
        run(tmp_path, raw=raw)


def test_wrong_types_name_the_row_and_field(tmp_path):
    bad = [n if n[0] != 20 else (20, 2, "10x2", *n[3:]) for n in NOTES]
    raw = make_mimic(tmp_path / "m1", notes=bad)
    with pytest.raises(data.DataError, match=r"NOTEEVENTS.csv.gz, record 3 \(line 6, ROW_ID 20\), field HADM_ID: "
                                             r"expected an integer or empty, got '10x2'"):
        run(tmp_path, raw=raw)
    raw = make_mimic(tmp_path / "m2", diagnoses=DIAGNOSES + [(11, "one", 101, 3, "4019")])
    with pytest.raises(data.DataError, match=r"DIAGNOSES_ICD.csv.gz, record 10 \(line 12, ROW_ID 11\), field SUBJECT_ID"):
        run(tmp_path, raw=raw)


def test_output_never_goes_next_to_raw_data(tmp_path):
    raw = make_mimic(tmp_path / "mimic")
    cfg = preprocess.PreprocessConfig(input_path=str(raw), out_dir=str(raw / "processed"), progress=False)
    with pytest.raises(ValueError, match="inside the raw data folder"):
        preprocess.run(cfg)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="w2v_corpus"):
        preprocess.PreprocessConfig(input_path="x", out_dir="y", w2v_corpus="everything")


# ------------------------------------------------------------------------------ coded-notes table
def _table(tmp_path, rows, name="notes.csv"):
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=["id", "text", "codes", "split"]).to_csv(path, index=False)
    return path


def test_table_input_passes_icd10_codes_through(tmp_path):
    path = _table(tmp_path, [(1, "Type 2 diabetes, E11.9", "E11.9;I10", "train"),
                             (2, "Hypertension", "I10", "dev"), (3, "Hyperlipidemia 2020", "E78.00", "test")])
    cfg = preprocess.PreprocessConfig(input_path=str(path), out_dir=str(tmp_path / "out"), input_format="table",
                                      top_k=2, vocab_min_docs=1, word2vec=False, progress=False)
    report = preprocess.run(cfg)
    full = processed.load(tmp_path / "out", "full")
    assert full.codes == ["E11.9", "E78.00", "I10"]              # no ICD-9 dot rule mangling
    assert full.frames["train"]["text"][0] == "type diabetes e11"
    assert report["counts"]["full"] == {"train": 1, "dev": 1, "test": 1, "labels": 3}


def test_table_string_ids_are_numbered_by_rank_and_listed(tmp_path):
    rows = [("RAD-7", "pneumonia seen", "J18.9", "train"), ("ED-12", "heart failure", "I50.9;I10", "train"),
            ("ED-3", "hypertension noted", "I10", "dev"), ("17", "chest pain today", "R07.9", "test")]
    table, counts, _ = coded_table.read_coded_table(_table(tmp_path, rows))
    assert counts["string_ids"] == 4
    assert dict(zip(table["id"], table["hadm_id"])) == {"17": 1, "ED-12": 2, "ED-3": 3, "RAD-7": 4}  # sorted names
    cfg = preprocess.PreprocessConfig(input_path=str(_table(tmp_path, rows[::-1])), out_dir=str(tmp_path / "out"),
                                      input_format="table", vocab_min_docs=1, word2vec=False, progress=False)
    preprocess.run(cfg)                                  # row order does not change the numbers
    ids = pd.read_csv(tmp_path / "out" / "document_ids.csv", dtype={"id": str})
    assert ids.to_dict("list") == {"hadm_id": [1, 2, 3, 4], "id": ["17", "ED-12", "ED-3", "RAD-7"]}
    assert sorted(processed.load(tmp_path / "out", "full").frames["train"]["hadm_id"]) == [2, 4]


@pytest.mark.parametrize("rows, message", [
    ([(1, "a", "X", "training")], r"row 0 \(line 2\), field split: expected train, dev or test \(any case\), "
                                  r"got 'training'"),
    ([(1, "a", "X", "train"), (1, "b", "Y", "dev"), (2, "c", "Z", "test")],
     r"row 1 \(line 3\), field id: id 1 is also on row 0"),
    ([("x1", "a", "X", "train"), ("", "b", "Y", "dev")], r"row 1 \(line 3\), field id: expected an id \(a string or an "
                                                         r"integer\), got an empty cell"),
])
def test_table_errors_name_row_and_field(tmp_path, rows, message):
    path = _table(tmp_path, rows)
    with pytest.raises(data.DataError, match=message):
        coded_table.read_coded_table(path)


def test_duplicate_string_id_is_named_as_the_file_writes_it(tmp_path):
    rows = [("ED-51590", "a", "X", "train"), ("RAD-2", "b", "Y", "dev"), ("ED-51590", "c", "Z", "test")]
    with pytest.raises(data.DataError, match=r"row 2 \(line 4\), field id: id ED-51590 is also on row 0 \(line 2\)"):
        coded_table.read_coded_table(_table(tmp_path, rows))


@pytest.mark.parametrize("codes", ["['A41.9']", "['A41.9', 'I10']", '["A41.9"]', "A41.9;'I10'", "[A41.9]"])
def test_codes_written_as_a_python_list_are_refused(tmp_path, codes):
    rows = [(1, "sepsis", "A41.9", "train"), (2, "sepsis again", codes, "dev"), (3, "fever", "R50.9", "test")]
    path = _table(tmp_path, rows)
    with pytest.raises(data.DataError, match=r"notes.csv, row 1 \(line 3\), field codes: .*contains brackets or "
                                             r"quotes.*expected codes separated by ';' \(e.g. A41.9;I10\)"):
        coded_table.read_coded_table(path)


@pytest.mark.parametrize("splits, message", [
    (["validation"] * 3, r"row 0 \(line 2\), field split: expected train, dev or test \(any case\), got 'validation'"
                         r"; unknown names and their row counts: \{'validation': 3\}"),
    (["train", "Dev ", "train"], r"field split: no test rows \(rows per split: \{'train': 2, 'dev': 1, 'test': 0\}\)"),
    ([" Train", "DEV", "test"], None),
])
@pytest.mark.parametrize("name", ["notes.csv", "notes.parquet"])
def test_split_problems_are_found_from_the_split_column_alone(tmp_path, splits, message, name):
    """``split_problem`` (for the checks before a run) says what ``read_coded_table`` would stop on."""
    df = pd.DataFrame({"Split": splits, "ID": ["a", "b", "c"], "text": ["x", "y", "z"], "codes": ["A", "B", "C"]})
    path = tmp_path / name
    df.to_parquet(path, index=False) if name.endswith(".parquet") else df.to_csv(path, index=False,
                                                                                 encoding="utf-8-sig")   # a BOM before "Split"
    found = coded_table.split_problem(path)
    if message is None:
        assert found is None
        return
    assert found is not None and re.search(message.replace(r" \(line 2\)", "(?: \\(line 2\\))?"), found), found
    with pytest.raises(data.DataError) as e:
        coded_table.read_coded_table(path)
    assert str(e.value) == found                                    # the same message as the preprocessing's


def test_a_table_that_cannot_be_read_is_left_to_the_preprocessing(tmp_path):
    assert coded_table.split_problem(tmp_path / "absent.csv") is None


def test_a_large_share_of_dropped_documents_is_a_warning(tmp_path):
    rows = [(i, "" if i % 10 < 6 else f"chest pain {i}", "I10", ["train", "dev", "test"][i % 3]) for i in range(30)]
    cfg = preprocess.PreprocessConfig(input_path=str(_table(tmp_path, rows)), out_dir=str(tmp_path / "out"),
                                      input_format="table", vocab_min_docs=1, word2vec=False, progress=False)
    with pytest.warns(UserWarning, match=r"18 of 30 documents \(60 %\) were dropped as empty_text: their text is "
                                         r"empty.*dropped.csv"):
        report = preprocess.run(cfg)
    assert report["dropped"]["empty_text"] == 18 and len(report["warnings"]) == 1
    assert json.loads((tmp_path / "out" / "report.json").read_text())["warnings"] == report["warnings"]


def test_drop_warnings_take_each_reasons_own_records():
    from mcanb.preprocess_report import drop_warnings

    counts = {"discharge_notes": 100, "admissions_with_discharge": 50, "code_rows_of_documents": 1000}
    dropped = {"duplicate_note": 10, "not_in_split": 4, "empty_code_row": 100, "50/no_top_code/train": 40,
               "empty_text": 0, "full/no_labels/train": 5}
    found = drop_warnings(dropped, counts)
    assert [w.split(":")[0] for w in found] == [
        "10 of 100 discharge notes (10 %) were dropped as duplicate_note", "100 of 1000 code rows (10 %) were dropped "
        "as empty_code_row", "5 of 50 documents (10 %) were dropped as full/no_labels/train"]   # 50/: by design
    assert drop_warnings({"empty_text": 59}, {"documents_in_table": 600}) == []               # under 10 %
    split_files = drop_warnings({"split_id_without_document/full/test": 300}, {"split_ids": {"full/test": 400}})
    assert split_files[0].startswith("300 of 400 ids of the full/test split file (75 %) were dropped")


def test_the_mimic3_reference_counts_the_top_codes_in_camls_list():
    """On MIMIC-III the recounted top-50 codes are checked against CAML's shipped list, as a count beside the others."""
    from mcanb.codes import caml_top50
    from mcanb.preprocess_report import compare_mimic3

    counts = {"admissions_with_discharge": 52726, "full": {"labels": 8921}, "50": {"train": 8066}}
    key = "50/codes in CAML's top-50 list"
    caml = caml_top50()
    assert compare_mimic3(counts, True, sorted(caml))[key] == {"expected": 50, "got": 50, "match": True}
    one_off = compare_mimic3(counts, True, [*caml[:49], "401.1"])       # a tie at the 50th place broken otherwise
    assert one_off[key] == {"expected": 50, "got": 49, "match": False}
    assert compare_mimic3(counts, True, caml[:20])[key]["got"] is None    # top_k 20: not CAML's setting
    assert compare_mimic3(counts, True)["admissions_with_discharge"]["match"] is True


def test_report_warnings_are_printed_on_the_terminal(tmp_path, capsys):
    from mcanb.study_run import echo_warnings

    (tmp_path / "report.json").write_text(json.dumps({"warnings": ["391 of 600 documents (65 %) were dropped"]}))
    assert echo_warnings(tmp_path, "01_preprocess/mine") == ["391 of 600 documents (65 %) were dropped"]
    assert "[mcanb] 01_preprocess/mine: warning: 391 of 600 documents" in capsys.readouterr().err
    assert echo_warnings(tmp_path / "absent", "x") == []


def test_table_missing_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": [1], "text": ["a"], "split": ["train"]}).to_csv(path, index=False)
    with pytest.raises(data.DataError, match=r"missing column\(s\) \['codes'\]"):
        coded_table.read_coded_table(path)


# ------------------------------------------------------------------ memory-lean pieces of the pipeline
def test_note_texts_join_each_documents_notes_like_a_frame(tmp_path):
    """Documents read from the notes' Arrow array equal the notes joined with a space in ROW_ID order."""
    raw = tmp_path / "raw"
    make_mimic(raw)
    from mcanb.documents import mimic_documents
    from mcanb.preprocess_report import Drops

    docs, _, texts = mimic_documents(raw, Drops(), {}, encoding="utf-8", progress=False, drop_iserror=False,
                                     duplicate_notes="drop", caml_compat=False)
    got = dict(zip(docs["hadm_id"], (texts[i] for i in range(len(texts)))))
    assert got[101] == ("Admission Date: [**2151-7-16**]\nHypertension, \"essential\" 25 mg "
                        "Addendum: Pt's BP 120/80, stable.")  # ROW_ID 10 before 11, whatever the file order
    assert got[102] == "Long-term anticoagulants; fall" and len(texts) == len(docs) == 6
    assert [texts.select(docs["hadm_id"].to_numpy() == 102)[0]] == [got[102]]


def test_repeated_notes_are_found_by_full_comparison_when_hashes_collide(monkeypatch):
    """Notes are compared one text at a time by hash; equal hashes alone never make a copy."""
    import pyarrow as pa

    texts = pa.chunked_array([["a", "b", "a"], ["b", "c", "a", "a"]])
    notes = pd.DataFrame({"row_id": range(7), "hadm_id": [1, 1, 1, 1, 2, 2, 3], "pos": [0, 1, 2, 3, 4, 5, 6]})
    expected = notes.assign(text=texts.to_pylist()).duplicated(["hadm_id", "text"], keep="first").tolist()
    assert expected == [False, False, True, True, False, False, False]
    assert data.duplicate_notes(notes, texts, "NOTEEVENTS.csv").tolist() == expected
    monkeypatch.setattr(data, "hash", lambda s: 0, raising=False)  # every text collides
    assert data.duplicate_notes(notes, texts, "NOTEEVENTS.csv").tolist() == expected


def test_caml_csv_written_in_batches_equals_one_sorted_write(tmp_path, monkeypatch):
    """The CAML CSV, copied a sorted batch at a time, has the bytes of one write of the whole sorted table."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    frame = pd.DataFrame({"hadm_id": [5, 3, 9, 1, 7], "subject_id": pd.array([50, 30, 90, 10, 70], dtype="Int64"),
                          "text": ["b c", "a", "x, \"q\"", "d e f", "g"], "codes": [["1"], ["2", "3"], ["4"], [], ["5"]],
                          "length": [2, 1, 2, 3, 1]})
    whole = pd.DataFrame({"SUBJECT_ID": frame["subject_id"], "HADM_ID": frame["hadm_id"], "TEXT": frame["text"],
                          "LABELS": frame["codes"].map(";".join), "length": frame["length"]})
    whole = pa.Table.from_pandas(whole.sort_values("length", kind="stable"), preserve_index=False)
    pacsv.write_csv(whole, tmp_path / "whole.csv", pacsv.WriteOptions(quoting_style="needed"))
    monkeypatch.setattr(preprocess, "CSV_BATCH", 2)
    for rows in (frame, frame.iloc[:0]):
        preprocess._write_caml_csv(tmp_path / "batched.csv", pa.Table.from_pandas(rows, preserve_index=False),
                                   rows["codes"])
        written = (tmp_path / "batched.csv").read_bytes()
        assert written == ((tmp_path / "whole.csv").read_bytes() if len(rows) else b'"SUBJECT_ID","HADM_ID",'
                           b'"TEXT","LABELS","length"\n')
