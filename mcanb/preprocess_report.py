"""What preprocessing removed and counted: every dropped record by reason, the run's counts against MIMIC-III's.

:class:`Drops` collects each removed record with its reason (``report.json``'s ``dropped`` counts, ``dropped.csv``'s
rows); :func:`compare_mimic3` sets the run's counts beside the known MIMIC-III v1.4 ones (``reference_mimic3``);
:func:`summary_tables` gives a reader the documents left at each step and the drops by reason; :func:`drop_warnings`
says which reasons removed 10 % or more of their records (``report.json``'s ``warnings``). Written by
:func:`mcanb.preprocess.run`; shown in ``notebooks/01_preprocess.ipynb``.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from . import splits as splits_mod
from .codes import caml_top50

# Known MIMIC-III v1.4 counts (CAML notebook, docs/reference.md §Data) that the report compares against.
MIMIC3_REFERENCE = {"admissions_with_discharge": 52726, "full/train": 47719, "full/dev": 1631,
                    "full/test": 3372, "50/train": 8066, "50/dev": 1573, "50/test": 1729,
                    "full/labels (caml_compat)": 8921, "vocab_size": 51917,
                    "50/codes in CAML's top-50 list": 50}


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


# A reason that removes at least this share of the records it was taken from gets a warning (report.json
# ``warnings``, and printed): a large drop usually means a wrong column, encoding or export, not a few bad records.
WARN_SHARE = 0.10
NOTE_REASONS = ("discharge_note_without_hadm_id", "iserror_note", "duplicate_note")   # counted in notes
WHY = {"empty_text": "their text is empty or has no tokens left (only numbers and punctuation)",
       "no_code_rows": "they have no code rows", "not_in_split": "they are in no split file",
       "duplicate_row": "they repeat an earlier row exactly", "empty_code_row": "the code is empty",
       "discharge_note_without_hadm_id": "they have no HADM_ID", "duplicate_note": "they repeat an earlier note",
       "iserror_note": "they are marked ISERROR (drop_iserror)", "split_id_without_document": "no document has them",
       "full/no_labels": "they have no code"}


def drop_warnings(dropped: dict[str, int], counts: dict) -> list[str]:
    """One warning per drop reason that removed >= :data:`WARN_SHARE` of its records: notes for the note reasons,
    code rows for empty codes, a split file's ids for its ids without a document, else the input's documents. The
    ``50`` label space keeps only documents with a top code by design and is not warned about."""
    out = []
    for reason, n in sorted(dropped.items()):
        base, what = _base(reason, counts)
        if not n or not base or reason.startswith("50/") or n < WARN_SHARE * base:
            continue
        why = next((w for key, w in WHY.items() if reason == key or reason.startswith(key + "/")), None)
        out.append(f"{n} of {base} {what} ({100 * n / base:.0f} %) were dropped as {reason}"
                   + (f": {why}" if why else "") + "; their ids are in dropped.csv. Check the input if that is more "
                   "than you expected.")
    return out


def _base(reason: str, counts: dict) -> tuple[int | None, str]:
    """The number of records ``reason`` was taken from, and what they are."""
    if reason in NOTE_REASONS:
        return counts.get("discharge_notes"), "discharge notes"
    if reason == "empty_code_row":
        return counts.get("code_rows_of_documents"), "code rows"
    if reason.startswith("split_id_without_document/"):
        split = reason.split("/", 1)[1]
        return counts.get("split_ids", {}).get(split), f"ids of the {split} split file"
    return counts.get("documents_in_table") or counts.get("admissions_with_discharge"), "documents"


def compare_mimic3(counts: dict, caml_compat: bool, top_codes: list[str] | None = None) -> dict:
    """``{count: {expected, got, match}}`` of :data:`MIMIC3_REFERENCE` against this run's ``counts``; the
    label-space size counts only under ``caml_compat``. ``top_codes``: this run's top-``k`` codes, counted in CAML's
    shipped top-50 list (all 50 of them when ``k`` is 50 and the counting matches CAML's)."""
    got = {"admissions_with_discharge": counts.get("admissions_with_discharge"),
           "vocab_size": counts.get("vocab_size")}
    for space in ("full", "50"):
        for split in splits_mod.SPLITS:
            got[f"{space}/{split}"] = counts.get(space, {}).get(split)
    got["full/labels (caml_compat)"] = counts["full"]["labels"] if caml_compat else None
    if top_codes is not None and len(top_codes) == len(caml_top50()):
        got["50/codes in CAML's top-50 list"] = len(set(top_codes) & set(caml_top50()))
    return {k: {"expected": v, "got": got.get(k), "match": got.get(k) == v} for k, v in MIMIC3_REFERENCE.items()}


def summary_tables(report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables for a reader: documents at each step, and every drop by reason."""
    c = report["counts"]
    steps = [("notes in NOTEEVENTS", c.get("notes_total")), ("discharge summaries", c.get("discharge_notes")),
             ("admissions with a discharge summary", c.get("admissions_with_discharge")),
             ("documents in a split, with tokens left", c.get("documents"))]
    for space in ("full", "50"):
        for split in splits_mod.SPLITS:
            steps.append((f"{space}: {split} documents", c[space][split]))
        steps.append((f"{space}: labels", c[space]["labels"]))
    steps.append(("vocabulary (tokens in >= min_docs train documents)", c["vocab_size"]))
    steps_df = pd.DataFrame([s for s in steps if s[1] is not None], columns=["step", "count"]).set_index("step")
    drops_df = pd.DataFrame(sorted(report["dropped"].items()), columns=["reason", "records"]).set_index("reason")
    return steps_df, drops_df
