"""CAML-compatible preprocessing: raw notes and codes → documents, label spaces, vocabulary, word2vec.

The steps (Mullenbach et al. 2018; docs/reference.md §Preprocessing), each counted in
``report.json`` with every dropped record listed in ``dropped.csv`` by reason (a reason that drops 10 % or more of
its records is also a warning: printed, and in ``report.json``'s ``warnings``):

1. read the discharge summaries of NOTEEVENTS (streamed); notes without HADM_ID are dropped (counted);
   ISERROR notes are kept, as in CAML and every reference (``drop_iserror=True`` drops them, counted);
   a note repeated exactly (same admission and text) is read once (``duplicate_notes="drop"``, counted);
   ``caml_compat`` keeps every copy, as CAML did;
2. one document per admission: its discharge summaries (report and addenda) joined with a space in
   ROW_ID order, tokenised by :mod:`mcanb.text` (``\\w+``, lowercase, numeric tokens dropped);
3. codes: dots inserted by the ICD-9 rules (:mod:`mcanb.codes`); codes read as strings by default;
   ``caml_compat=True`` reproduces CAML's int cast and float re-read as mechanisms (pandas block type
   inference), giving CAML's 8,921-label space on MIMIC-III; empty codes are dropped (counted);
4. splits: the CAML split files (or the fixture's, or a table's ``split`` column);
5. label spaces: ``full`` (codes of train ∪ dev ∪ test, sorted) and ``50`` (the ``top_k`` codes by row
   count over all documents, duplicate rows counted as CAML did; ties broken by code string); documents
   left with no label are dropped (counted);
6. vocabulary: tokens in ≥ ``vocab_min_docs`` training documents (full training split, shared by both
   label spaces); index 0 = PAD, last = UNK;
7. word2vec CBOW (gensim; 100 dims, window 5, min_count 0, 5 epochs) on the training split
   (``w2v_corpus="train"``, Edin et al.) or all documents (``"all"``, CAML); vectors L2-normalised.

This module holds the settings (:class:`PreprocessConfig`) and the pipeline (:func:`run`: steps 5 to 7 and the
outputs); steps 1 to 4 are :mod:`mcanb.documents`, the counts and drops of the report :mod:`mcanb.preprocess_report`.
Explained step by step in ``notebooks/01_preprocess.ipynb``.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pyarrow import csv as pacsv

from . import codes as icd
from . import data, identity, splits as splits_mod, text as textmod
from .documents import assign_splits, code_descriptions, mimic_documents, table_documents
from .params import ParameterError
from .paths import resolve
from .preprocess_report import Drops, compare_mimic3, drop_warnings

INPUT_FORMATS = ("mimic3", "table")
W2V_CORPORA = ("train", "all")
PAD, UNK = "**PAD**", "**UNK**"


@dataclass
class PreprocessConfig:
    """Every preprocessing option, named; defaults are CAML's choices unless the comment says otherwise."""

    input_path: str                      # MIMIC-III folder, or a coded-notes table (.csv/.parquet)
    out_dir: str                         # where everything is written (never next to the raw data)
    input_format: str = "mimic3"         # "mimic3" | "table"
    splits_dir: str | None = None        # folder of {split}_{full,50}_hadm_ids.csv; None: <input>/splits;
    #                                      "caml": CAML's published files (downloaded, verified, cached)
    verify_caml_splits: bool = False     # check the split files' SHA-256 against CAML's published files
    caml_compat: bool = False            # reproduce CAML's int-cast and float re-read label artefacts
    token_rule: str = "caml"             # "caml" (drop numeric tokens) | "alpha" (LAAT: keep tokens with a letter)
    regex_engine: str = "re"             # "re" (CAML, nltk <= 3.10.2) | "regex" (nltk >= 3.10.3)
    drop_iserror: bool = False           # CAML and all references keep ISERROR notes
    duplicate_notes: str | None = None   # "drop" (read a repeated note once, counted) | "keep" (CAML joins
    #                                      every copy); None: "keep" under caml_compat, else "drop"
    encoding: str = "utf-8"              # text encoding of the input files (a byte-order mark is skipped)
    top_k: int = 50                      # size of the frequent-code label space
    vocab_min_docs: int = 3              # CAML: tokens in >= 3 training documents
    word2vec: bool = True                # train word2vec (the slowest step)
    w2v_corpus: str = "train"            # "train" (Edin et al.; no test text) | "all" (CAML)
    w2v_dim: int = 100                   # CAML
    w2v_window: int = 5                  # CAML
    w2v_min_count: int = 0               # CAML
    w2v_epochs: int = 5                  # CAML
    w2v_workers: int = 1                 # 1 is bit-reproducible; more is faster, not reproducible
    seed: int = 0
    workers: int = 0                     # tokenisation processes; 0 = all cores
    progress: bool = True
    extra: dict = field(default_factory=dict)  # free-form provenance kept in params.yaml

    def __post_init__(self) -> None:
        for name, allowed in (("input_format", INPUT_FORMATS), ("token_rule", textmod.TOKEN_RULES),
                              ("regex_engine", textmod.ENGINES), ("w2v_corpus", W2V_CORPORA)):
            if getattr(self, name) not in allowed:
                raise ParameterError(f"PreprocessConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.duplicate_notes not in (None, *data.DUPLICATE_NOTES):
            raise ParameterError(f"PreprocessConfig.duplicate_notes must be None or one of {data.DUPLICATE_NOTES}, "
                             f"got {self.duplicate_notes!r}")
        try:
            codecs.lookup(self.encoding)
        except LookupError as e:
            raise ParameterError(f"PreprocessConfig.encoding: unknown encoding {self.encoding!r}") from e
        if self.top_k < 1 or self.vocab_min_docs < 1:
            raise ParameterError("PreprocessConfig.top_k and vocab_min_docs must be >= 1")

    def note_duplicates(self) -> str:
        """The duplicate-note policy in effect: ``duplicate_notes``, or by default "keep" under ``caml_compat``
        (bit-compatible with CAML, which joins every row) and "drop" otherwise (a repeated note doubles the
        document's text and changes what survives truncation; it carries no information)."""
        return self.duplicate_notes or ("keep" if self.caml_compat else "drop")

    def fingerprint(self) -> str:
        """The settings that decide the output (not where it goes, nor how fast it is made)."""
        d = dataclasses.asdict(self)
        for k in ("progress", "workers", "out_dir", "extra"):
            d.pop(k)
        return identity.of_settings(d)


def run_identity(cfg: PreprocessConfig, raw: Path) -> str:
    """What a preprocessing run is computed from: its settings, the bytes it reads (the MIMIC-III tables or the
    coded-notes table, and the split files unless CAML's own, which are verified by SHA-256) and the code
    (:func:`mcanb.identity.code_version`). A finished run in ``out_dir`` is reused only when this is unchanged."""
    if cfg.input_format == "mimic3":
        files = [Path(f) for f in data.input_files(raw)[0].values()]
        sdir = None if cfg.splits_dir == "caml" else resolve(cfg.splits_dir) if cfg.splits_dir else raw / "splits"
        files += sorted(f for f in sdir.glob("*") if f.is_file()) if sdir is not None and sdir.is_dir() else []
    else:
        files = [raw] if raw.is_file() else []
    return identity.of_settings({"settings": cfg.fingerprint(), "code": identity.code_version("preprocess"),
                                 "input": identity.of_files(files, raw if raw.is_dir() else raw.parent)["sha"]})


def top_codes(rows: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` most frequent codes by row count (duplicates count, as in CAML); ties by code string."""
    counts = rows["code"].value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [c for c, _ in order[:k]]


def build_vocab(doc_freq: Counter, min_docs: int) -> list[str]:
    """Sorted tokens that occur in at least ``min_docs`` training documents (CAML's ``build_vocab``)."""
    return sorted(w for w, n in doc_freq.items() if n >= min_docs)


# --------------------------------------------------------------------------------------- pipeline
def config_from_params(params: Mapping[str, Any], **overrides: Any) -> PreprocessConfig:
    """A :class:`PreprocessConfig` from a notebook's parameters, matched by field name.

    Keys that are not fields (``run_name``) are ignored; ``overrides`` win (notebook 01 passes the resolved
    ``input_path`` and ``out_dir``). Example: ``config_from_params({"top_k": 20, "run_name": "x"},
    input_path="raw", out_dir="out").top_k`` -> 20.
    """
    names = {f.name for f in dataclasses.fields(PreprocessConfig)}
    return PreprocessConfig(**{k: v for k, v in {**params, **overrides}.items() if k in names})


def run(cfg: PreprocessConfig, force: bool = False) -> dict:
    """Run the whole preprocessing; skip it when ``out_dir`` already holds a run made from the same settings, input
    bytes and code (:func:`run_identity`)."""
    out = resolve(cfg.out_dir)
    raw = resolve(cfg.input_path)
    raw_folder = raw if cfg.input_format == "mimic3" else raw.parent
    if out == raw_folder or raw_folder in out.parents:
        raise ParameterError(f"out_dir {out} is inside the raw data folder {raw_folder}; nothing is written "
                         "next to raw data: choose another folder")
    report_path = out / "report.json"
    made_from = run_identity(cfg, raw)
    if report_path.exists() and not force:
        report = json.loads(report_path.read_text())
        if report.get("fingerprint") == made_from:
            return report
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    drops, counts = Drops(), {}
    files, warns = data.input_files(raw) if cfg.input_format == "mimic3" else ({"table": str(raw)}, [])
    for w in warns:
        warnings.warn(w, stacklevel=2)
    if cfg.input_format == "mimic3":
        docs, rows, raw_texts = mimic_documents(raw, drops, counts, encoding=cfg.encoding, progress=cfg.progress,
                                                drop_iserror=cfg.drop_iserror, duplicate_notes=cfg.note_duplicates(),
                                                caml_compat=cfg.caml_compat)
        docs["split"], fifty = assign_splits(docs, raw, cfg.splits_dir, cfg.verify_caml_splits, drops, counts)
        in_split = docs["split"].notna().to_numpy()
        docs, raw_texts = docs[in_split].reset_index(drop=True), raw_texts.select(in_split)
    else:
        docs, rows, fifty = table_documents(raw, cfg.encoding, out, drops, counts)
        raw_texts = docs.pop("text").tolist()
    timings["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    texts, lengths, doc_freq = textmod.tokenize_corpus(raw_texts, (docs["split"] == "train").to_numpy(),
                                                       cfg.token_rule, cfg.regex_engine, cfg.workers, cfg.progress)
    del raw_texts  # the raw notes: the largest thing held so far
    pa.default_memory_pool().release_unused()
    docs["text"], docs["length"] = texts, lengths
    del texts
    timings["tokenise"] = time.perf_counter() - t
    empty = docs["length"] == 0
    drops.add("empty_text", "hadm_id", docs.loc[empty, "hadm_id"])
    docs = docs[~empty].reset_index(drop=True)
    rows = rows[rows["hadm_id"].isin(set(docs["hadm_id"]))]
    counts["documents"] = len(docs)
    counts["tokens"] = int(docs["length"].sum())

    t = time.perf_counter()
    per_doc: dict[int, set[str]] = {}  # each document's distinct codes (a plain loop: no Series per document)
    for hadm, code in zip(rows["hadm_id"].tolist(), rows["code"].tolist()):
        per_doc.setdefault(hadm, set()).add(code)
    docs["codes"] = [sorted(per_doc.get(hadm, ())) for hadm in docs["hadm_id"].tolist()]
    del per_doc
    top = top_codes(rows, cfg.top_k)
    # the label spaces' frames point into docs (column "row") rather than copy every text once per space
    texts = docs.pop("text")
    docs["row"] = np.arange(len(docs))
    spaces = {"full": _label_space(docs, None, None, drops, "full"),
              "50": _label_space(docs, top, fifty, drops, "50")}
    train_full = spaces["full"][0]["train"]
    # CAML builds the vocabulary from every training-split document, also those later left without a label
    vocab = build_vocab(doc_freq, cfg.vocab_min_docs)
    timings["labels_and_vocab"] = time.perf_counter() - t

    out.mkdir(parents=True, exist_ok=True)
    descriptions = code_descriptions(raw, cfg.encoding) if cfg.input_format == "mimic3" else {}
    artefacts = rows.loc[rows["artefact"] != "", ["code", "artefact"]].drop_duplicates("code")
    artefacts = dict(zip(artefacts["code"], artefacts["artefact"]))
    for name, (frames, labels) in spaces.items():
        _write_space(out / name, name, frames, texts, labels, descriptions, artefacts)
        counts[name] = {s: len(f) for s, f in frames.items()} | {"labels": len(labels)}
    (out / "vocab.csv").write_text("\n".join(vocab) + "\n")
    (out / f"TOP_{cfg.top_k}_CODES.csv").write_text("\n".join(top) + "\n")
    counts["vocab_size"] = len(vocab)
    counts["artefact_labels"] = dict(Counter(artefacts[c] for c in spaces["full"][1] if c in artefacts))
    if cfg.word2vec:
        from .embeddings import train_word2vec

        t = time.perf_counter()
        corpus = texts.iloc[train_full["row"].to_numpy()] if cfg.w2v_corpus == "train" else texts
        emb = train_word2vec(corpus.tolist(), vocab, cfg)
        np.save(out / "embeddings.npy", emb)
        _write_embed(out / "processed_full.embed", vocab, emb)
        timings["word2vec"] = time.perf_counter() - t
    drops.frame().to_csv(out / "dropped.csv", index=False)
    for w in drop_warnings(drops.counts, counts):        # a large share dropped is said, not only counted
        warnings.warn(w, stacklevel=2)
        warns.append(w)
    timings["total"] = time.perf_counter() - t0
    report = {"fingerprint": made_from, "input_format": cfg.input_format, "input_files": files,
              "warnings": warns, "caml_compat": cfg.caml_compat, "duplicate_notes": cfg.note_duplicates(),
              "counts": counts, "dropped": dict(sorted(drops.counts.items())),
              "top_codes": top, "timings_s": {k: round(v, 2) for k, v in timings.items()},
              "reference_mimic3": compare_mimic3(counts, cfg.caml_compat, top)}
    (out / "preprocess_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=True))
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _label_space(docs: pd.DataFrame, top: list[str] | None, fifty: dict | None, drops: Drops, name: str):
    frames = {}
    keep = set(top) if top is not None else None
    for split in splits_mod.SPLITS:
        f = docs[docs["split"] == split]
        if fifty is not None:
            missing = np.setdiff1d(fifty[split], f["hadm_id"].to_numpy())
            drops.add(f"split_id_without_document/50/{split}", "hadm_id", missing)
            f = f[f["hadm_id"].isin(fifty[split])]
        if keep is not None:
            f = f.assign(codes=[[c for c in cs if c in keep] for cs in f["codes"]])
        empty = f["codes"].map(len) == 0
        drops.add(f"{name}/{'no_top_code' if keep is not None else 'no_labels'}/{split}", "hadm_id",
                  f.loc[empty, "hadm_id"])
        frames[split] = f[~empty].drop(columns="split").reset_index(drop=True)
    labels = sorted(keep) if keep is not None else sorted({c for f in frames.values() for cs in f["codes"] for c in cs})
    return frames, labels


def _write_space(d: Path, name: str, frames: dict, texts: pd.Series, labels: list[str], descriptions: dict,
                 artefacts: dict) -> None:
    """One label space's files; ``frames``' column ``row`` is each document's row in ``texts``."""
    d.mkdir(parents=True, exist_ok=True)
    train_counts = Counter(c for cs in frames["train"]["codes"] for c in cs)
    pd.DataFrame({"code": labels, "description": icd.describe(labels, descriptions),
                  "train_count": [train_counts.get(c, 0) for c in labels],
                  "artefact": [artefacts.get(c, "") for c in labels]}).to_csv(d / "labels.csv", index_label="index")
    for split, f in frames.items():
        f = f.assign(text=texts.iloc[f["row"].to_numpy()].set_axis(f.index))
        f = f[["hadm_id", "subject_id", "text", "codes", "length"]]
        # what DataFrame.to_parquet(index=False) writes, from one Arrow copy of the frame that the CSV reuses
        table = pa.Table.from_pandas(f, preserve_index=False)
        pq.write_table(table, d / f"{split}.parquet", compression="snappy")
        _write_caml_csv(d / f"{split}_{name}.csv", table, f["codes"])
        del table
        pa.default_memory_pool().release_unused()


CSV_BATCH = 4096  # documents per batch of a CSV file: its rows are copied (sorted) one batch at a time


def _write_caml_csv(path: Path, table: pa.Table, codes: pd.Series) -> None:
    """CAML's ``{split}_{space}.csv`` (SUBJECT_ID, HADM_ID, TEXT, LABELS, length), sorted by length (stable).

    ``table``: the split as written to parquet. Rows are copied in sorted order a batch at a time, so the
    file costs no second copy of the texts; the bytes are those of one ``write_csv`` of the sorted table."""
    order = np.argsort(table.column("length").to_numpy(), kind="stable")
    names = ["SUBJECT_ID", "HADM_ID", "TEXT", "LABELS", "length"]

    # one Array per column: taking from a chunked string column concatenates its chunks on every call
    cols = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks()
            for c in (table.column(n) for n in ("subject_id", "hadm_id", "text", "length"))]

    def batch(idx: np.ndarray) -> pa.Table:
        subject, hadm, text, length = (c.take(idx) for c in cols)
        labels = pa.array([";".join(c) for c in codes.iloc[idx]], type=pa.string())
        return pa.table([subject, hadm, text, labels, length], names=names)

    options = pacsv.WriteOptions(quoting_style="needed")
    first = batch(order[:CSV_BATCH])
    with pacsv.CSVWriter(path, first.schema, write_options=options) as writer:
        writer.write_table(first)
        for start in range(CSV_BATCH, len(order), CSV_BATCH):
            writer.write_table(batch(order[start:start + CSV_BATCH]))


def _write_embed(path: Path, vocab: list[str], emb: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, w in enumerate(vocab, start=1):
            f.write(w + " " + " ".join(f"{x:.6f}" for x in emb[i]) + "\n")
