"""CAML-compatible preprocessing: raw notes and codes → documents, label spaces, vocabulary, word2vec.

The steps (Mullenbach et al. 2018; docs/reference.md §Preprocessing), each counted in
``report.json`` with every dropped record listed in ``dropped.csv`` by reason:

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
import yaml
from pyarrow import csv as pacsv

from . import codes as icd
from . import data, splits as splits_mod, text as textmod
from .coded_table import read_coded_table
from .params import ParameterError
from .paths import resolve

INPUT_FORMATS = ("mimic3", "table")
W2V_CORPORA = ("train", "all")
# Known MIMIC-III v1.4 counts (CAML notebook, docs/reference.md §Data) that the report compares against.
MIMIC3_REFERENCE = {"admissions_with_discharge": 52726, "full/train": 47719, "full/dev": 1631,
                    "full/test": 3372, "50/train": 8066, "50/dev": 1573, "50/test": 1729,
                    "full/labels (caml_compat)": 8921, "vocab_size": 51917}
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
        d = dataclasses.asdict(self)
        for k in ("progress", "workers", "out_dir", "extra"):
            d.pop(k)
        from .identity import of_settings
        return of_settings(d)


class Drops:
    """Every record removed, by reason: counts for the report and rows for ``dropped.csv``."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, int]] = []  # (reason, id kind, id)
        self.counts: Counter = Counter()

    def add(self, reason: str, kind: str, ids) -> None:
        ids = [int(i) for i in ids]
        self.counts[reason] += len(ids)
        self.rows.extend((reason, kind, i) for i in ids)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["reason", "id_kind", "id"])


# ----------------------------------------------------------------------------------------- codes
def mimic_codes(mimic_dir: Path, caml_compat: bool, keep_hadm: set[int], drops: Drops,
                counts: dict, encoding: str = "utf-8") -> pd.DataFrame:
    """Code rows (hadm_id, code, artefact) of admissions in ``keep_hadm``, diagnoses then procedures.

    Empty codes are kept here (as ``""``) so that an admission with only empty codes still counts as
    having code rows; the caller drops them, counted."""
    dx = data.read_code_table(mimic_dir, "DIAGNOSES_ICD", encoding)
    px = data.read_code_table(mimic_dir, "PROCEDURES_ICD", encoding)
    counts["code_rows"] = {"diagnoses": len(dx), "procedures": len(px)}
    frames = []
    for table, is_diag in ((dx, True), (px, False)):
        raw = table["raw_code"].tolist()
        plain = [icd.add_dot(c, is_diag) if c else "" for c in raw]
        if caml_compat:  # CAML: pd.read_csv(PROCEDURES_ICD.csv) with no dtype, then str(row[4])
            cast = icd.pandas_block_inference(raw, table.attrs["n_columns"], na="nan")
            code = [icd.add_dot(c, is_diag) for c in cast]
        else:
            code = plain
        frames.append(pd.DataFrame({"hadm_id": table["hadm_id"].astype("int64"),
                                    "subject_id": table["subject_id"], "code": code, "plain": plain,
                                    "is_diag": is_diag}))
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["hadm_id"].isin(keep_hadm)].reset_index(drop=True)
    counts["code_rows_of_documents"] = len(rows)
    if caml_compat:  # CAML re-reads ALL_CODES_filtered.csv (5 columns) with pandas and no dtype
        stage1 = rows["code"].tolist()
        rows["code"] = icd.pandas_block_inference(stage1, n_columns=5, na="")
        rows["artefact"] = np.where(rows["code"] == rows["plain"], "",
                                    np.where(np.array(stage1) == rows["plain"], "float_reread", "int_cast"))
    else:
        rows["artefact"] = ""
    nonempty = rows["code"] != ""
    counts["duplicate_code_rows"] = int(rows[nonempty].duplicated(["hadm_id", "code"]).sum())
    return rows


