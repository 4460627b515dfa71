"""Reading what preprocessing wrote: documents, labels, vocabulary and embeddings, as arrays for models.

``load("outputs/01_preprocess/toy", "50")`` gives a :class:`Processed` whose ``token_ids``,
``label_ids`` and ``multi_hot`` feed the models and the metrics. Token id 0 is PAD, 1..V the vocabulary
(``vocab.csv`` order), V+1 UNK. The tokenisation the documents went through (``token_rule``, ``regex_engine``)
travels with them in ``preprocess_config.yaml``, so code descriptions and new text are tokenised the same way.
Explained in ``notebooks/04_cnn_retraining.ipynb``.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .errors import DamagedOutput
from .paths import OUTPUTS, resolve
from .splits import SPLITS

LABEL_SPACES = ("full", "50")


@dataclass
class Processed:
    """One label space of a preprocessed dataset."""

    data_dir: Path
    label_space: str
    vocab: list[str]                    # tokens, id = position + 1
    labels: pd.DataFrame                # index, code, description, train_count, artefact
    frames: dict[str, pd.DataFrame]     # split -> hadm_id, subject_id, text, codes, length
    embeddings: np.ndarray | None       # (len(vocab) + 2, dim) or None if word2vec was skipped
    token_rule: str                     # how the documents were tokenised: "caml" | "alpha" (mcanb.text)
    regex_engine: str                   # "re" | "regex" (mcanb.text)
    _w2i: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def codes(self) -> list[str]:
        return self.labels["code"].tolist()

    @property
    def num_codes(self) -> int:
        return len(self.labels)

    @property
    def vocab_size(self) -> int:
        """Number of token ids including PAD (0) and UNK (last)."""
        return len(self.vocab) + 2

    def token_ids(self, split: str, max_length: int | None = None) -> list[np.ndarray]:
        """int32 token ids per document (unknown tokens -> UNK), truncated to ``max_length``."""
        if not self._w2i:
            self._w2i = {w: i for i, w in enumerate(self.vocab, start=1)}
        unk = len(self.vocab) + 1
        get = self._w2i.get
        out = []
        for text in self.frames[split]["text"]:
            toks = text.split()[:max_length] if max_length else text.split()
            out.append(np.fromiter((get(t, unk) for t in toks), dtype=np.int32, count=len(toks)))
        return out

    def label_ids(self, split: str) -> list[np.ndarray]:
        """Label indices per document (positions in ``codes``)."""
        c2i = {c: i for i, c in enumerate(self.codes)}
        return [np.array(sorted(c2i[c] for c in cs if c in c2i), dtype=np.int64)
                for cs in self.frames[split]["codes"]]

    def multi_hot(self, split: str) -> np.ndarray:
        """(n_docs, num_codes) uint8 gold matrix for the metrics."""
        ids = self.label_ids(split)
        y = np.zeros((len(ids), self.num_codes), dtype=np.uint8)
        for row, cols in enumerate(ids):
            y[row, cols] = 1
        return y

    def hadm_ids(self, split: str) -> np.ndarray:
        return self.frames[split]["hadm_id"].to_numpy(dtype=np.int64)


def load(data_dir: str | Path, label_space: str) -> Processed:
    """Load one label space from a preprocessing output folder (``outputs/01_preprocess/<run>``)."""
    if label_space not in LABEL_SPACES:
        raise ValueError(f"label_space must be one of {LABEL_SPACES}, got {label_space!r}")
    d = resolve(data_dir)
    if not (d / "report.json").exists():
        from .params import ParameterError
        raise ParameterError(f"data_dir: {preprocessed_problem(d)}")
    space = d / label_space
    with _read_or_explain(d, space / "train.parquet"):
        frames = {s: pd.read_parquet(space / f"{s}.parquet") for s in SPLITS}
    for f in frames.values():
        f["codes"] = f["codes"].apply(list)
    with _read_or_explain(d, space / "labels.csv"):
        labels = pd.read_csv(space / "labels.csv", dtype={"code": str, "description": str, "artefact": str},
                             keep_default_na=False)
    with _read_or_explain(d, d / "vocab.csv"):
        vocab = (d / "vocab.csv").read_text(encoding="utf-8").split("\n")[:-1]
    emb_path = d / "embeddings.npy"
    with _read_or_explain(d, emb_path):
        emb = np.load(emb_path) if emb_path.exists() else None
    tokenisation = _tokenisation(d)
    return Processed(d, label_space, vocab, labels, frames, emb, **tokenisation)


@contextmanager
def _read_or_explain(d: Path, what: Path):
    """Any failure to read the preprocessing output in ``d`` becomes one ``DamagedOutput`` naming the file (the
    one that failed when the reader says) and the commands that rebuild the folder."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - pyarrow, pandas, numpy and OS errors alike
        path = getattr(e, "filename", None) or what
        raise DamagedOutput(f"{path}: preprocessing output of {d} cannot be read ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''}); it is rebuilt by notebook 01: "
                            f"rm -r {d} && mcanb run 01_preprocess <run> (run_name {d.name})") from e


def _tokenisation(d: Path) -> dict[str, str]:
    """``token_rule`` and ``regex_engine`` of the run in ``d``, from its ``preprocess_config.yaml``."""
    path = d / "preprocess_config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: the tokenisation of {d} is unknown; rerun mcanb.preprocess.run")
    cfg = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("token_rule", "regex_engine") if k not in cfg]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}; rerun mcanb.preprocess.run")
    return {k: str(cfg[k]) for k in ("token_rule", "regex_engine")}


def report(data_dir: str | Path) -> dict:
    """The preprocessing report (counts, drops by reason, timings) of ``data_dir``."""
    return json.loads((resolve(data_dir) / "report.json").read_text())


def have_preprocessed() -> list[str]:
    return sorted(p.parent.name for p in (OUTPUTS / "01_preprocess").glob("*/report.json"))


def preprocessed_problem(d: Path) -> str:
    """Why ``d`` is not a preprocessing output, with the folders that are (one message, shared with the notebooks)."""
    have = ", ".join(have_preprocessed()) or "none yet"
    fix = (f"data_dir must name a folder that notebook 01_preprocess wrote (outputs/01_preprocess/<run_name>; have: "
           f"{have}); make one with `mcanb run 01_preprocess <run>`")
    if OUTPUTS in d.parents and d.relative_to(OUTPUTS).parts[0] != "01_preprocess":
        return f"{d} is an output folder of notebook {d.relative_to(OUTPUTS).parts[0]}, not of 01_preprocess; {fix}"
    if not d.exists():
        return f"{d} does not exist; {fix}"
    return f"{d} holds no report.json (not a finished preprocessing output); {fix}"
