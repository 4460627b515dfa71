"""Reading raw inputs: MIMIC-III tables and generic "coded notes" tables, with clear errors.

Two input formats feed the same preprocessing (``mcanb.preprocess``):

* ``"mimic3"``: a MIMIC-III v1.4 folder (``NOTEEVENTS``, ``DIAGNOSES_ICD``, ``PROCEDURES_ICD`` and,
  optionally, ``D_ICD_DIAGNOSES`` / ``D_ICD_PROCEDURES``; each ``.csv`` or ``.csv.gz``);
* ``"table"``: one CSV or Parquet file with a row per document (:mod:`mcanb.table_input`).

Real exports vary, so file *and* column names match case-insensitively, a UTF-8 byte-order mark is
skipped, and ``encoding`` names another text encoding. Every problem names the file, the record or line,
the field, and what was expected (:class:`DataError`); where the fast reader cannot say where a file is
broken (an unclosed quote, undecodable bytes), :mod:`mcanb.csvscan` finds the line and byte offset.
Nothing is written next to the raw data. Explained in ``notebooks/01_preprocess.ipynb``, §1.
"""
from __future__ import annotations

import csv
import gzip
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pacsv

from .csvscan import locate_problem, record_start_line
from .errors import UserError

# Column names and order of MIMIC-III v1.4.
NOTEEVENTS_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                      "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
CODE_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
DESCRIPTION_COLUMNS = ["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]
MIMIC_TABLES = ["NOTEEVENTS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES"]
DISCHARGE = "Discharge summary"
DUPLICATE_NOTES = ("drop", "keep")

_NOTE_KEEP = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CATEGORY", "ISERROR", "TEXT"]
_DESCRIPTION_KEEP = ["ICD9_CODE", "LONG_TITLE"]
# The columns preprocessing reads from each table (mcanb.preflight checks the headers before it starts); the code
# description tables are optional.
READ_COLUMNS = {"NOTEEVENTS": _NOTE_KEEP, "DIAGNOSES_ICD": CODE_COLUMNS, "PROCEDURES_ICD": CODE_COLUMNS,
                "D_ICD_DIAGNOSES": _DESCRIPTION_KEEP, "D_ICD_PROCEDURES": _DESCRIPTION_KEEP}
OPTIONAL_TABLES = ("D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")
NOTE_BLOCK_BYTES = 1 << 24  # NOTEEVENTS is parsed in blocks of 16 MB (decompressed): 64 MB blocks peak ~0.9 GB higher
_TAIL = 1 << 22  # bytes of the end of NOTEEVENTS kept to check that its last quoted field is closed


class DataError(UserError, ValueError):
    """Bad input: the message names the file, the row or field, and what was expected."""


# ---------------------------------------------------------------------------------- files, headers
def table_candidates(folder: Path, name: str) -> list[Path]:
    """Every ``NAME.csv.gz`` / ``NAME.csv`` in ``folder`` (any case), best first.

    Order: ``.csv.gz`` before ``.csv`` (PhysioNet ships ``.csv.gz``; a ``.csv`` beside it is usually a
    decompressed, possibly edited copy), then the exact upper-case name before other cases.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: MIMIC-III folder not found (expected NOTEEVENTS.csv[.gz], "
                        "DIAGNOSES_ICD.csv[.gz], PROCEDURES_ICD.csv[.gz])")
    rank = {f"{name.lower()}.csv.gz": 0, f"{name.lower()}.csv": 1}
    found = [p for p in folder.iterdir() if p.name.lower() in rank and p.is_file()]
    return sorted(found, key=lambda p: (rank[p.name.lower()], not p.name.startswith(name), p.name))


def find_table(folder: Path, name: str, required: bool = True) -> Path | None:
    """The file read for table ``name``: the first of :func:`table_candidates` (see there)."""
    found = table_candidates(folder, name)
    if not found and required:
        raise DataError(f"{folder}: {name}.csv.gz or {name}.csv not found (any case)")
    return found[0] if found else None


def input_files(folder: Path) -> tuple[dict[str, str], list[str]]:
    """Which file is read for each MIMIC table, and a warning for every table found more than once."""
    files, warnings = {}, []
    for name in MIMIC_TABLES:
        found = table_candidates(folder, name)
        if found:
            files[name] = str(found[0])
        if len(found) > 1:
            warnings.append(f"{folder}: {name} is present as {', '.join(p.name for p in found)}; read "
                            f"{found[0].name} (.csv.gz first: PhysioNet's file), ignored the rest. Remove the "
                            "copies you do not want read to silence this warning")
    return files, warnings


def _text_encoding(encoding: str) -> str:
    """``utf-8`` reads with byte-order-mark stripping (``utf-8-sig``); other encodings as given."""
    return "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding


def read_header(path: Path, encoding: str = "utf-8") -> list[str]:
    """The CSV header of ``path`` (gzip or plain, BOM skipped); a clear error if it cannot be read."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:  # only the first line is decoded: a bad byte further on is not the header's
            line = f.readline().decode(_text_encoding(encoding))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, LookupError) as e:
        raise DataError(f"{path}: cannot be read as {'gzip-compressed ' if path.suffix == '.gz' else ''}"
                        f"{encoding} CSV ({e})") from e
    if not line.strip():
        raise DataError(f"{path}: empty file (expected a CSV header)")
    return next(csv.reader([line]))


