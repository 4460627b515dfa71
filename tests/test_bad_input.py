"""Damaged input folders, built from the toy fixture: each run succeeds and counts what it decided, or stops
with an error naming the file, the line or row, the field, and what was expected. Never silently different.
"""
from __future__ import annotations

import gzip
import shutil
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from mcanb import coded_table, data, fixture, preprocess, processed, splits, text


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy") / "mimic"
    fixture.generate(d, size="toy", seed=0, progress=False)
    return d


def _run(raw, out, **kw):
    cfg = preprocess.PreprocessConfig(input_path=str(raw), out_dir=str(out), word2vec=False, progress=False,
                                      workers=1, **kw)
    return preprocess.run(cfg, force=True)


@pytest.fixture(scope="session")
def clean(toy, tmp_path_factory):
    """The undamaged toy run: report and the full label space's training documents."""
    out = tmp_path_factory.mktemp("clean")
    return _run(toy, out), processed.load(out, "full").frames["train"]


@pytest.fixture
def raw(toy, tmp_path):
    """A private copy of the toy folder, to damage."""
    return shutil.copytree(toy, tmp_path / "mimic")


def notes_bytes(folder) -> bytes:
    return gzip.decompress((folder / "NOTEEVENTS.csv.gz").read_bytes())


def put_notes(folder, content: bytes, name: str = "NOTEEVENTS.csv") -> None:
    """Replace NOTEEVENTS by ``content`` (plain CSV unless ``name`` ends in .gz)."""
    (folder / "NOTEEVENTS.csv.gz").unlink()
    (folder / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)


def assert_same_documents(report, out, clean):
    clean_report, clean_train = clean
    train = processed.load(out, "full").frames["train"]
    assert train["text"].tolist() == clean_train["text"].tolist()
    assert train["codes"].map(tuple).tolist() == clean_train["codes"].map(tuple).tolist()
    for key in ("documents", "tokens", "full", "50", "vocab_size"):
        assert report["counts"][key] == clean_report["counts"][key]


# ------------------------------------------------------------------------------ repeated note rows
def _discharge_rows(folder) -> pd.DataFrame:
    df = pd.read_csv(folder / "NOTEEVENTS.csv.gz", dtype=str, keep_default_na=False)
    return df[df["CATEGORY"] == data.DISCHARGE]


def _append_rows(folder, rows: pd.DataFrame) -> None:
    extra = rows.to_csv(index=False, header=False).encode()
    put_notes(folder, notes_bytes(folder) + extra, "NOTEEVENTS.csv.gz")


def test_repeated_notes_are_read_once_and_counted(raw, tmp_path, clean):
    ds = _discharge_rows(raw)
    train_ids = set(clean[1]["hadm_id"])
    first = ds[ds["HADM_ID"].astype(int).isin(train_ids)].iloc[:2]
    copy = first.copy()
    copy.loc[copy.index[1], "ROW_ID"] = "9999999"  # same admission and text, new ROW_ID
    _append_rows(raw, copy)
    report = _run(raw, tmp_path / "out")
    assert report["duplicate_notes"] == "drop"
    assert report["counts"]["duplicate_discharge_notes"] == 2 and report["dropped"]["duplicate_note"] == 2
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    assert set(dropped.loc[dropped.reason == "duplicate_note", "id"]) == {int(first["ROW_ID"].iloc[0]), 9999999}
    assert_same_documents(report, tmp_path / "out", clean)
    # CAML's behaviour, kept under caml_compat: every copy is joined, the text doubles
    keep = _run(raw, tmp_path / "keep", caml_compat=True)
    assert keep["duplicate_notes"] == "keep" and keep["dropped"]["duplicate_note"] == 0
    assert keep["counts"]["duplicate_discharge_notes"] == 2
    assert keep["counts"]["tokens"] > report["counts"]["tokens"]
    explicit = _run(raw, tmp_path / "keep2", duplicate_notes="keep")
    assert explicit["counts"]["tokens"] == keep["counts"]["tokens"]


def test_row_id_reused_with_other_text_is_an_error(raw, tmp_path):
    row = _discharge_rows(raw).iloc[:1].copy()
    row["TEXT"] = "a different note"
    _append_rows(raw, row)
    with pytest.raises(data.DataError, match=rf"NOTEEVENTS.csv.gz, records \[\d+, \d+\], field ROW_ID: ROW_ID "
                                             rf"{row['ROW_ID'].iloc[0]} appears on notes with different"):
        _run(raw, tmp_path / "out")


