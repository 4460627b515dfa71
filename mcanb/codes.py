"""ICD-9 code strings: dot insertion, CAML's type-inference artefacts, and code descriptions.

MIMIC-III stores ICD-9 codes without dots. Diagnosis ``4019`` and procedure ``4019`` are different codes,
so the dot is put back before the two tables are merged (Mullenbach et al. 2018, CAML):

* diagnosis codes: after character 3 (``4019`` → ``401.9``, ``V5861`` → ``V58.61``), E-codes after
  character 4 (``E8889`` → ``E888.9``); codes of at most 3 (E: 4) characters unchanged;
* procedure codes: after character 2 (``9671`` → ``96.71``; ``17`` → ``17.``).

These are ICD-9 rules. ICD-10 or other code systems pass through unchanged (``code_system="other"``).

CAML's label space carries two artefacts of reading the code tables with pandas and no ``dtype``
(docs/reference.md §Preprocessing). pandas' C parser infers a column's type block by block
(blocks of ``2**k`` rows, the largest power of two below ``2**20 / n_columns``): a block whose values all
look like integers becomes ``int64`` (``0117`` → ``117``, leading zeros lost), a block of numbers with a
decimal point becomes ``float64`` (``37.20`` → ``37.2``, ``17.`` → ``17.0``), and a block with any other
string stays strings. :func:`pandas_block_inference` reproduces that mechanism exactly (a test checks it
against the installed pandas), so ``caml_compat=True`` rebuilds CAML's 8,921-label space from the raw
tables instead of from a hard-coded list. Explained in ``notebooks/01_preprocess.ipynb``, §3.
"""
from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .paths import RESOURCES

CODE_SYSTEMS = ("icd9", "other")

# pandas' default NA strings (pandas.io.parsers: STR_NA_VALUES)
_PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)\Z")


def add_dot(code: str, is_diagnosis: bool) -> str:
    """Insert the ICD-9 dot into an undotted MIMIC code (CAML's ``reformat``).

    Example: ``add_dot("4019", True) == "401.9"``; ``add_dot("E8889", True) == "E888.9"``;
    ``add_dot("9671", False) == "96.71"``; ``add_dot("17", False) == "17."``.
    """
    code = code.replace(".", "")
    if is_diagnosis:
        cut = 4 if code.startswith("E") else 3
        return code[:cut] + "." + code[cut:] if len(code) > cut else code
    return code[:2] + "." + code[2:]


def block_rows(n_columns: int) -> int:
    """Rows per block of pandas' low-memory type inference for a table of ``n_columns`` columns.

    Example: ``block_rows(5) == 131072`` (MIMIC's code tables and CAML's ``ALL_CODES_filtered.csv``).
    """
    heuristic = 2 ** 20 // n_columns
    rows = 1
    while rows * 2 < heuristic:
        rows *= 2
    return rows


def _block_kind(values: list[str]) -> str:
    kind = "int"
    for v in values:
        if v in _PANDAS_NA:
            kind = "float" if kind == "int" else kind  # NaN forces int -> float
        elif _INT.match(v):
            continue
        elif _FLOAT.match(v):
            kind = "float"
        else:
            return "str"
    return kind


def pandas_block_inference(values: list[str], n_columns: int, na: str) -> list[str]:
    """What ``str(value)`` gives after ``pandas.read_csv`` (no dtype, default low_memory) reads a column.

    ``values`` are the raw CSV field strings of one column in file order; ``n_columns`` is the table's width
    (it sets the block size); ``na`` is how a missing value is written afterwards (``"nan"`` for CAML's
    ``str(row[4])``, ``""`` for ``to_csv``). Blocks of integers and floats are combined as pandas does:
    if any block is strings, numeric blocks keep their own type; otherwise int and float blocks all become
    float.

    Example: ``pandas_block_inference(["0117", "37.20"], 5, "nan") == ["117.0", "37.2"]``.
    """
    size = block_rows(n_columns)
    blocks = [values[i:i + size] for i in range(0, len(values), size)]
    kinds = [_block_kind(b) for b in blocks]
    if "str" not in kinds and "float" in kinds:
        kinds = ["float"] * len(kinds)
    out: list[str] = []
    for block, kind in zip(blocks, kinds):
        for v in block:
            if v in _PANDAS_NA:
                out.append(na)
            elif kind == "int":
                out.append(str(int(v)))
            elif kind == "float":
                out.append(repr(float(v)))
            else:
                out.append(v)
    return out


@lru_cache(maxsize=1)
def icd9_descriptions() -> dict[str, str]:
    """CAML's ``ICD9_descriptions`` (dotted code → description), shipped in ``mcanb/resources``.

    Includes category codes (``428``, ``96.7``) and range rows (``401-405.99``); MIT licence, see
    ``mcanb/resources/LICENSE.caml-mimic``.
    """
    path = Path(RESOURCES) / "ICD9_descriptions.gz"
    table: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            code, _, desc = line.rstrip("\n").partition("\t")
            table.setdefault(code.strip(), desc.strip())
    return table


def describe(codes: Iterable[str], extra: dict[str, str] | None = None) -> list[str]:
    """Descriptions for ``codes``: ``extra`` first (e.g. MIMIC's D_ICD tables), then CAML's file, else ``""``."""
    table = icd9_descriptions()
    extra = extra or {}
    return [extra.get(c) or table.get(c, "") for c in codes]


def caml_top50() -> list[str]:
    """CAML's published top-50 codes (MIMIC-III), in descending frequency order."""
    return (Path(RESOURCES) / "caml_top50_codes.csv").read_text().split()
