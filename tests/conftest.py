"""Shared test fixtures: the real CAML split files (when ../shared is present) and the toy fixture."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcanb.paths import ROOT

SHARED_SPLITS = Path(os.environ.get("MCANB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "caml_mimic3_splits"


@pytest.fixture(scope="session")
def caml_splits_dir() -> Path:
    """The real CAML split files shipped in ../shared/data (skipped where that folder is absent)."""
    if not (SHARED_SPLITS / "train_full_hadm_ids.csv").exists():
        pytest.skip(f"{SHARED_SPLITS} not present")
    return SHARED_SPLITS