# ----------------------------------------------------------------------------------- broken quoting
def _line_of(content: bytes, needle: bytes) -> int:
    return content[:content.index(needle)].count(b"\n") + 1


def test_file_ending_inside_a_quoted_field_names_the_line(raw, tmp_path):
    content = notes_bytes(raw)
    last = content.rindex(b'\n', 0, content.rindex(b',"', 0, len(content) - 3)) + 1  # start of the last record
    start_line = content[:last].count(b"\n") + 1
    put_notes(raw, content[:-200])  # a truncated download: the last note's closing quote is lost
    with pytest.raises(data.DataError, match=rf"NOTEEVENTS.csv: not a readable MIMIC-III CSV: record \d+, starting "
                                             rf"on line {start_line}: a quoted field that begins on line {start_line} "
                                             "is never closed"):
        _run(raw, tmp_path / "out")


def test_unclosed_quote_mid_file_names_the_line_not_none(raw, tmp_path):
    content = notes_bytes(raw)
    lines = content.split(b"\n")
    i = next(k for k in range(200, len(lines)) if lines[k].startswith(b"1") and b',"Discharge summary","' in lines[k])
    lines[i] = lines[i].replace(b',"Discharge summary","', b',"Discharge summary,"', 1)  # one quote lost
    put_notes(raw, b"\n".join(lines))
    with pytest.raises(data.DataError) as e:
        _run(raw, tmp_path / "out")
    msg = str(e.value)
    assert "None" not in msg and f"line {i + 1}" in msg and "NOTEEVENTS.csv" in msg


# ------------------------------------------------------------------------------- headers, encodings
def test_lower_case_column_headers_and_file_names(raw, tmp_path, clean):
    content = notes_bytes(raw)
    header, rest = content.split(b"\n", 1)
    put_notes(raw, header.lower() + b"\n" + rest, "noteevents.csv.gz")
    dx = gzip.decompress((raw / "DIAGNOSES_ICD.csv.gz").read_bytes())
    (raw / "DIAGNOSES_ICD.csv.gz").unlink()
    header, rest = dx.split(b"\n", 1)
    (raw / "Diagnoses_Icd.csv").write_bytes(header.lower() + b"\n" + rest)
    report = _run(raw, tmp_path / "out")
    assert report["input_files"]["DIAGNOSES_ICD"].endswith("Diagnoses_Icd.csv") and not report["warnings"]
    assert_same_documents(report, tmp_path / "out", clean)


def test_columns_differing_only_in_case_are_ambiguous(raw, tmp_path):
    content = notes_bytes(raw)
    header, rest = content.split(b"\n", 1)
    put_notes(raw, header.replace(b'"CGID"', b'"text"') + b"\n" + rest)
    with pytest.raises(data.DataError, match=r"columns \['text', 'TEXT'\] differ only in case"):
        _run(raw, tmp_path / "out")


