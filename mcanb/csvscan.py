"""Finding *where* a raw CSV file is broken: line, byte offset and record, for error messages.

The fast readers (:mod:`mcanb.data`, pyarrow) know that a file is broken but not always where: pyarrow
reports a malformed multi-line record as "near line None" and undecodable bytes by column only. When
reading fails, or when the file ends inside a quoted field, :func:`locate_problem` scans the file once more
in Python (slow: about a minute per GB, so only on the error path) and returns a sentence naming the line,
the byte offset, and the record, so the user can open the file at that place.

It parses as RFC 4180 (the quoting MIMIC-III and pandas use) with Python's ``csv`` module in strict mode:
a quote that is never closed, text after a closing quote, a record with the wrong number of fields, or
bytes that are not valid in the file's encoding.
"""
from __future__ import annotations

import csv
import gzip
import sys
from contextlib import contextmanager
from pathlib import Path


class _BadBytes(Exception):
    def __init__(self, line: int, offset: int, bad: bytes, reason: str) -> None:
        super().__init__(reason)
        self.line, self.offset, self.bad, self.reason = line, offset, bad, reason


@contextmanager
def _field_limit():
    """Python's csv refuses fields over 128 KiB by default; a long note is legal, so lift it here only."""
    old = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def locate_problem(path: Path, n_columns: int, encoding: str = "utf-8") -> str | None:
    """The first problem in the CSV file ``path`` as a sentence, or None when the file parses cleanly.

    ``n_columns`` is the header's width; every record must have that many fields. Lines are counted from 1
    (the header is line 1), byte offsets from 0 in the uncompressed file, records from 0 (first data row).
    """
    path = Path(path)
    pos = {"line": 0, "offset": 0}
    dec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding

    def lines():
        with _open_binary(path) as f:
            for raw in f:
                pos["line"] += 1
                try:
                    text = raw.decode(dec if pos["line"] == 1 else encoding)
                except UnicodeDecodeError as e:
                    raise _BadBytes(pos["line"], pos["offset"] + e.start, raw[e.start:e.end + 3], e.reason) from e
                pos["offset"] += len(raw)
                yield text

    reader = csv.reader(lines(), strict=True)
    record, start, first = -1, 1, ""
    with _field_limit():
        try:
            while True:
                start = pos["line"] + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return None
                if not row:  # blank line: skipped by every reader
                    continue
                first = row[0][:20]
                if len(row) != n_columns:
                    what = "the header" if record < 0 else f"record {record} (first field {first!r})"
                    span = f"line {start}" if pos["line"] == start else f"lines {start}-{pos['line']}"
                    hint = (" (a quoted field that is never closed swallows the lines after it)"
                            if pos["line"] > start else "")
                    return (f"{what} on {span}: expected {n_columns} fields, found {len(row)}{hint}")
                record += 1
        except csv.Error as e:
            where = f"record {record}" if record >= 0 else "the header"
            if "unexpected end of data" in str(e):
                return (f"{where}, starting on line {start}: a quoted field that begins on line {start} is never "
                        f"closed (the file ends inside it, {pos['line'] - start + 1} lines later); "
                        "the file is truncated or a quote character (\") is missing")
            return (f"{where}, starting on line {start}: malformed quoting near line {pos['line']} ({e}); a quote "
                    "character (\") is probably missing or extra in this record")
        except _BadBytes as b:
            return (f"line {b.line}, byte offset {b.offset} (record {record}, which starts on line {start}): "
                    f"bytes {b.bad[:6]!r} are not valid {encoding} ({b.reason}). If the whole file uses another "
                    "encoding, set the preprocessing option encoding (e.g. 'latin-1' or 'cp1252'); otherwise "
                    "repair these bytes")
        except (OSError, EOFError) as e:
            return f"cannot be read after line {pos['line']}: {e}"


def record_start_line(path: Path, record: int, encoding: str = "utf-8") -> int | None:
    """The line (from 1) on which data row ``record`` (from 0) of the CSV file ``path`` starts."""
    path = Path(path)
    n = {"line": 0}

    def lines():
        with _open_binary(path) as f:
            for raw in f:
                n["line"] += 1
                yield raw.decode(encoding, errors="replace")

    reader = csv.reader(lines())
    seen = -1
    with _field_limit():
        try:
            while True:
                start = n["line"] + 1
                row = next(reader)
                if not row:
                    continue
                if seen == record:
                    return start
                seen += 1
        except (StopIteration, csv.Error, OSError, EOFError):
            return None
