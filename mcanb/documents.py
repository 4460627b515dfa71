"""Raw inputs -> one document per admission, with its code rows and split (steps 1 to 4 of :mod:`mcanb.preprocess`).

MIMIC-III (:func:`mimic_documents`, :func:`assign_splits`): discharge summaries joined per admission, codes dotted
(with CAML's artefacts under ``caml_compat``), every removed record counted in a
:class:`~mcanb.preprocess_report.Drops` by reason. A coded-notes table (:func:`table_documents`) brings its own
documents, codes and splits. The files are read by :mod:`mcanb.data` and :mod:`mcanb.coded_table`. Explained in
``notebooks/01_preprocess.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import codes as icd
from . import data, splits as splits_mod
from .coded_table import read_coded_table
from .paths import resolve
from .preprocess_report import Drops


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


class NoteTexts:
    """The text of each document: its notes' texts joined with a space, read from an Arrow array on demand.

    ``texts``: every note's text (:func:`mcanb.data.read_discharge_notes`); ``order``: note rows grouped by
    document, in joining order; document ``i`` of ``first``/``count`` is ``order[first[i]:first[i] + count[i]]``.
    ``NoteTexts(...)[i]`` is the same string the joined column of a frame would hold, but only one document
    is a Python string at a time, and forked tokenising processes read the Arrow buffers without copying them.
    """

    def __init__(self, texts: pa.ChunkedArray, order: np.ndarray, first: np.ndarray, count: np.ndarray) -> None:
        self.texts, self.order = texts, np.asarray(order, dtype=np.int64)
        self.first, self.count = np.asarray(first, dtype=np.int64), np.asarray(count, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i: int) -> str:
        start = self.first[i]
        parts = [self.texts[int(p)].as_py() for p in self.order[start:start + self.count[i]]]
        return parts[0] if len(parts) == 1 else " ".join(parts)

    def select(self, keep: np.ndarray) -> "NoteTexts":
        """The documents where the boolean array ``keep`` is true, in order."""
        keep = np.asarray(keep, dtype=bool)
        return NoteTexts(self.texts, self.order, self.first[keep], self.count[keep])


def mimic_documents(mimic_dir: Path, drops: Drops, counts: dict, *, encoding: str, progress: bool, drop_iserror: bool,
                    duplicate_notes: str, caml_compat: bool) -> tuple[pd.DataFrame, pd.DataFrame, NoteTexts]:
    """One document per admission (hadm_id, subject_id), its code rows, and its text (steps 1 to 3 of
    :mod:`mcanb.preprocess`); ``duplicate_notes``: "drop" or "keep" (``PreprocessConfig.note_duplicates()``).
    The texts (:class:`NoteTexts`) are row for row with the documents."""
    notes, texts, note_counts = data.read_discharge_notes(mimic_dir, progress, encoding)
    counts.update(note_counts)
    notes["pos"] = np.arange(len(notes), dtype=np.int64)
    no_hadm = notes["hadm_id"].isna()
    drops.add("discharge_note_without_hadm_id", "row_id", notes.loc[no_hadm, "row_id"])
    notes = notes[~no_hadm].sort_values(["hadm_id", "row_id"], kind="stable")
    counts["iserror_discharge_notes"] = int(notes["iserror"].sum())
    if drop_iserror:
        drops.add("iserror_note", "row_id", notes.loc[notes["iserror"], "row_id"])
        notes = notes[~notes["iserror"]]
    repeated = data.duplicate_notes(notes, texts, data.find_table(mimic_dir, "NOTEEVENTS"))
    counts["duplicate_discharge_notes"] = int(repeated.sum())  # found; dropped only under "drop"
    repeated &= duplicate_notes == "drop"
    drops.add("duplicate_note", "row_id", notes.loc[repeated, "row_id"])
    notes = notes[~repeated]
    docs = notes.groupby("hadm_id", sort=True).agg(subject_id=("subject_id", "first"),
                                                    n_notes=("row_id", "size")).reset_index()
    docs["hadm_id"] = docs["hadm_id"].astype("int64")
    # notes are sorted by admission, so document i's notes are a run of rows starting where the previous ends
    first = np.concatenate([[0], np.cumsum(docs["n_notes"].to_numpy())[:-1]]).astype(np.int64)
    counts["admissions_with_discharge"] = len(docs)
    counts["admissions_with_addenda"] = int((docs["n_notes"] > 1).sum())
    rows = mimic_codes(mimic_dir, caml_compat, set(docs["hadm_id"]), drops, counts, encoding)
    has_codes = docs["hadm_id"].isin(set(rows["hadm_id"])).to_numpy()
    drops.add("no_code_rows", "hadm_id", docs.loc[~has_codes, "hadm_id"])
    doc_texts = NoteTexts(texts, notes["pos"].to_numpy(), first, docs["n_notes"].to_numpy()).select(has_codes)
    docs = docs[has_codes].drop(columns="n_notes").reset_index(drop=True)
    empty = rows["code"] == ""  # an admission whose only codes are empty is dropped later as 'no_labels'
    counts["empty_code_rows"] = int(empty.sum())
    drops.add("empty_code_row", "hadm_id", rows.loc[empty, "hadm_id"])
    return docs, rows[~empty].reset_index(drop=True), doc_texts


def assign_splits(docs: pd.DataFrame, mimic_dir: Path, splits_dir: str | None, verify_caml: bool, drops: Drops,
                  counts: dict) -> tuple[pd.Series, dict[str, np.ndarray] | None]:
    """Split name per document (from the full split files); the 50 split files where present.

    ``splits_dir``: the folder of split files; None: ``<mimic_dir>/splits``; "caml": CAML's published files."""
    if splits_dir == "caml":  # CAML's published files: downloaded once, verified, cached
        sdir = splits_mod.download_caml_splits()
    else:
        sdir = resolve(splits_dir) if splits_dir else mimic_dir / "splits"
    full = splits_mod.load_splits(sdir, "full", verify_caml=verify_caml)
    where = pd.Series(pd.NA, index=docs.index, dtype="string")
    for split, ids in full.items():
        inside = docs["hadm_id"].isin(ids)
        where[inside] = split
        missing = np.setdiff1d(ids, docs["hadm_id"].to_numpy())
        counts.setdefault("split_ids_without_document", {})[f"full/{split}"] = len(missing)
        counts.setdefault("split_ids", {})[f"full/{split}"] = len(ids)
        drops.add(f"split_id_without_document/full/{split}", "hadm_id", missing)
    outside = where.isna()
    drops.add("not_in_split", "hadm_id", docs.loc[outside, "hadm_id"])
    have_50 = all((sdir / splits_mod.split_filename(s, "50")).exists() for s in splits_mod.SPLITS)
    fifty = splits_mod.load_splits(sdir, "50", verify_caml=verify_caml) if have_50 else None
    for split, ids in (fifty or {}).items():
        counts["split_ids"][f"50/{split}"] = len(ids)
    counts["splits_dir"] = str(sdir)
    return where, fifty


