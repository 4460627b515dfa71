"""The generic input format: one "coded notes" table (CSV or Parquet), a row per document.

Columns ``id`` (integers, or any strings: see below), ``text``, ``codes`` (``;``-separated, or a list column in
Parquet), ``split`` (``train``/``dev``/``test``) and optionally ``subject_id``; names match ignoring case. For
MIMIC-IV, other corpora or a hospital's own notes; codes pass through unchanged (no ICD-9 dot rules).

What is decided, and counted in ``report.json`` (``counts``) or listed in ``dropped.csv``:

* ids: integer ids are kept; if any id is not an integer, every id is read as a string and numbered
  ``1 + rank`` among the sorted distinct ids (the number is the ``hadm_id`` of every output file; the
  preprocessing writes ``document_ids.csv`` with both, and counts ``string_ids``);
* a row repeated exactly (same id, text, codes, split) is read once (``dropped: duplicate_row``);
  the same id with different content is an error;
* missing text (an empty cell, a Parquet null) becomes an empty document, dropped later as
  ``empty_text``;
* codes: spaces around a code are removed (``codes_with_spaces``), empty items (``A;;B``) skipped
  (``empty_code_items``), a code repeated in one row kept once (``repeated_codes``); a code with a ``,``
  or ``|`` or a space inside is an error (another separator: convert to ``;`` first), and so is a cell with
  brackets or quotes (``['A41.9']``: a list that pandas wrote to CSV as text);
* split names: case and surrounding spaces are ignored (``split_names_normalised``); any other name
  (``validation``) is an error listing the names found, and so is a table without train, dev or test rows
  (:func:`split_problem` finds both from the split column alone, before a run starts).

Every error names the file, the row (0-based data row, and its line in a CSV without multi-line text),
the field, and what was expected.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .data import DataError, _text_encoding, _to_int, column_map, read_header

COLUMNS = ["id", "text", "codes", "split"]
SPLIT_NAMES = ("train", "dev", "test")
_BAD_IN_CODE = re.compile(r"[,|\s]")
_LIST_LITERAL = re.compile(r"[\[\]'\"]")     # ['A41.9']: a Python list written to CSV as text


def _read(path: Path, encoding: str) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except UnicodeDecodeError as e:
        from .csvscan import locate_problem

        where = locate_problem(path, len(pd.read_csv(path, nrows=0, encoding="latin-1").columns), encoding)
        raise DataError(f"{path}: not readable as {encoding}: {where or e}") from e
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear message
        raise DataError(f"{path}: cannot be read as a {'Parquet' if path.suffix == '.parquet' else 'CSV'} "
                        f"table ({str(e).splitlines()[0]})") from e


def read_coded_table(path: Path, encoding: str = "utf-8") -> tuple[pd.DataFrame, dict, dict[str, list[int]]]:
    """The table as (hadm_id, subject_id, text, codes: list[str], split), with counts and dropped ids.

    ``hadm_id`` holds the table's ``id``. Returns ``(frame, counts, {reason: [id, ...]})``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: coded-notes table not found")
    df = _read(path, encoding)
    names = column_map(path, [str(c) for c in df.columns], COLUMNS)
    optional = {str(c).strip().casefold(): c for c in df.columns}.get("subject_id")
    df = df.rename(columns={v: k for k, v in names.items()})
    if optional is not None:
        df = df.rename(columns={optional: "subject_id"})
    counts: dict = {"documents_in_table": len(df)}
    where = _where(path)
    ids, names = _ids(df["id"], path, where)
    if names is not None:
        counts["string_ids"] = int(names.nunique())
    text = df["text"]
    missing = text.isna().to_numpy()
    wrong = [i for i, t in enumerate(text) if not missing[i] and not isinstance(t, str)]
    if wrong:
        raise DataError(f"{path}, {where(wrong[0])}, field text: expected a string, "
                        f"got {type(text.iloc[wrong[0]]).__name__}")
    counts["missing_text"] = int(missing.sum())
    text = text.where(~missing, "")

    split_raw = df["split"].astype(str)
    split = check_splits(split_raw, path, where)
    counts["split_names_normalised"] = int((split != split_raw).sum())

    tally: Counter = Counter()
    codes = [_parse_codes(c, path, where(i), tally) for i, c in enumerate(df["codes"])]
    counts.update({k: tally[k] for k in ("codes_with_spaces", "empty_code_items", "repeated_codes")})
    subject = (_to_int(df["subject_id"].astype(str), path, "subject_id", where, allow_empty=True)
               if "subject_id" in df.columns else pd.array([pd.NA] * len(df), dtype="Int64"))
    out = pd.DataFrame({"hadm_id": ids.astype("int64").to_numpy(), "subject_id": subject,
                        "text": text.to_numpy(), "codes": codes, "split": split.to_numpy()})
    if names is not None:
        out["id"] = names.to_numpy()
    dropped = _duplicate_rows(out, path, where)
    counts["duplicate_rows"] = len(dropped)
    out = out.drop_duplicates("hadm_id", keep="first").reset_index(drop=True)
    return out, counts, {"duplicate_row": dropped}


def _where(path: Path):
    """``where(i)``: how an error names data row ``i`` (0-based), with its line in a CSV."""
    line = "" if path.suffix == ".parquet" else " (line {})"
    return lambda i: f"row {i}" + line.format(i + 2)


