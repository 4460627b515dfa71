"""Shared test fixtures: the real CAML split files (when a copy is at hand) and the toy fixture."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# A folder holding a copy of CAML's six split files and TOP_50_CODES.csv (docs/reference.md §Splits), named by
# the environment because the repository never ships them; the tests that need it skip without it.
CAML_SPLITS = Path(os.environ["MCANB_CAML_SPLITS"]) if os.environ.get("MCANB_CAML_SPLITS") else None


@pytest.fixture(scope="session")
def caml_splits_dir() -> Path:
    """The real CAML split files (skipped where no copy is present; set MCANB_CAML_SPLITS to a folder)."""
    if CAML_SPLITS is None:
        pytest.skip("MCANB_CAML_SPLITS is not set (a folder with CAML's split files)")
    if not (CAML_SPLITS / "train_full_hadm_ids.csv").exists():
        pytest.fail(f"MCANB_CAML_SPLITS={CAML_SPLITS} holds no train_full_hadm_ids.csv")
    return CAML_SPLITS