def table_documents(path: Path, encoding: str, out: Path, drops: Drops, counts: dict
                    ) -> tuple[pd.DataFrame, pd.DataFrame, None]:
    """Documents and code rows of a coded-notes table (``input_format="table"``; the split is its column). String
    ids are numbered: ``<out>/document_ids.csv`` maps each number (every output's ``hadm_id``) to its id."""
    table, table_counts, dropped = read_coded_table(path, encoding)
    counts.update(table_counts)
    if "id" in table.columns:   # string ids: their numbers (the hadm_id of every output) and names
        out.mkdir(parents=True, exist_ok=True)
        table[["hadm_id", "id"]].sort_values("hadm_id").to_csv(out / "document_ids.csv", index=False)
        table = table.drop(columns="id")
    for reason, ids in dropped.items():
        drops.add(reason, "id", ids)
    rows = table[["hadm_id", "codes"]].explode("codes").dropna().rename(columns={"codes": "code"})
    rows["artefact"] = ""
    docs = table.drop(columns="codes")
    return docs, rows, None


def code_descriptions(mimic_dir: Path, encoding: str) -> dict[str, str]:
    """Dotted code -> title from MIMIC-III's ``D_ICD_DIAGNOSES`` / ``D_ICD_PROCEDURES`` (empty where absent)."""
    found = data.read_code_descriptions(mimic_dir, encoding)
    return {icd.add_dot(code, is_diag): title for (code, is_diag), title in found.items()}
