"""The synthetic MIMIC-III fixture: byte-stable, MIMIC-shaped, every quirk present, splits CAML-like.

Quirk counts are recomputed here from the written tables with pandas, independently of the generator, and
compared with what ``fixture.json`` claims.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mcanb import fixture

NOTE_HEADER = '"ROW_ID","SUBJECT_ID","HADM_ID","CHARTDATE","CHARTTIME","STORETIME","CATEGORY","DESCRIPTION","CGID",' \
              '"ISERROR","TEXT"'
CODE_HEADER = '"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"'
DICT_HEADER = '"ROW_ID","ICD9_CODE","SHORT_TITLE","LONG_TITLE"'
MIMIC_CATEGORIES = {"Nursing/other", "Radiology", "Nursing", "ECG", "Physician ", "Discharge summary", "Echo",
                    "Respiratory ", "Nutrition", "General", "Rehab Services", "Social Work", "Case Management ",
                    "Pharmacy", "Consult"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _all_files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("toy_a")
    fixture.generate(d, size="toy", seed=0, progress=False)
    return d


@pytest.fixture(scope="module")
def summary(toy) -> dict:
    return json.loads((toy / "fixture.json").read_text())


@pytest.fixture(scope="module")
def tables(toy) -> dict[str, pd.DataFrame]:
    """The tables as a careful reader loads them (codes as strings)."""
    return {
        "notes": pd.read_csv(toy / "NOTEEVENTS.csv.gz", dtype={"HADM_ID": "Int64"}),
        "dx": pd.read_csv(toy / "DIAGNOSES_ICD.csv.gz", dtype={"ICD9_CODE": str}),
        "px": pd.read_csv(toy / "PROCEDURES_ICD.csv.gz", dtype={"ICD9_CODE": str}),
        "d_dx": pd.read_csv(toy / "D_ICD_DIAGNOSES.csv.gz", dtype={"ICD9_CODE": str}),
        "d_px": pd.read_csv(toy / "D_ICD_PROCEDURES.csv.gz", dtype={"ICD9_CODE": str}),
    }


def _split(d: Path, name: str) -> list[int]:
    return [int(x) for x in (d / "splits" / f"{name}_hadm_ids.csv").read_text().splitlines()]


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_other_bytes(toy, summary, tmp_path):
    again = tmp_path / "again"
    fixture.generate(again, size="toy", seed=0, progress=False)
    assert _all_files(toy) == _all_files(again) == sorted(fixture.expected_files())
    for name in _all_files(toy):
        assert _sha(toy / name) == _sha(again / name), name
    for name, meta in summary["files"].items():  # the summary's checksums are the files' checksums
        assert _sha(toy / name) == meta["sha256"] and (toy / name).stat().st_size == meta["bytes"]
    other = tmp_path / "seed1"
    fixture.generate(other, size="toy", seed=1, progress=False)
    for name in fixture.TABLE_FILES + fixture.SPLIT_FILES:
        assert _sha(toy / name) != _sha(other / name), name


def test_gzip_has_no_timestamp_or_name(toy):
    raw = (toy / "NOTEEVENTS.csv.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # MTIME = 0
    assert raw[3] & 0x08 == 0  # no FNAME field


# ------------------------------------------------------------------ shape


def test_headers_and_columns_are_mimics(toy, tables):
    for name, header in (("NOTEEVENTS", NOTE_HEADER), ("DIAGNOSES_ICD", CODE_HEADER),
                         ("PROCEDURES_ICD", CODE_HEADER), ("D_ICD_DIAGNOSES", DICT_HEADER),
                         ("D_ICD_PROCEDURES", DICT_HEADER)):
        with gzip.open(toy / f"{name}.csv.gz", "rt", encoding="utf-8", newline="") as f:
            assert f.readline() == header + "\n"
    assert tuple(tables["notes"].columns) == fixture.NOTE_COLUMNS
    assert tuple(tables["dx"].columns) == tuple(tables["px"].columns) == fixture.CODE_COLUMNS
    assert tuple(tables["d_dx"].columns) == tuple(tables["d_px"].columns) == fixture.DICT_COLUMNS


def test_noteevents_round_trip_gives_planted_counts(toy, tables, summary):
    notes = tables["notes"]
    counts = summary["counts"]
    assert len(notes) == counts["notes"]
    assert notes["ROW_ID"].is_unique and notes["ROW_ID"].is_monotonic_increasing
    assert dict(Counter(notes["CATEGORY"])) == counts["notes_by_category"]
    assert set(notes["CATEGORY"]) == MIMIC_CATEGORIES
    ds = notes[notes["CATEGORY"] == "Discharge summary"]
    assert len(ds) == counts["discharge_summary_rows"]
    assert set(ds["DESCRIPTION"]) == {"Report", "Addendum"}
    assert (ds["DESCRIPTION"] == "Addendum").sum() == counts["addendum_rows"]
    assert ds["HADM_ID"].nunique() == counts["admissions_with_ds"] == 1000
    assert ds["CHARTTIME"].isna().all() and ds["CGID"].isna().all()
    assert notes["TEXT"].str.encode("utf-8").str.len().sum() == counts["text_bytes"]
    # the stdlib csv module agrees with pandas on the multi-line quoted rows
    with gzip.open(toy / "NOTEEVENTS.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) - 1 == len(notes) and all(len(r) == 11 for r in rows)
    assert rows[1][10] == ds["TEXT"].iloc[0]


def test_code_formats(tables):
    dx = tables["dx"]["ICD9_CODE"].dropna()
    px = tables["px"]["ICD9_CODE"].dropna()
    assert not dx.str.contains(".", regex=False).any() and not px.str.contains(".", regex=False).any()
    assert dx.str.fullmatch(r"\d{3,5}|V\d{2,4}|E\d{3,4}").all()
    assert px.str.fullmatch(r"\d{2,4}").all()
    assert dx.str.startswith("V").any() and dx.str.startswith("E").any()
    assert px.str.startswith("0").any()
    for d in (tables["d_dx"], tables["d_px"]):
        assert not d["ICD9_CODE"].str.contains(".", regex=False).any()
        assert (d["SHORT_TITLE"].str.len() <= 24).all() and d["ICD9_CODE"].is_unique


def test_caml_int_cast_reproduces_colliding_and_bogus_codes(toy, summary):
    """Read PROCEDURES_ICD like CAML (no dtype): leading zeros vanish, some codes collide, some are bogus."""
    as_int = pd.read_csv(toy / "PROCEDURES_ICD.csv.gz")["ICD9_CODE"]
    assert as_int.dtype.kind == "i"
    as_str = pd.read_csv(toy / "PROCEDURES_ICD.csv.gz", dtype={"ICD9_CODE": str})["ICD9_CODE"]
    correct = {c[:2] + "." + c[2:] for c in as_str.dropna()}
    lz = sorted({c for c in as_str.dropna() if c.startswith("0")})
    cast = {c: str(int(c))[:2] + "." + str(int(c))[2:] for c in lz}
    desc = fixture.load_descriptions()
    q = summary["quirks"]
    assert q["leading_zero_px_codes"] == len(lz) > 0
    assert q["int_cast_collisions"] == sum(cast[c] in correct for c in lz) > 0
    assert q["int_cast_bogus"] == sum(cast[c] not in desc for c in lz) > 0


# ------------------------------------------------------------------ quirks


def _recomputed_quirks(t: dict[str, pd.DataFrame]) -> dict[str, int]:
    notes, dx, px = t["notes"], t["dx"], t["px"]
    text = notes["TEXT"]
    ds = notes[notes["CATEGORY"] == "Discharge summary"]
    rep = ds[ds["DESCRIPTION"] == "Report"]
    add = ds[ds["DESCRIPTION"] == "Addendum"]
    first_report = rep.groupby("HADM_ID")["ROW_ID"].min()
    first_add = add.groupby("HADM_ID")["ROW_ID"].min()
    codes = pd.concat([dx, px])
    coded = codes.dropna(subset=["ICD9_CODE"])
    dx_codes, px_codes = dx["ICD9_CODE"].dropna(), px["ICD9_CODE"].dropna()
    in_dict = set(t["d_dx"]["ICD9_CODE"]) | set(t["d_px"]["ICD9_CODE"])
    return {
        "notes_multiline_text": int(text.str.contains("\n", regex=False).sum()),
        "notes_text_with_comma": int(text.str.contains(",", regex=False).sum()),
        "notes_text_with_double_quote": int(text.str.contains('"', regex=False).sum()),
        "notes_with_deid_brackets": int(text.str.contains("[**", regex=False).sum()),
        "notes_with_non_ascii": int((~text.map(str.isascii)).sum()),
        "discharge_summaries_with_section_headers": int(ds["TEXT"].str.contains("Admission Date:").sum()),
        "discharge_summaries_with_doses": int(ds["TEXT"].str.contains(" mg ", regex=False).sum()),
        "addendum_rows": len(add), "admissions_with_addendum": add["HADM_ID"].nunique(),
        "admissions_with_addendum_before_report": int((first_add < first_report.reindex(first_add.index)).sum()),
        "admissions_with_two_reports": int((rep.groupby("HADM_ID").size() >= 2).sum()),
        "categories_with_trailing_space": sum(c != c.rstrip() for c in notes["CATEGORY"].unique()),
        "notes_without_hadm_id": int(notes["HADM_ID"].isna().sum()),
        "iserror_notes": int((notes["ISERROR"] == 1).sum()),
        "iserror_discharge_summaries": int((ds["ISERROR"] == 1).sum()),
        "admissions_without_ds": len(set(codes["HADM_ID"]) - set(ds["HADM_ID"])),
        "admissions_with_ds_but_no_code": len(set(ds["HADM_ID"]) - set(coded["HADM_ID"])),
        "empty_code_rows": int(codes["ICD9_CODE"].isna().sum()),
        "duplicate_admission_code_rows": int(dx.dropna(subset=["ICD9_CODE"]).duplicated(["HADM_ID", "ICD9_CODE"]).sum()
                                             + px.duplicated(["HADM_ID", "ICD9_CODE"]).sum()),
        "codes_missing_from_d_icd": len(set(coded["ICD9_CODE"]) - in_dict),
        "v_code_rows": int(dx_codes.str.startswith("V").sum()), "e_code_rows": int(dx_codes.str.startswith("E").sum()),
        "leading_zero_dx_rows": int(dx_codes.str.startswith("0").sum()),
        "leading_zero_px_rows": int(px_codes.str.startswith("0").sum()),
    }


def test_every_quirk_is_present_and_counted_right(tables, summary):
    claimed = summary["quirks"]
    assert all(v > 0 for v in claimed.values()), {k: v for k, v in claimed.items() if not v}
    recomputed = _recomputed_quirks(tables)
    assert {k: claimed[k] for k in recomputed} == recomputed
    assert claimed["categories_with_trailing_space"] == 3  # "Physician ", "Respiratory ", "Case Management "


def test_zipf_like_code_frequency(tables, summary):
    codes = pd.concat([tables["dx"], tables["px"]]).dropna(subset=["ICD9_CODE"])
    per_code = codes.drop_duplicates(["HADM_ID", "ICD9_CODE"])["ICD9_CODE"].value_counts()
    n_adm = codes["HADM_ID"].nunique()
    assert per_code.iloc[0] / n_adm > 0.2  # a very frequent code
    assert (per_code <= 5).sum() > len(per_code) / 4  # and a long tail
    assert 200 <= summary["counts"]["distinct_codes"] <= 600  # "a few hundred" in toy


def test_signal_is_in_the_text(tables):
    """Admissions coded 401.9 mention hypertension far more often than the others."""
    notes, dx = tables["notes"], tables["dx"]
    ds = notes[notes["CATEGORY"] == "Discharge summary"].groupby("HADM_ID")["TEXT"].apply(" ".join)
    has = ds.index.isin(dx.loc[dx["ICD9_CODE"] == "4019", "HADM_ID"])
    says = ds.str.contains(r"hypertension|\bHTN\b", case=False)
    assert says[has].mean() > 0.6 and says[~has].mean() < 0.35


# ------------------------------------------------------------------ splits


def test_split_files_format_and_grouping(toy, tables, summary):
    for name in fixture.SPLIT_FILES:
        raw = (toy / name).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw and re.fullmatch(rb"(\d{6}\n)+", raw)
    full = {s: _split(toy, f"{s}_full") for s in ("train", "dev", "test")}
    fifty = {s: _split(toy, f"{s}_50") for s in ("train", "dev", "test")}
    assert {f"{s}_{v}": len(x) for v, d in (("full", full), ("50", fifty)) for s, x in d.items()} \
        == summary["counts"]["split_sizes"]
    all_ids = [i for x in full.values() for i in x]
    assert len(all_ids) == len(set(all_ids))  # disjoint, no duplicates
    for s in full:
        assert set(fifty[s]) <= set(full[s])
    subject = tables["notes"].dropna(subset=["HADM_ID"]).drop_duplicates("HADM_ID").set_index("HADM_ID")["SUBJECT_ID"]
    patients = {s: set(subject.loc[ids]) for s, ids in full.items()}
    assert not (patients["train"] & patients["dev"] or patients["train"] & patients["test"]
                or patients["dev"] & patients["test"])
    n = len(all_ids)
    fractions = dict(fixture.TOY_SPLIT_FRACTIONS)  # toy holds out more than CAML's 6.4 % / 3.1 %
    assert abs(len(full["test"]) / n - fractions["test"]) < 0.01 and abs(len(full["dev"]) / n - fractions["dev"]) < 0.01
    # eligible = admissions with a summary and a non-empty code
    ds_ids = set(tables["notes"].loc[tables["notes"]["CATEGORY"] == "Discharge summary", "HADM_ID"])
    coded = set(pd.concat([tables["dx"], tables["px"]]).dropna(subset=["ICD9_CODE"])["HADM_ID"])
    assert set(all_ids) == ds_ids & coded


def _dot(code: str, is_dx: bool) -> str:
    if not is_dx:
        return code[:2] + "." + code[2:]
    cut = 4 if code.startswith("E") else 3
    return code if len(code) <= cut else code[:cut] + "." + code[cut:]


def test_top50_recomputed_independently(toy, tables):
    ds_ids = set(tables["notes"].loc[tables["notes"]["CATEGORY"] == "Discharge summary", "HADM_ID"])
    rows = [(h, _dot(c, True)) for h, c in tables["dx"].dropna(subset=["ICD9_CODE"])[["HADM_ID", "ICD9_CODE"]].values]
    rows += [(h, _dot(c, False)) for h, c in tables["px"][["HADM_ID", "ICD9_CODE"]].values]
    counts = Counter(c for h, c in rows if h in ds_ids)
    top = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]]
    assert (toy / fixture.TOP50_FILE).read_text().splitlines() == top
    by_adm: dict[int, set[str]] = {}
    for h, c in rows:
        by_adm.setdefault(h, set()).add(c)
    for s in ("train", "dev", "test"):
        assert _split(toy, f"{s}_50") == [h for h in _split(toy, f"{s}_full") if by_adm[h] & set(top)]


# ------------------------------------------------------------------ ceiling and floor


def test_oracle_is_a_ceiling_above_the_baseline(summary):
    for split in ("test_full", "test_50"):
        oracle = summary["oracle"][split]
        base = summary["baseline_most_frequent"][split]
        assert oracle["micro_precision"] == 1.0
        assert 0.6 < oracle["micro_recall"] < 0.9
        assert oracle["micro_f1"] > base["micro_f1"] + 0.3
        assert summary["oracle_mention"][split]["micro_precision"] < 1.0
        assert base["k"] >= 1


# ------------------------------------------------------------------ ensure / atomicity / CLI


def _mtimes(d: Path) -> dict[str, int]:
    return {name: (d / name).stat().st_mtime_ns for name in _all_files(d)}


def test_ensure_is_idempotent_and_repairs(tmp_path, capsys):
    out = tmp_path / "fx"
    assert fixture.ensure(out, size="toy", seed=3) == out
    before = _mtimes(out)
    fixture.ensure(out, size="toy", seed=3)
    assert _mtimes(out) == before  # nothing rewritten
    assert fixture.main(["--size", "toy", "--out", str(out), "--seed", "3", "--quiet"]) == 0
    assert _mtimes(out) == before and "up to date" in capsys.readouterr().err
    (out / "splits" / "dev_50_hadm_ids.csv").unlink()  # an incomplete fixture is regenerated
    fixture.ensure(out, size="toy", seed=3)
    assert (out / "splits" / "dev_50_hadm_ids.csv").exists()
    fixture.ensure(out, size="toy", seed=4)  # other settings: regenerated
    assert json.loads((out / "fixture.json").read_text())["seed"] == 4


def test_interrupted_generation_never_looks_complete(tmp_path, monkeypatch):
    out = tmp_path / "fx"

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(fixture.generator, "write_dictionary", boom)  # the name generate() calls
    with pytest.raises(RuntimeError, match="interrupted"):
        fixture.generate(out, size="toy", seed=0, progress=False)
    assert not (out / "fixture.json").exists()
    assert not fixture.is_current(out, "toy", 0, None)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["fx"])  # no temp folder left behind


# ------------------------------------------------------------------ full size, tiny scale


def test_full_size_at_small_scale(tmp_path):
    s = fixture.generate(tmp_path, size="full", seed=0, scale=0.002, progress=False)
    c = s["counts"]
    assert c["admissions_with_ds"] == round(52726 * 0.002)
    assert set(c["notes_by_category"]) == MIMIC_CATEGORIES
    assert c["ds_document_caml_tokens"]["mean"] > 1000  # full-length summaries
    assert all(v > 0 for v in s["quirks"].values())
    notes = pd.read_csv(tmp_path / "NOTEEVENTS.csv.gz")
    assert len(notes) == c["notes"] and tuple(notes.columns) == fixture.NOTE_COLUMNS
    assert s["oracle"]["test_full"]["micro_f1"] > s["baseline_most_frequent"]["test_full"]["micro_f1"]
    assert s["scale"] == 0.002 and fixture.is_current(tmp_path, "full", 0, 0.002)
    assert not fixture.is_current(tmp_path, "full", 0, None)


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        fixture.generate("/nonexistent/never", size="huge")
    with pytest.raises(ValueError, match="scale"):
        fixture.generate("/nonexistent/never", size="full", scale=-1)


def test_csv_quoting_is_mimics(toy):
    """Strings quoted, numbers and NULLs bare (PostgreSQL CSV export)."""
    with gzip.open(toy / "DIAGNOSES_ICD.csv.gz", "rt", encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    assert re.fullmatch(r'\d+,\d+,\d{6},\d+,"[0-9VE]+"', lines[1])
    assert any(re.fullmatch(r"\d+,\d+,\d{6},,", x) for x in lines)  # empty code row
    with gzip.open(toy / "NOTEEVENTS.csv.gz", "rt", encoding="utf-8", newline="") as f:
        first = next(csv.reader(io.StringIO(f.read(200_000))))
    assert first == list(fixture.NOTE_COLUMNS)


def test_bytes_do_not_depend_on_hash_seed(toy, tmp_path):
    """A fresh interpreter with another PYTHONHASHSEED writes the same bytes (no set-order dependence)."""
    import os
    import subprocess
    import sys
    out = tmp_path / "hashseed"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "mcanb.fixture", "--size", "toy", "--out", str(out), "--quiet"],
                   check=True, env=env, capture_output=True)
    for name in fixture.expected_files():
        assert _sha(toy / name) == _sha(out / name), name


def test_corpus_table_is_not_mimic_shaped_and_carries_a_signal(tmp_path):
    """The second corpus shape: a coded-notes table with string ids, ICD-10 codes and short reports."""
    from mcanb.fixture import corpus

    path = corpus.ensure(tmp_path / "c")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    again, _ = corpus.make_table(0)
    assert table.equals(again.astype(str)) and not table.equals(corpus.make_table(1)[0].astype(str))
    assert list(table.columns) == ["id", "text", "codes", "split"] and len(table) == corpus.N_DOCS
    assert table["id"].is_unique and table["id"].str.match(r"^(ED|CLN|RAD)-\d{5}$").all()
    codes = Counter(c for cs in table["codes"] for c in cs.split(";"))
    assert set(codes) <= set(corpus.CODES) and all(re.match(r"^[A-Z]\d\d(\.\w+)?$", c) for c in codes)  # ICD-10
    assert codes.most_common(1)[0][1] > 5 * min(codes.values())           # a few frequent codes, a long tail
    assert table["text"].str.split().map(len).median() < 50               # short reports
    assert set(table["split"]) == {"train", "dev", "test"}
    summary = json.loads((path.parent / "fixture.json").read_text())
    assert summary["oracle"]["micro_f1"] > 2 * summary["baseline_most_frequent"]["micro_f1"]
    mentioned = sum(any(p in t.lower() for p in corpus.CODES[c]) for t, cs in zip(table["text"], table["codes"])
                    for c in cs.split(";"))
    assert mentioned / sum(codes.values()) > 0.8                           # the codes are in the text
    assert corpus.ensure(tmp_path / "c") == path
    assert fixture.main(["--size", "corpus", "--out", str(tmp_path / "c")]) == 0


def test_planted_bounds_read_both_fixture_shapes():
    """Notebook 01 shows the ceiling and floor a fixture planted, from either shape of ``fixture.json``."""
    from mcanb.fixture import planted_bounds

    mimic = {"oracle": {"test_50": {"micro_f1": 0.85, "n_admissions": 9}, "test_full": {"micro_f1": 0.8}},
             "baseline_most_frequent": {"test_50": {"k": 6, "micro_f1": 0.25}, "test_full": {"micro_f1": 0.2}}}
    assert planted_bounds(mimic) == {"ceiling (oracle)": {"test_50": 0.85, "test_full": 0.8},
                                     "floor (most frequent codes)": {"test_50": 0.25, "test_full": 0.2}}
    table = {"oracle": {"split": "test", "micro_f1": 0.9}, "baseline_most_frequent": {"split": "test", "k": 2,
                                                                                      "codes": ["A"], "micro_f1": 0.2}}
    assert planted_bounds(table) == {"ceiling (oracle)": {"test": 0.9}, "floor (most frequent codes)": {"test": 0.2}}
