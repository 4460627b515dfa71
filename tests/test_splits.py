"""CAML's split files: the loader against the real files, and the verified download (file:// only)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from mcanb import codes, splits


def test_real_caml_files_have_the_published_counts(caml_splits_dir):
    for split in splits.SPLITS:
        for space in splits.LABEL_SPACES:
            path = caml_splits_dir / splits.split_filename(split, space)
            splits.verify(path)
            assert len(splits.read_hadm_ids(path)) == splits.CAML_SIZES[(split, space)]
    full = splits.load_splits(caml_splits_dir, "full", verify_caml=True)
    fifty = splits.load_splits(caml_splits_dir, "50", verify_caml=True)
    assert sum(len(v) for v in full.values()) == 52726
    for s in splits.SPLITS:  # each _50 file is a subset of its _full file
        assert np.isin(fifty[s], full[s]).all()


def test_top50_resource_is_camls_list(caml_splits_dir):
    shipped = codes.caml_top50()
    real = (caml_splits_dir / "TOP_50_CODES.csv").read_text().split()
    assert shipped == real
    procedures = [c for c in shipped if "." in c and len(c.split(".")[0]) == 2 and c[0].isdigit()]
    assert len(procedures) == 17 and len(shipped) - len(procedures) == 33


def test_download_through_file_url_verifies_and_caches(caml_splits_dir, tmp_path):
    url = caml_splits_dir.as_uri() + "/{name}"
    dest = splits.download_caml_splits(tmp_path / "cache", url=url)
    assert sorted(p.name for p in dest.iterdir()) == sorted(splits.SHA256)
    # second call finds verified files and fetches nothing (a broken URL would fail otherwise)
    splits.download_caml_splits(dest, url="file:///nonexistent/{name}")


def test_download_with_checksum_mismatch_keeps_nothing(caml_splits_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(caml_splits_dir, src)
    with open(src / "dev_50_hadm_ids.csv", "a") as f:
        f.write("100001\n")
    dest = tmp_path / "cache"
    with pytest.raises(splits.SplitError, match="dev_50_hadm_ids.csv.*SHA-256"):
        splits.download_caml_splits(dest, url=src.as_uri() + "/{name}")
    assert not (dest / "dev_50_hadm_ids.csv").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_unreachable_url_says_what_to_do(tmp_path):
    with pytest.raises(splits.SplitError, match="splits_dir"):
        splits.download_caml_splits(tmp_path, url="file:///nonexistent/{name}")


def test_bad_split_files_get_clear_errors(tmp_path):
    bad = tmp_path / "train_full_hadm_ids.csv"
    bad.write_text("100001\nabc\n")
    with pytest.raises(splits.SplitError, match="line 2.*integer"):
        splits.read_hadm_ids(bad)
    with pytest.raises(splits.SplitError, match="not found"):
        splits.read_hadm_ids(tmp_path / "missing.csv")
    for s, ids in (("train", "1\n2\n"), ("dev", "2\n"), ("test", "3\n")):
        (tmp_path / f"{s}_full_hadm_ids.csv").write_text(ids)
    with pytest.raises(splits.SplitError, match="both train and dev"):
        splits.load_splits(tmp_path, "full")
