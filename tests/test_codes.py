"""ICD-9 dot rules and the emulation of pandas' block type inference behind CAML's label artefacts."""
from __future__ import annotations

import io
import warnings

import pandas as pd
import pytest

from mcanb import codes


@pytest.mark.parametrize("raw, is_diag, dotted", [
    ("4019", True, "401.9"), ("V5861", True, "V58.61"), ("E8889", True, "E888.9"), ("486", True, "486"),
    ("E849", True, "E849"), ("0389", True, "038.9"), ("25000", True, "250.00"),
    ("9671", False, "96.71"), ("3893", False, "38.93"), ("0117", False, "01.17"), ("17", False, "17."),
    ("117", False, "11.7"),  # CAML's int-cast victim: 0117 -> 117 -> 11.7 collides with a real code
])
def test_add_dot_follows_the_icd9_rules(raw, is_diag, dotted):
    assert codes.add_dot(raw, is_diag) == dotted


def test_block_rows_matches_pandas_heuristic():
    assert codes.block_rows(5) == 131072
    assert codes.block_rows(4) == 131072  # 2**20 // 4 = 262144; largest power of two below it
    assert codes.block_rows(11) == 65536


def _pandas_str(values: list[str], na: str) -> list[str]:
    """Write a 5-column CSV, read it back with pandas' defaults (as CAML did), return str() of the cells."""
    lines = ["A,B,ICD9_CODE,D,E"] + [f"1,{i},{v},," for i, v in enumerate(values)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        col = pd.read_csv(io.StringIO("\n".join(lines) + "\n"))["ICD9_CODE"]
    return [na if (isinstance(v, float) and v != v) else str(v) for v in col.tolist()]


N = codes.block_rows(5)


@pytest.mark.parametrize("name, values", [
    # block 0 holds a V code (strings); block 1 only procedure codes -> floats: 37.20 -> 37.2, 17. -> 17.0
    ("string block then float block", ["V58.61", "401.9"] * (N // 2) + ["37.20", "17.", "96.71", "", "038.9"] * 300),
    # all blocks integers: leading zeros lost, no mixed types
    ("integer blocks", ["0117", "9671", "0040"] * (N // 3 + 200)),
    # int block + float block (no string block): pandas makes the whole column float
    ("int then float", ["0117", "9671"] * (N // 2) + ["12.5", "3"] * 50),
    # an integer block with a missing value turns float
    ("int with NA", ["0117", "", "9671"] * 500),
    # strings everywhere: unchanged
    ("strings", ["V101", "E8889", "4019", "nan"] * 400),
])
def test_block_inference_matches_installed_pandas(name, values):
    for na in ("nan", ""):
        assert codes.pandas_block_inference(values, 5, na=na) == _pandas_str(values, na), name


def test_float_reread_creates_camls_artefacts():
    values = ["V58.61"] * N + ["17.", "37.20", "96.71"]
    out = codes.pandas_block_inference(values, 5, na="")
    assert out[-3:] == ["17.0", "37.2", "96.71"]
    assert out[0] == "V58.61"


def test_descriptions_cover_camls_top50():
    desc = codes.icd9_descriptions()
    top = codes.caml_top50()
    assert len(top) == 50 and len(set(top)) == 50
    assert all(desc.get(c) for c in top)
    assert desc["401.9"].lower().startswith("unspecified essential hypertension")
    assert codes.describe(["401.9", "XYZ"], {"XYZ": "custom"})[1] == "custom"