# ------------------------------------------------------------------------------------- documents
def mimic_documents(cfg: PreprocessConfig, drops: Drops, counts: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One document per admission (hadm_id, subject_id, text) and its code rows."""
    mimic_dir = resolve(cfg.input_path)
    notes, note_counts = data.read_discharge_notes(mimic_dir, cfg.progress, cfg.encoding)
    counts.update(note_counts)
    no_hadm = notes["hadm_id"].isna()
    drops.add("discharge_note_without_hadm_id", "row_id", notes.loc[no_hadm, "row_id"])
    notes = notes[~no_hadm].sort_values(["hadm_id", "row_id"], kind="stable")
    counts["iserror_discharge_notes"] = int(notes["iserror"].sum())
    if cfg.drop_iserror:
        drops.add("iserror_note", "row_id", notes.loc[notes["iserror"], "row_id"])
        notes = notes[~notes["iserror"]]
    repeated = data.duplicate_notes(notes, data.find_table(mimic_dir, "NOTEEVENTS"))
    counts["duplicate_discharge_notes"] = int(repeated.sum())  # found; dropped only under "drop"
    repeated &= cfg.note_duplicates() == "drop"
    drops.add("duplicate_note", "row_id", notes.loc[repeated, "row_id"])
    notes = notes[~repeated]
    docs = notes.groupby("hadm_id", sort=True).agg(subject_id=("subject_id", "first"),
                                                    n_notes=("row_id", "size"),
                                                    text=("text", " ".join)).reset_index()
    docs["hadm_id"] = docs["hadm_id"].astype("int64")
    counts["admissions_with_discharge"] = len(docs)
    counts["admissions_with_addenda"] = int((docs["n_notes"] > 1).sum())
    rows = mimic_codes(mimic_dir, cfg.caml_compat, set(docs["hadm_id"]), drops, counts, cfg.encoding)
    has_codes = docs["hadm_id"].isin(set(rows["hadm_id"]))
    drops.add("no_code_rows", "hadm_id", docs.loc[~has_codes, "hadm_id"])
    docs = docs[has_codes].drop(columns="n_notes").reset_index(drop=True)
    empty = rows["code"] == ""  # an admission whose only codes are empty is dropped later as 'no_labels'
    counts["empty_code_rows"] = int(empty.sum())
    drops.add("empty_code_row", "hadm_id", rows.loc[empty, "hadm_id"])
    return docs, rows[~empty].reset_index(drop=True)


def assign_splits(docs: pd.DataFrame, cfg: PreprocessConfig, drops: Drops, counts: dict
                  ) -> tuple[pd.Series, dict[str, np.ndarray] | None]:
    """Split name per document (from the full split files); the 50 split files where present."""
    if cfg.splits_dir == "caml":  # CAML's published files: downloaded once, verified, cached
        sdir = splits_mod.download_caml_splits()
    else:
        sdir = resolve(cfg.splits_dir) if cfg.splits_dir else resolve(cfg.input_path) / "splits"
    full = splits_mod.load_splits(sdir, "full", verify_caml=cfg.verify_caml_splits)
    where = pd.Series(pd.NA, index=docs.index, dtype="string")
    for split, ids in full.items():
        inside = docs["hadm_id"].isin(ids)
        where[inside] = split
        missing = np.setdiff1d(ids, docs["hadm_id"].to_numpy())
        counts.setdefault("split_ids_without_document", {})[f"full/{split}"] = len(missing)
        drops.add(f"split_id_without_document/full/{split}", "hadm_id", missing)
    outside = where.isna()
    drops.add("not_in_split", "hadm_id", docs.loc[outside, "hadm_id"])
    have_50 = all((sdir / splits_mod.split_filename(s, "50")).exists() for s in splits_mod.SPLITS)
    fifty = splits_mod.load_splits(sdir, "50", verify_caml=cfg.verify_caml_splits) if have_50 else None
    counts["splits_dir"] = str(sdir)
    return where, fifty


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
    """Run the whole preprocessing; skip it when ``out_dir`` already holds a run with the same settings."""
    out = resolve(cfg.out_dir)
    raw = resolve(cfg.input_path)
    raw_folder = raw if cfg.input_format == "mimic3" else raw.parent
    if out == raw_folder or raw_folder in out.parents:
        raise ParameterError(f"out_dir {out} is inside the raw data folder {raw_folder}; nothing is written "
                         "next to raw data: choose another folder")
    report_path = out / "report.json"
    if report_path.exists() and not force:
        report = json.loads(report_path.read_text())
        if report.get("fingerprint") == cfg.fingerprint():
            return report
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    drops, counts = Drops(), {}
    files, warns = data.input_files(raw) if cfg.input_format == "mimic3" else ({"table": str(raw)}, [])
    for w in warns:
        warnings.warn(w, stacklevel=2)
    if cfg.input_format == "mimic3":
        docs, rows = mimic_documents(cfg, drops, counts)
        docs["split"], fifty = assign_splits(docs, cfg, drops, counts)
        docs = docs[docs["split"].notna()].reset_index(drop=True)
    else:
        docs, rows, fifty = _table_documents(cfg, counts, drops)
    timings["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    texts, lengths, doc_freq = textmod.tokenize_corpus(docs["text"].tolist(), (docs["split"] == "train").to_numpy(),
                                                       cfg.token_rule, cfg.regex_engine, cfg.workers, cfg.progress)
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
    per_doc = rows.groupby("hadm_id")["code"].agg(lambda s: sorted(set(s)))
    docs["codes"] = docs["hadm_id"].map(per_doc).apply(lambda c: c if isinstance(c, list) else [])
    top = top_codes(rows, cfg.top_k)
    spaces = {"full": _label_space(docs, None, None, drops, "full"),
              "50": _label_space(docs, top, fifty, drops, "50")}
    train_full = spaces["full"][0]["train"]
    # CAML builds the vocabulary from every training-split document, also those later left without a label
    vocab = build_vocab(doc_freq, cfg.vocab_min_docs)
    timings["labels_and_vocab"] = time.perf_counter() - t

    out.mkdir(parents=True, exist_ok=True)
    descriptions = _descriptions(cfg)
    artefacts = rows.loc[rows["artefact"] != "", ["code", "artefact"]].drop_duplicates("code")
    artefacts = dict(zip(artefacts["code"], artefacts["artefact"]))
    for name, (frames, labels) in spaces.items():
        _write_space(out / name, name, frames, labels, descriptions, artefacts)
        counts[name] = {s: len(f) for s, f in frames.items()} | {"labels": len(labels)}
    (out / "vocab.csv").write_text("\n".join(vocab) + "\n")
    (out / f"TOP_{cfg.top_k}_CODES.csv").write_text("\n".join(top) + "\n")
    counts["vocab_size"] = len(vocab)
    counts["artefact_labels"] = dict(Counter(artefacts[c] for c in spaces["full"][1] if c in artefacts))
    if cfg.word2vec:
        from .embeddings import train_word2vec

        t = time.perf_counter()
        corpus = train_full["text"] if cfg.w2v_corpus == "train" else docs["text"]
        emb = train_word2vec(corpus.tolist(), vocab, cfg)
        np.save(out / "embeddings.npy", emb)
        _write_embed(out / "processed_full.embed", vocab, emb)
        timings["word2vec"] = time.perf_counter() - t
    drops.frame().to_csv(out / "dropped.csv", index=False)
    timings["total"] = time.perf_counter() - t0
    report = {"fingerprint": cfg.fingerprint(), "input_format": cfg.input_format, "input_files": files,
              "warnings": warns, "caml_compat": cfg.caml_compat, "duplicate_notes": cfg.note_duplicates(),
              "counts": counts, "dropped": dict(sorted(drops.counts.items())),
              "top_codes": top, "timings_s": {k: round(v, 2) for k, v in timings.items()},
              "reference_mimic3": _compare_mimic3(counts, cfg)}
    (out / "preprocess_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=True))
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _table_documents(cfg: PreprocessConfig, counts: dict, drops: Drops):
    table, table_counts, dropped = read_coded_table(resolve(cfg.input_path), cfg.encoding)
    counts.update(table_counts)
    if "id" in table.columns:   # string ids: their numbers (the hadm_id of every output) and names
        out = resolve(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table[["hadm_id", "id"]].sort_values("hadm_id").to_csv(out / "document_ids.csv", index=False)
        table = table.drop(columns="id")
    for reason, ids in dropped.items():
        drops.add(reason, "id", ids)
    rows = table[["hadm_id", "codes"]].explode("codes").dropna().rename(columns={"codes": "code"})
    rows["artefact"] = ""
    docs = table.drop(columns="codes")
    return docs, rows, None


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


def _descriptions(cfg: PreprocessConfig) -> dict[str, str]:
    if cfg.input_format != "mimic3":
        return {}
    found = data.read_code_descriptions(resolve(cfg.input_path), cfg.encoding)
    return {icd.add_dot(code, is_diag): title for (code, is_diag), title in found.items()}


def _write_space(d: Path, name: str, frames: dict, labels: list[str], descriptions: dict, artefacts: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    train_counts = Counter(c for cs in frames["train"]["codes"] for c in cs)
    pd.DataFrame({"code": labels, "description": icd.describe(labels, descriptions),
                  "train_count": [train_counts.get(c, 0) for c in labels],
                  "artefact": [artefacts.get(c, "") for c in labels]}).to_csv(d / "labels.csv", index_label="index")
    for split, f in frames.items():
        f = f[["hadm_id", "subject_id", "text", "codes", "length"]]
        f.to_parquet(d / f"{split}.parquet", index=False)
        caml = pd.DataFrame({"SUBJECT_ID": f["subject_id"], "HADM_ID": f["hadm_id"], "TEXT": f["text"],
                             "LABELS": f["codes"].map(";".join), "length": f["length"]})
        caml = pa.Table.from_pandas(caml.sort_values("length", kind="stable"), preserve_index=False)
        pacsv.write_csv(caml, d / f"{split}_{name}.csv", pacsv.WriteOptions(quoting_style="needed"))


def _write_embed(path: Path, vocab: list[str], emb: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, w in enumerate(vocab, start=1):
            f.write(w + " " + " ".join(f"{x:.6f}" for x in emb[i]) + "\n")


def _compare_mimic3(counts: dict, cfg: PreprocessConfig) -> dict:
    got = {"admissions_with_discharge": counts.get("admissions_with_discharge"),
           "vocab_size": counts.get("vocab_size")}
    for space in ("full", "50"):
        for split in splits_mod.SPLITS:
            got[f"{space}/{split}"] = counts.get(space, {}).get(split)
    got["full/labels (caml_compat)"] = counts["full"]["labels"] if cfg.caml_compat else None
    return {k: {"expected": v, "got": got.get(k), "match": got.get(k) == v} for k, v in MIMIC3_REFERENCE.items()}


def summary_tables(report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables for a reader: documents at each step, and every drop by reason."""
    c = report["counts"]
    steps = [("notes in NOTEEVENTS", c.get("notes_total")), ("discharge summaries", c.get("discharge_notes")),
             ("admissions with a discharge summary", c.get("admissions_with_discharge")),
             ("documents after tokenisation", c.get("documents"))]
    for space in ("full", "50"):
        for split in splits_mod.SPLITS:
            steps.append((f"{space}: {split} documents", c[space][split]))
        steps.append((f"{space}: labels", c[space]["labels"]))
    steps.append(("vocabulary (tokens in >= min_docs train documents)", c["vocab_size"]))
    steps_df = pd.DataFrame([s for s in steps if s[1] is not None], columns=["step", "count"]).set_index("step")
    drops_df = pd.DataFrame(sorted(report["dropped"].items()), columns=["reason", "records"]).set_index("reason")
    return steps_df, drops_df