def check_splits(split_raw: pd.Series, path: Path, where) -> pd.Series:
    """The split names, lower case without surrounding spaces; a ``DataError`` for another name (``validation``)
    or when train, dev or test has no row."""
    split = split_raw.str.strip().str.lower()
    bad = ~split.isin(SPLIT_NAMES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        found = dict(Counter(split_raw[bad]).most_common(5))
        raise DataError(f"{path}, {where(i)}, field split: expected train, dev or test (any case), got "
                        f"{split_raw.iloc[i]!r}; unknown names and their row counts: {found}")
    sizes = {name: int((split == name).sum()) for name in SPLIT_NAMES}
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        raise DataError(f"{path}, field split: no {' or '.join(empty)} rows (rows per split: {sizes}); expected rows "
                        "of all three splits: training stops early and picks thresholds on dev, and reports results "
                        "on test. Assign some documents to each split.")
    return split


def split_problem(path: Path, encoding: str = "utf-8") -> str | None:
    """What is wrong with the table's ``split`` column (the message of :func:`check_splits`), read from that column
    alone, for the checks before a run starts. None when it is fine, and when the column cannot be read here (the
    preprocessing then names the problem)."""
    path = Path(path)
    try:
        column = _read_split_column(path, encoding)
    except Exception:  # noqa: BLE001 - unreadable rows are reported by read_coded_table, with their line
        return None
    if column is None:
        return None
    try:
        check_splits(column.astype(str), path, _where(path))
    except DataError as e:
        return str(e)
    return None


def _read_split_column(path: Path, encoding: str) -> pd.Series | None:
    """The ``split`` column alone, found as every column is (:func:`mcanb.data.column_map`: any case, a CSV's
    byte-order mark skipped), or None when the table has none."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        header = pq.read_schema(path).names
    else:
        header = read_header(path, encoding)
    try:
        name = column_map(path, header, ["split"])["split"]
    except DataError:
        return None
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=[name])[name]
    return pd.read_csv(path, usecols=[name], dtype=str, keep_default_na=False, encoding=_text_encoding(encoding))[name]


def _ids(values: pd.Series, path: Path, where) -> tuple[pd.Series, pd.Series | None]:
    """Integer ids as they are; otherwise (any id that is not an integer) every id is a string and gets the
    integer ``1 + its rank among the sorted distinct ids`` (independent of row order), returned with the names."""
    s = values.fillna("").astype(str).str.strip()
    num = pd.to_numeric(s.where(s != "", None), errors="coerce")
    if num.notna().all() and (num == np.floor(num)).all():
        return _to_int(s, path, "id", where), None
    if (s == "").any():
        i = int(np.flatnonzero((s == "").to_numpy())[0])
        raise DataError(f"{path}, {where(i)}, field id: expected an id (a string or an integer), got an empty cell")
    rank = {name: i for i, name in enumerate(sorted(set(s)), start=1)}
    return s.map(rank).astype("Int64"), s


def _duplicate_rows(out: pd.DataFrame, path: Path, where) -> list[int]:
    """Ids of rows that repeat an earlier row exactly; an error for an id reused with other content."""
    dup = out["hadm_id"].duplicated(keep=False).to_numpy()
    if not dup.any():
        return []
    key = out.assign(codes=out["codes"].map(";".join), subject_id=out["subject_id"].astype(str))
    rows = key[dup]
    distinct = rows.drop_duplicates(["hadm_id", "subject_id", "text", "codes", "split"])
    clash = distinct[distinct["hadm_id"].duplicated(keep=False)]
    if len(clash):
        i, j = clash.index[:2]
        shown = out["id"][j] if "id" in out.columns else out["hadm_id"][j]      # the id as the file writes it
        raise DataError(f"{path}, {where(j)}, field id: id {shown} is also on {where(i)} with a "
                        "different text, codes, split or subject_id (expected one row per document)")
    return out.loc[out["hadm_id"].duplicated(keep="first"), "hadm_id"].tolist()


def _parse_codes(value, path: Path, where: str, tally: Counter) -> list[str]:
    """``"A; B;;A"`` → ``["A", "B"]``, counting what was cleaned; an error for another separator."""
    if isinstance(value, str):
        items = value.split(";")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = [str(c) for c in value]
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        items = []
    else:
        raise DataError(f"{path}, {where}, field codes: expected ';'-separated codes or a list, "
                        f"got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        _refuse_list_literal(item, path, where)
        code = item.strip()
        if not code:
            tally["empty_code_items"] += 1
            continue
        if _BAD_IN_CODE.search(code):
            raise DataError(f"{path}, {where}, field codes: code {code!r} contains a comma, '|' or a space; "
                            f"expected codes separated by ';' only (got {str(value)[:60]!r})")
        tally["codes_with_spaces"] += code != item
        if code in out:
            tally["repeated_codes"] += 1
            continue
        out.append(code)
    return out


def _refuse_list_literal(value: str, path: Path, where: str) -> None:
    """An error for brackets or quotes in a codes cell: ``['A41.9', 'I10']`` is a list that pandas wrote as text."""
    if _LIST_LITERAL.search(value):
        raise DataError(f"{path}, {where}, field codes: {value[:60]!r} contains brackets or quotes, as a Python list "
                        "written to CSV does; expected codes separated by ';' (e.g. A41.9;I10), or a list column "
                        "in Parquet")
