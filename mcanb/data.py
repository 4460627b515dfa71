"""Reading raw inputs: MIMIC-III tables and generic "coded notes" tables, with clear errors.

Two input formats feed the same preprocessing (``mcanb.preprocess``):

* ``"mimic3"``: a MIMIC-III v1.4 folder (``NOTEEVENTS``, ``DIAGNOSES_ICD``, ``PROCEDURES_ICD`` and,
  optionally, ``D_ICD_DIAGNOSES`` / ``D_ICD_PROCEDURES``; each ``.csv`` or ``.csv.gz``);
* ``"table"``: one CSV or Parquet file with a row per document and columns ``id``, ``text``, ``codes``
  (``;``-separated, or a list column in Parquet), ``split`` (``train``/``dev``/``test``) and optionally
  ``subject_id``: for MIMIC-IV, other corpora or a hospital's own notes. Codes pass through unchanged.

Every problem names the file, the row or field, and what was expected (:class:`DataError`). Nothing is
written next to the raw data. Explained in ``notebooks/01_preprocess.ipynb``, §1.
"""
from __future__ import annotations

import gzip
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pacsv

# Column names and order of MIMIC-III v1.4.
NOTEEVENTS_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                      "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
CODE_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
DESCRIPTION_COLUMNS = ["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]
DISCHARGE = "Discharge summary"
TABLE_COLUMNS = ["id", "text", "codes", "split"]

_NOTE_KEEP = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CATEGORY", "ISERROR", "TEXT"]


class DataError(ValueError):
    """Bad input: the message names the file, the row or field, and what was expected."""


def find_table(folder: Path, name: str, required: bool = True) -> Path | None:
    """``folder/NAME.csv.gz`` or ``folder/NAME.csv`` (either case of NAME)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: MIMIC-III folder not found (expected NOTEEVENTS.csv[.gz], "
                        "DIAGNOSES_ICD.csv[.gz], PROCEDURES_ICD.csv[.gz])")
    for stem in (name, name.lower()):
        for ext in (".csv.gz", ".csv"):
            p = folder / f"{stem}{ext}"
            if p.exists():
                return p
    if required:
        raise DataError(f"{folder}: {name}.csv.gz or {name}.csv not found")
    return None


def read_header(path: Path) -> list[str]:
    """The CSV header of ``path`` (gzip or plain); a clear error if it cannot be read."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            line = f.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as {'gzip-compressed ' if path.suffix == '.gz' else ''}"
                        f"UTF-8 CSV ({e})") from e
    if not line.strip():
        raise DataError(f"{path}: empty file (expected a CSV header)")
    return [c.strip().strip('"') for c in line.rstrip("\r\n").split(",")]


def check_columns(path: Path, header: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}, expected {required}")


def _to_int(values: pd.Series, path: Path, field: str, row_ids: pd.Series | None = None,
            allow_empty: bool = False) -> pd.Series:
    """Integer column from strings; names the first bad row. Empty -> <NA> if allowed."""
    s = values.fillna("").astype(str).str.strip()
    empty = s == ""
    num = pd.to_numeric(s.where(~empty, None), errors="coerce")
    bad = num.isna() & ~empty
    if not allow_empty:
        bad |= empty
    nonint = num.notna() & (num != np.floor(num.fillna(0)))
    bad |= nonint
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        where = f"record {i}" + (f" (ROW_ID {row_ids.iloc[i]})" if row_ids is not None else "")
        raise DataError(f"{path}, {where}, field {field}: expected an integer"
                        f"{' or empty' if allow_empty else ''}, got {s.iloc[i][:40]!r}")
    return num.astype("Int64")


