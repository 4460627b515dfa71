"""CAML's published MIMIC-III splits: download at a pinned commit, verify SHA-256, cache, load.

The six files (``{train,dev,test}_{full,50}_hadm_ids.csv``: no header, one HADM_ID per line) come from
``jamesmullenbach/caml-mimic`` (MIT). We fetch them from the commit that last touched them, check every
byte against the SHA-256 below, and cache them under ``~/.cache/mcanb/caml_splits`` (or
``$MCANB_CACHE``). An offline user points ``splits_dir`` at a folder that holds them; the same checksums
are verified there. Explained in ``notebooks/01_preprocess.ipynb``, §1.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .errors import UserError

SPLITS = ("train", "dev", "test")
LABEL_SPACES = ("full", "50")
CAML_COMMIT = "b2ecd94eba936238d4588aa7d92083b61382b321"  # last commit touching mimicdata/ (2018-04-23)
CAML_URL = ("https://raw.githubusercontent.com/jamesmullenbach/caml-mimic/"
            f"{CAML_COMMIT}/mimicdata/mimic3/{{name}}")
SHA256 = {
    "train_full_hadm_ids.csv": "abc4601d2cb798c7f26d35a4aa38b84b0050af03e102e455ab70651d654cb964",
    "dev_full_hadm_ids.csv": "5bc77377a675b17631844f6253ecec5c0b2b39c294aebe34aebbd2c733d8efb4",
    "test_full_hadm_ids.csv": "2861293b9057a3aa20b21b397590e4f148aceebdaa705622acf748ccb1b7216c",
    "train_50_hadm_ids.csv": "aee261aa45a2d89368e4da275c6c0a601b8bfc2c22e3af915d89adbc068716d2",
    "dev_50_hadm_ids.csv": "bcd69c3be3f4d8a7d29252ac8b5b99f197875b639ab12cf3ab324ee11612ea9e",
    "test_50_hadm_ids.csv": "cc3d3c22cbf0c68b62508712d4fc27baf5a5cb9705c1c8f8b6fc1618332c49b2",
}
# Published sizes (docs/reference.md §Splits): full 47,723 / 1,631 / 3,372; top-50 8,066 / 1,573 / 1,729.
CAML_SIZES = {("train", "full"): 47723, ("dev", "full"): 1631, ("test", "full"): 3372,
              ("train", "50"): 8066, ("dev", "50"): 1573, ("test", "50"): 1729}


class SplitError(UserError, ValueError):
    """A split file is missing, malformed, or fails its checksum."""


def split_filename(split: str, label_space: str) -> str:
    """``split_filename("train", "full") == "train_full_hadm_ids.csv"``."""
    if split not in SPLITS or label_space not in LABEL_SPACES:
        raise ValueError(f"split must be one of {SPLITS} and label_space one of {LABEL_SPACES}; "
                         f"got {split!r}, {label_space!r}")
    return f"{split}_{label_space}_hadm_ids.csv"


def cache_dir() -> Path:
    return Path(os.environ.get("MCANB_CACHE", Path.home() / ".cache" / "mcanb")) / "caml_splits"


def sha256(path: Path) -> str:
    from .identity import file_sha256
    return file_sha256(path)


def verify(path: Path) -> None:
    """Raise :class:`SplitError` unless ``path`` has CAML's published SHA-256 for its file name."""
    expected = SHA256.get(path.name)
    if expected is None:
        raise SplitError(f"{path}: not one of CAML's split files {sorted(SHA256)}")
    got = sha256(path)
    if got != expected:
        raise SplitError(f"{path}: SHA-256 {got[:16]}… does not match CAML's {expected[:16]}…; "
                         "the file is corrupt or from another source (delete it to re-download)")


def download_caml_splits(dest: Path | None = None, url: str = CAML_URL, force: bool = False) -> Path:
    """Fetch the six CAML split files into ``dest`` (default: the cache), verified; return ``dest``.

    ``url`` is a pattern with ``{name}``; tests use a ``file://`` URL. A file already present and
    verified is not fetched again. A download that fails its checksum is deleted and raises.
    """
    dest = Path(dest) if dest else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHA256:
        target = dest / name
        if target.exists() and not force:
            verify(target)
            continue
        source = url.format(name=name)
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
        os.close(fd)
        try:
            with urllib.request.urlopen(source, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            got = sha256(Path(tmp))
            if got != SHA256[name]:
                raise SplitError(f"{source}: downloaded SHA-256 {got[:16]}… does not match CAML's "
                                 f"{SHA256[name][:16]}…; nothing was kept")
            os.replace(tmp, target)
        except OSError as e:
            raise SplitError(f"could not download {source}: {e}. Offline? Put CAML's split files in a "
                             "folder and pass it as splits_dir") from e
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return dest


def read_hadm_ids(path: Path) -> np.ndarray:
    """HADM_IDs of one split file: one integer per line; clear errors for bad lines.

    CAML's files have no header; a first line ``HADM_ID`` (any case, quoted or not, as pandas' ``to_csv``
    writes it) is accepted, and a UTF-8 byte-order mark is skipped."""
    path = Path(path)
    if not path.exists():
        raise SplitError(f"{path}: split file not found")
    ids = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # a bad byte fails the digit test below
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s or (not ids and s.strip('"').upper() == "HADM_ID"):
                continue
            if not s.isdigit():
                raise SplitError(f"{path}, line {lineno}: expected one integer HADM_ID (or the header HADM_ID on "
                                 f"the first line), got {s[:40]!r}")
            ids.append(int(s))
    arr = np.asarray(ids, dtype=np.int64)
    if len(np.unique(arr)) != len(arr):
        raise SplitError(f"{path}: {len(arr) - len(np.unique(arr))} HADM_IDs appear more than once")
    return arr


def load_splits(splits_dir: Path, label_space: str, verify_caml: bool = False) -> dict[str, np.ndarray]:
    """``{"train": ids, "dev": ids, "test": ids}`` for ``label_space``; checks the splits are disjoint."""
    splits_dir = Path(splits_dir)
    out = {}
    for split in SPLITS:
        path = splits_dir / split_filename(split, label_space)
        if verify_caml:
            verify(path)
        out[split] = read_hadm_ids(path)
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        both = np.intersect1d(out[a], out[b])
        if len(both):
            raise SplitError(f"{splits_dir}: {len(both)} HADM_IDs are in both {a} and {b} "
                             f"({label_space}), e.g. {both[:3].tolist()}")
    return out