def column_map(path: Path, header: list[str], required: list[str]) -> dict[str, str]:
    """``{expected name: name in the file}``, matched ignoring case and surrounding spaces.

    Raises if a column is missing, or if two columns of the file differ only in case (ambiguous)."""
    folded: dict[str, list[str]] = {}
    for h in header:
        folded.setdefault(h.strip().casefold(), []).append(h)
    out, missing = {}, []
    for name in required:
        got = folded.get(name.casefold(), [])
        if len(got) > 1:
            raise DataError(f"{path}: columns {got} differ only in case; expected one column {name!r}")
        if got:
            out[name] = got[0]
        else:
            missing.append(name)
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}, expected {required} "
                        "(any case)")
    return out


def _to_int(values: pd.Series, path: Path, field: str, where=None, allow_empty: bool = False) -> pd.Series:
    """Integer column from strings; names the first bad row (``where(i)`` describes row ``i``)."""
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
        raise DataError(f"{path}, {where(i) if where else f'row {i}'}, field {field}: expected an integer"
                        f"{' or empty' if allow_empty else ''}, got {s.iloc[i][:40]!r}")
    return num.astype("Int64")


# ------------------------------------------------------------------------------------------- notes
class _TailKeeper:
    """The (decompressed) byte stream of a file, remembering the last bytes it handed to the reader."""

    def __init__(self, path: Path) -> None:
        self._f = pa.input_stream(str(path))  # gzip detected from the extension
        self.tail = b""
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self.tail = b[-_TAIL:] if len(b) >= _TAIL else (self.tail + b)[-_TAIL:]
        return b

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()
        self.closed = True