def read_discharge_notes(mimic_dir: Path, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Discharge summaries of NOTEEVENTS (streamed; other categories are counted, not kept).

    Returns a frame (row_id, subject_id, hadm_id, iserror, text) in file order, and counts:
    ``notes_total``, ``notes_by_category``, ``discharge_notes``.
    """
    path = find_table(mimic_dir, "NOTEEVENTS")
    header = read_header(path)
    check_columns(path, header, _NOTE_KEEP)
    bad_rows: list[str] = []

    def on_invalid(row) -> str:
        bad_rows.append(f"record near line {row.number}: expected {row.expected_columns} fields, "
                        f"found {row.actual_columns}: {str(row.text)[:80]!r}")
        return "error"

    read = pacsv.ReadOptions(block_size=1 << 26)
    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(include_columns=_NOTE_KEEP,
                                   column_types={c: pa.string() for c in _NOTE_KEEP},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    categories: Counter = Counter()
    kept, total = [], 0
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        bar = _progress(progress, "NOTEEVENTS", unit=" notes")
        for batch in reader:
            total += batch.num_rows
            cats = pc.value_counts(batch.column("CATEGORY"))
            for item in cats.to_pylist():
                categories[item["values"]] += item["counts"]
            mask = pc.equal(batch.column("CATEGORY"), DISCHARGE)
            kept.append(pa.Table.from_batches([batch]).filter(mask).drop(["CATEGORY"]))
            bar.update(batch.num_rows)
        bar.close()
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as e:
        detail = bad_rows[0] if bad_rows else str(e).splitlines()[0]
        raise DataError(f"{path}: not a readable MIMIC-III NOTEEVENTS CSV: {detail}") from e
    if not kept:
        raise DataError(f"{path}: no rows (expected a header and note rows)")
    df = pa.concat_tables(kept).to_pandas()
    df.columns = [c.lower() for c in df.columns]
    df["row_id"] = _to_int(df["row_id"], path, "ROW_ID")
    df["subject_id"] = _to_int(df["subject_id"], path, "SUBJECT_ID", df["row_id"])
    df["hadm_id"] = _to_int(df["hadm_id"], path, "HADM_ID", df["row_id"], allow_empty=True)
    df["iserror"] = df["iserror"].str.strip().isin(["1", "1.0"])
    counts = {"notes_total": total, "notes_by_category": dict(sorted(categories.items())),
              "discharge_notes": len(df)}
    return df, counts


def read_code_table(mimic_dir: Path, name: str) -> pd.DataFrame:
    """DIAGNOSES_ICD or PROCEDURES_ICD as strings (codes keep leading zeros), in file order."""
    path = find_table(mimic_dir, name)
    check_columns(path, read_header(path), CODE_COLUMNS)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=CODE_COLUMNS)
    except (pd.errors.ParserError, OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable MIMIC-III {name} CSV: {str(e).splitlines()[0]}") from e
    out = pd.DataFrame({
        "subject_id": _to_int(df["SUBJECT_ID"], path, "SUBJECT_ID", df["ROW_ID"]),
        "hadm_id": _to_int(df["HADM_ID"], path, "HADM_ID", df["ROW_ID"]),
        "raw_code": df["ICD9_CODE"].str.strip(),
    })
    out.attrs["n_columns"] = len(read_header(path))
    return out


def read_code_descriptions(mimic_dir: Path) -> dict[tuple[str, bool], str]:
    """``{(undotted code, is_diagnosis): LONG_TITLE}`` from MIMIC's D_ICD tables, where present."""
    out: dict[tuple[str, bool], str] = {}
    for name, is_diag in (("D_ICD_DIAGNOSES", True), ("D_ICD_PROCEDURES", False)):
        path = find_table(mimic_dir, name, required=False)
        if path is None:
            continue
        check_columns(path, read_header(path), ["ICD9_CODE", "LONG_TITLE"])
        df = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["ICD9_CODE", "LONG_TITLE"])
        for code, title in zip(df["ICD9_CODE"], df["LONG_TITLE"]):
            out[(code.strip(), is_diag)] = title.strip()
    return out


def read_coded_table(path: Path) -> pd.DataFrame:
    """A generic coded-notes table → frame (hadm_id, subject_id, text, codes: list[str], split)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: coded-notes table not found")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={"id": str, "subject_id": str, "codes": str, "split": str},
                             keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear message
        raise DataError(f"{path}: cannot be read as a {'Parquet' if path.suffix == '.parquet' else 'CSV'} "
                        f"table ({str(e).splitlines()[0]})") from e
    check_columns(path, list(df.columns), TABLE_COLUMNS)
    ids = _to_int(df["id"].astype(str), path, "id")
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path}, row {i}, field id: id {ids.iloc[i]} appears more than once "
                        "(expected one row per document)")
    split = df["split"].astype(str).str.strip()
    bad = ~split.isin(["train", "dev", "test"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}, row {i}, field split: expected train, dev or test, got {split.iloc[i]!r}")
    text = df["text"]
    if not all(isinstance(t, str) for t in text):
        i = next(i for i, t in enumerate(text) if not isinstance(t, str))
        raise DataError(f"{path}, row {i}, field text: expected a string, got {type(text.iloc[i]).__name__}")
    codes = [_parse_codes(c, path, i) for i, c in enumerate(df["codes"])]
    subject = (_to_int(df["subject_id"].astype(str), path, "subject_id", allow_empty=True)
               if "subject_id" in df.columns else pd.array([pd.NA] * len(df), dtype="Int64"))
    return pd.DataFrame({"hadm_id": ids.astype("int64"), "subject_id": subject, "text": text.to_numpy(),
                         "codes": codes, "split": split.to_numpy()})


def _parse_codes(value, path: Path, row: int) -> list[str]:
    if isinstance(value, str):
        items = value.split(";")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        raise DataError(f"{path}, row {row}, field codes: expected ';'-separated codes or a list, "
                        f"got {type(value).__name__}")
    return [str(c).strip() for c in items if str(c).strip()]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, desc: str, **kw):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(desc=desc, **kw)