def test_byte_order_mark_is_skipped(raw, tmp_path, clean):
    put_notes(raw, b"\xef\xbb\xbf" + notes_bytes(raw), "NOTEEVENTS.csv.gz")
    px = gzip.decompress((raw / "PROCEDURES_ICD.csv.gz").read_bytes())
    (raw / "PROCEDURES_ICD.csv.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + px))
    report = _run(raw, tmp_path / "out")
    assert_same_documents(report, tmp_path / "out", clean)


def test_bytes_that_are_not_utf8_name_line_and_offset(raw, tmp_path):
    content = notes_bytes(raw)
    at = content.index(b"Chief Complaint:", 5000)
    bad = content[:at] + b"Caf\xe9 " + content[at:]  # one latin-1 byte inside a note
    put_notes(raw, bad)
    offset, line = at + 3, _line_of(bad, b"Caf\xe9")
    with pytest.raises(data.DataError, match=rf"line {line}, byte offset {offset} \(record \d+, which starts on line "
                                             rf"\d+\): bytes b'\\xe9.*' are not valid utf-8.*option encoding"):
        _run(raw, tmp_path / "out")
    report = _run(raw, tmp_path / "latin", encoding="latin-1")  # the way forward the message names
    assert report["counts"]["documents"] == 998


# ------------------------------------------------------------------------------------ split files
def test_split_files_with_a_header_line(raw, tmp_path, clean):
    for name in ("train_full_hadm_ids.csv", "dev_50_hadm_ids.csv"):
        p = raw / "splits" / name
        p.write_text("HADM_ID\n" + p.read_text())
    assert_same_documents(_run(raw, tmp_path / "out"), tmp_path / "out", clean)
    p = raw / "splits" / "test_full_hadm_ids.csv"
    p.write_text(p.read_text() + "HADM_ID\n")  # a header anywhere else is still an error
    with pytest.raises(splits.SplitError, match=r"test_full_hadm_ids.csv, line \d+: expected one integer HADM_ID"):
        _run(raw, tmp_path / "out2")


# ------------------------------------------------------------------------------ two copies of a table
def test_csv_and_csv_gz_both_present_warns_and_reports_which(raw, tmp_path, clean):
    (raw / "NOTEEVENTS.csv").write_bytes(notes_bytes(raw)[:100_000])  # an older, partial copy
    with pytest.warns(UserWarning, match=r"NOTEEVENTS is present as NOTEEVENTS.csv.gz, NOTEEVENTS.csv; read "
                                         r"NOTEEVENTS.csv.gz"):
        report = _run(raw, tmp_path / "out")
    assert report["input_files"]["NOTEEVENTS"] == str(raw / "NOTEEVENTS.csv.gz")
    assert len(report["warnings"]) == 1
    assert_same_documents(report, tmp_path / "out", clean)


# ------------------------------------------------------------------------------------- long notes
def test_long_note_tokenises_the_same_in_pieces(monkeypatch):
    note = "Pt's BP 120/80, stable. Metoprolol 25mg\nm² cafe\u0301 x" * 500
    whole = text.tokenize_joined(note)
    monkeypatch.setattr(text, "CHUNK_CHARS", 997)  # cut in many places, also inside words' neighbourhoods
    for rule, engine in (("caml", "re"), ("alpha", "regex")):
        joined, n, types = text.tokenize_counted(note, rule, engine, types=True)
        assert joined == text.tokenize_joined(note, rule, engine) and n == len(joined.split())
        assert types == set(joined.split())
    assert text.tokenize_counted("word" * 1000)[0] == "word" * 1000  # no space at all: one token
    assert text.tokenize_counted(note)[0] == whole


def _peak(f) -> int:
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_note_does_not_multiply_memory(monkeypatch):
    """Peak memory of tokenising one note: its output plus one piece's work (~8x CHUNK_CHARS), not ~7x the
    note. A 64 KiB piece stands in for the real 1 MiB one, so that a 2.4 MB note is "long"."""
    note = "metoprolol 25 mg daily for hypertension, see [**2151-7-16**]\n" * 40_000  # 360,000 words
    monkeypatch.setattr(text, "CHUNK_CHARS", 1 << 16)
    n, types = text.tokenize_counted(note, types=True)[1:]
    assert n == 40_000 * 6 and types == {"metoprolol", "mg", "daily", "for", "hypertension", "see"}
    peak = _peak(lambda: text.tokenize_counted(note, types=True))
    assert peak < 2 * len(note), f"peak {peak / 1e6:.1f} MB for a {len(note) / 1e6:.1f} MB note"
    assert _peak(lambda: set(text.tokenize_joined(note).split())) > 5 * len(note)  # what it would cost at once


# ------------------------------------------------------------------------------ coded-notes tables
@pytest.fixture
def table_rows(clean):
    """Twelve documents of the toy run as coded-notes rows."""
    train = clean[1].iloc[:12]
    return pd.DataFrame({"id": train["hadm_id"], "text": train["text"], "codes": train["codes"].map(";".join),
                         "split": ["train"] * 8 + ["dev"] * 2 + ["test"] * 2})


def _table(tmp_path, df, name="notes.csv"):
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return path


def _run_table(path, out, **kw):
    return _run(path, out, input_format="table", top_k=2, vocab_min_docs=1, **kw)


def test_table_repeated_rows_are_read_once_conflicting_ids_fail(tmp_path, table_rows):
    df = pd.concat([table_rows, table_rows.iloc[[3, 5]]])
    report = _run_table(_table(tmp_path, df), tmp_path / "out")
    assert report["counts"]["duplicate_rows"] == 2 and report["dropped"]["duplicate_row"] == 2
    assert report["counts"]["full"]["train"] == 8
    clash = table_rows.iloc[[4]].assign(text="other text")
    path = _table(tmp_path, pd.concat([table_rows, clash]))
    with pytest.raises(data.DataError, match=r"notes.csv, row 12 \(line 14\), field id: id \d+ is also on row 4"):
        coded_table.read_coded_table(path)


def test_table_empty_and_missing_text_are_counted(tmp_path, table_rows):
    df = table_rows.copy()
    df.loc[df.index[0], "text"] = ""
    df.loc[df.index[1], "text"] = None
    report = _run_table(_table(tmp_path, df, "t.parquet"), tmp_path / "out")
    assert report["counts"]["missing_text"] == 1 and report["dropped"]["empty_text"] == 2
    assert report["counts"]["full"]["train"] == 6


def test_table_codes_spaces_and_empty_items_are_cleaned_and_counted(tmp_path, table_rows):
    df = table_rows.copy()
    df["codes"] = [" " + c.replace(";", " ; ") + ";;" for c in df["codes"]]
    df.loc[df.index[0], "codes"] = df["codes"].iloc[0] + ";" + table_rows["codes"].iloc[0].split(";")[0]
    report = _run_table(_table(tmp_path, df), tmp_path / "out")
    reference = _run_table(_table(tmp_path / "r", table_rows), tmp_path / "ref")
    c = report["counts"]
    assert c["codes_with_spaces"] > 12 and c["empty_code_items"] == 24 and c["repeated_codes"] == 1
    assert c["full"] == reference["counts"]["full"]


@pytest.mark.parametrize("codes", ["401.9,428.0", "401.9|428.0", "401.9 428.0"])
def test_table_other_code_separators_are_an_error(tmp_path, table_rows, codes):
    df = table_rows.copy()
    df.loc[df.index[2], "codes"] = codes
    with pytest.raises(data.DataError, match=r"notes.csv, row 2 \(line 4\), field codes: code .* contains a comma, "
                                             r"'\|' or a space; expected codes separated by ';' only"):
        coded_table.read_coded_table(_table(tmp_path, df))


def test_table_split_names(tmp_path, table_rows):
    df = table_rows.copy()
    df.loc[df.index[:3], "split"] = [" Train", "TRAIN", "train "]
    table, counts, _ = coded_table.read_coded_table(_table(tmp_path, df))
    assert counts["split_names_normalised"] == 3 and (table["split"][:3] == "train").all()
    df.loc[df.index[5], "split"] = "validation"
    with pytest.raises(data.DataError, match=r"row 5 \(line 7\), field split: expected train, dev or test "
                                             r"\(any case\), got 'validation'; unknown names.*\{'validation': 1\}"):
        coded_table.read_coded_table(_table(tmp_path, df))


def test_table_column_names_any_case_and_missing(tmp_path, table_rows):
    df = table_rows.rename(columns={"id": "ID", "text": "Text"})
    table, _, _ = coded_table.read_coded_table(_table(tmp_path, df, "t.parquet"))
    assert table["text"].tolist() == table_rows["text"].tolist()
    path = _table(tmp_path, table_rows.drop(columns="split"))
    with pytest.raises(data.DataError, match=r"notes.csv: missing column\(s\) \['split'\]"):
        coded_table.read_coded_table(path)


def test_table_list_codes_in_parquet(tmp_path, table_rows):
    df = table_rows.assign(codes=[np.array(c.split(";") + [" "]) for c in table_rows["codes"]])
    table, counts, _ = coded_table.read_coded_table(_table(tmp_path, df, "t.parquet"))
    assert table["codes"].map(";".join).tolist() == table_rows["codes"].tolist()
    assert counts["empty_code_items"] == 12


def test_code_table_bad_bytes_and_bad_options(raw, tmp_path):
    dx = gzip.decompress((raw / "DIAGNOSES_ICD.csv.gz").read_bytes())
    at = dx.index(b"\n", 1000) + 1
    (raw / "DIAGNOSES_ICD.csv.gz").write_bytes(gzip.compress(dx[:at] + b"\x96" + dx[at:]))
    line = dx[:at].count(b"\n") + 1
    with pytest.raises(data.DataError, match=rf"DIAGNOSES_ICD.csv.gz: not a readable MIMIC-III CSV: line {line}, "
                                             rf"byte offset {at} \(record {line - 2}, "):
        _run(raw, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown encoding 'utf-9'"):
        preprocess.PreprocessConfig(input_path="x", out_dir="y", encoding="utf-9")
    with pytest.raises(ValueError, match="duplicate_notes must be None or one of"):
        preprocess.PreprocessConfig(input_path="x", out_dir="y", duplicate_notes="first")