def _closed_properly(tail: bytes, value: str, encoding: str) -> bool:
    """Does a file whose last record's last field parsed as ``value`` end with that field complete?

    The fast reader silently accepts a file that ends inside a quoted field (a truncated download, a lost
    quote): that field then holds the rest of the file. A complete last field ends the file either
    unquoted (``,value``) or quoted with its closing quote (``"value"`` with inner quotes doubled)."""
    end = tail.rstrip(b"\r\n")
    v = value.encode(encoding)
    if not value.startswith('"') and not any(ch in value for ch in ',\r\n') and end.endswith(b"," + v):
        return True
    return end.endswith(v.replace(b'"', b'""')[-(_TAIL // 4):] + b'"')


def _broken(path: Path, n_columns: int, encoding: str, fallback: str) -> DataError:
    where = locate_problem(path, n_columns, encoding)
    return DataError(f"{path}: not a readable MIMIC-III CSV: {where or fallback}")


def read_discharge_notes(mimic_dir: Path, progress: bool = True, encoding: str = "utf-8"
                         ) -> tuple[pd.DataFrame, pa.ChunkedArray, dict]:
    """Discharge summaries of NOTEEVENTS (streamed; other categories are counted, not kept).

    Returns a frame (row_id, subject_id, hadm_id, iserror, record) in file order, where ``record`` is the
    note's 0-based data-row index in the file; the notes' texts, row for row, as an Arrow string array (kept
    out of Python objects: a MIMIC-scale corpus of discharge summaries is about 0.7 GB of text, which
    tokenising processes read without copying); and counts: ``notes_total``, ``notes_by_category``,
    ``discharge_notes``. A file that ends inside a quoted field is an error naming the line it began on.
    """
    path = find_table(mimic_dir, "NOTEEVENTS")
    header = read_header(path, encoding)
    names = column_map(path, header, _NOTE_KEEP)
    include = list(dict.fromkeys([*names.values(), header[-1]]))  # the last column: to check the file's end
    bad_rows: list[str] = []

    def on_invalid(row) -> str:
        bad_rows.append(f"expected {row.expected_columns} fields, found {row.actual_columns}: {str(row.text)[:80]!r}")
        return "error"

    read = pacsv.ReadOptions(block_size=NOTE_BLOCK_BYTES, encoding=encoding)
    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(include_columns=include, column_types={c: pa.string() for c in include},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    category, last_value = names["CATEGORY"], None
    categories: Counter = Counter()
    kept, total = [], 0
    stream = _TailKeeper(path)
    try:
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        bar = _progress(progress, "NOTEEVENTS", unit=" notes")
        for batch in reader:
            if batch.num_rows:
                last_value = batch.column(header[-1])[-1].as_py()
            cats = pc.value_counts(batch.column(category))
            for item in cats.to_pylist():
                categories[item["values"]] += item["counts"]
            mask = pc.equal(batch.column(category), DISCHARGE)
            chosen = pa.Table.from_batches([batch]).filter(mask)
            record = pc.add(pc.indices_nonzero(mask), total)
            kept.append(pa.table([chosen.column(names[c]) for c in _NOTE_KEEP if c != "CATEGORY"] + [record],
                                 names=[c.lower() for c in _NOTE_KEEP if c != "CATEGORY"] + ["record"]))
            total += batch.num_rows
            bar.update(batch.num_rows)
        bar.close()
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as e:
        raise _broken(path, len(header), encoding, bad_rows[0] if bad_rows else str(e).splitlines()[0]) from e
    finally:
        stream.close()
    if last_value is not None and not _closed_properly(stream.tail, last_value, encoding):
        raise _broken(path, len(header), encoding, "the file ends inside a quoted field")
    if not kept:
        raise DataError(f"{path}: no rows (expected a header and note rows)")
    notes = pa.concat_tables(kept)
    del kept
    texts = notes.column("text")
    df = notes.drop_columns(["text"]).to_pandas()
    del notes
    pa.default_memory_pool().release_unused()  # the parsed blocks of every category, freed

    def at(i: int) -> str:  # error messages only: finding the line re-reads the file
        return _note_where(path, df, i, encoding)

    df["row_id"] = _to_int(df["row_id"], path, "ROW_ID", at)
    df["subject_id"] = _to_int(df["subject_id"], path, "SUBJECT_ID", at)
    df["hadm_id"] = _to_int(df["hadm_id"], path, "HADM_ID", at, allow_empty=True)
    df["iserror"] = df["iserror"].str.strip().isin(["1", "1.0"])
    counts = {"notes_total": total, "notes_by_category": dict(sorted(categories.items())),
              "discharge_notes": len(df)}
    return df, texts, counts


def _note_where(path: Path, df: pd.DataFrame, i: int, encoding: str) -> str:
    record = int(df["record"].iloc[i])
    line = record_start_line(path, record, encoding)
    return f"record {record} (line {line}, ROW_ID {str(df['row_id'].iloc[i]).strip()[:20]})"


def duplicate_notes(notes: pd.DataFrame, texts: pa.ChunkedArray, path: Path) -> pd.Series:
    """True for each note that repeats an earlier one exactly: same admission and same text.

    ``notes`` must be in the order to keep (the first copy is the one kept); its column ``pos`` is each note's
    row in ``texts``. A ROW_ID that appears twice with different admission or text is not a duplicate but a
    damaged file: a :class:`DataError`. Only notes that share an admission with another note are compared,
    one text at a time (a copy can only be among those; texts are compared in full where their hashes match).
    """
    dup_id = notes.duplicated("row_id", keep=False)
    if dup_id.any():
        sub = notes[dup_id]
        same = sub.assign(text=texts.take(sub["pos"].to_numpy()).to_pylist()).drop_duplicates(
            ["row_id", "hadm_id", "text"])
        clash = same[same.duplicated("row_id", keep=False)]
        if len(clash):
            first = clash.iloc[0]
            recs = notes.loc[notes["row_id"] == first["row_id"], "record"].tolist()
            raise DataError(f"{path}, records {recs}, field ROW_ID: ROW_ID {first['row_id']} appears on notes "
                            "with different HADM_ID or TEXT (expected each ROW_ID once)")
    shared = notes.duplicated("hadm_id", keep=False).to_numpy()
    repeated = np.zeros(len(notes), dtype=bool)
    first: dict[tuple, list[int]] = {}  # (admission, hash of text) -> rows in texts of the first copies
    where = np.flatnonzero(shared)
    for i, pos, hadm in zip(where, notes["pos"].iloc[where].tolist(), notes["hadm_id"].iloc[where].tolist()):
        text = texts[pos].as_py()
        key = (hadm, hash(text))
        earlier = first.setdefault(key, [])
        if any(texts[q].as_py() == text for q in earlier):
            repeated[i] = True
        else:
            earlier.append(pos)
    return pd.Series(repeated, index=notes.index)


# ------------------------------------------------------------------------------------------- codes
def _read_small_csv(path: Path, header: list[str], columns: dict[str, str], what: str, encoding: str
                    ) -> pd.DataFrame:
    """Columns of a small CSV as strings (codes keep leading zeros), renamed to the expected names."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=list(columns.values()),
                         encoding=encoding)
    except UnicodeDecodeError as e:
        raise _broken(path, len(header), encoding, str(e)) from e
    except (pd.errors.ParserError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable MIMIC-III {what} CSV: {str(e).splitlines()[0]}") from e
    return df.rename(columns={v: k for k, v in columns.items()})


def read_code_table(mimic_dir: Path, name: str, encoding: str = "utf-8") -> pd.DataFrame:
    """DIAGNOSES_ICD or PROCEDURES_ICD as strings (codes keep leading zeros), in file order."""
    path = find_table(mimic_dir, name)
    header = read_header(path, encoding)
    df = _read_small_csv(path, header, column_map(path, header, CODE_COLUMNS), name, encoding)

    def where(i: int) -> str:  # code tables hold no multi-line fields: record i is on line i + 2
        return f"record {i} (line {i + 2}, ROW_ID {df['ROW_ID'].iloc[i].strip()[:20]})"

    out = pd.DataFrame({
        "subject_id": _to_int(df["SUBJECT_ID"], path, "SUBJECT_ID", where),
        "hadm_id": _to_int(df["HADM_ID"], path, "HADM_ID", where),
        "raw_code": df["ICD9_CODE"].str.strip(),
    })
    out.attrs["n_columns"] = len(header)
    out.attrs["path"] = str(path)
    return out


def read_code_descriptions(mimic_dir: Path, encoding: str = "utf-8") -> dict[tuple[str, bool], str]:
    """``{(undotted code, is_diagnosis): LONG_TITLE}`` from MIMIC's D_ICD tables, where present."""
    out: dict[tuple[str, bool], str] = {}
    for name, is_diag in (("D_ICD_DIAGNOSES", True), ("D_ICD_PROCEDURES", False)):
        path = find_table(mimic_dir, name, required=False)
        if path is None:
            continue
        header = read_header(path, encoding)
        df = _read_small_csv(path, header, column_map(path, header, _DESCRIPTION_KEEP), name, encoding)
        for code, title in zip(df["ICD9_CODE"], df["LONG_TITLE"]):
            out[(code.strip(), is_diag)] = title.strip()
    return out


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
