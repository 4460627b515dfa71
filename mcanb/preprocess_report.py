"""What preprocessing removed and counted: every dropped record by reason, the run's counts against MIMIC-III's.

:class:`Drops` collects each removed record with its reason (``report.json``'s ``dropped`` counts, ``dropped.csv``'s
rows); :func:`compare_mimic3` sets the run's counts beside the known MIMIC-III v1.4 ones (``reference_mimic3``);
:func:`summary_tables` gives a reader the documents left at each step and the drops by reason. Written by
:func:`mcanb.preprocess.run`; shown in ``notebooks/01_preprocess.ipynb``.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from . import splits as splits_mod

# Known MIMIC-III v1.4 counts (CAML notebook, docs/reference.md §Data) that the report compares against.
MIMIC3_REFERENCE = {"admissions_with_discharge": 52726, "full/train": 47719, "full/dev": 1631,
                    "full/test": 3372, "50/train": 8066, "50/dev": 1573, "50/test": 1729,
                    "full/labels (caml_compat)": 8921, "vocab_size": 51917}


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


def compare_mimic3(counts: dict, caml_compat: bool) -> dict:
    """``{count: {expected, got, match}}`` of :data:`MIMIC3_REFERENCE` against this run's ``counts``; the
    label-space size counts only under ``caml_compat``."""
    got = {"admissions_with_discharge": counts.get("admissions_with_discharge"),
           "vocab_size": counts.get("vocab_size")}
    for space in ("full", "50"):
        for split in splits_mod.SPLITS:
            got[f"{space}/{split}"] = counts.get(space, {}).get(split)
    got["full/labels (caml_compat)"] = counts["full"]["labels"] if caml_compat else None
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
