"""This run's BERT scores beside what they depend on: micro-F1 at a dev-tuned threshold next to the 0.5 one, and the
share of each note a row read (:func:`mcanb.bert_study.coverage`). Used by notebooks 02 and 03."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .bert_study import results_table
from .processed import Processed


DEV_THRESHOLD = "micro_f1_dev_threshold"   # result key (under test/): micro-F1 at the threshold tuned on dev


def add_dev_threshold(processed: Processed, results: Sequence[dict]) -> list[dict]:
    """Each result row with ``test/micro_f1_dev_threshold``: test micro-F1 at the one global threshold that maximises
    dev micro-F1 (:class:`mcanb.metrics.Threshold`, fitted on the run's dev predictions only), beside the 0.5 one.
    A run already carrying the key keeps it."""
    from .metrics import Threshold, evaluate
    from .predictions import load_predictions
    gold = {s: dict(zip(processed.hadm_ids(s), processed.multi_hot(s))) for s in ("dev", "test")}
    out = []
    for r in results:
        if f"test/{DEV_THRESHOLD}" not in r:
            split = {}
            for s in ("dev", "test"):
                ids, scores = load_predictions(Path(r["dir"]) / f"predictions_{s}.parquet")
                split[s] = (np.stack([gold[s][i] for i in ids]), scores)
            thr = Threshold.fit(*split["dev"])
            r = {**r, f"test/{DEV_THRESHOLD}": evaluate(*split["test"], threshold=thr)["micro_f1"]}
        out.append(r)
    return out


def scores_table(results: Sequence[dict], label_space: str, cov: dict[str, dict[str, float]] | None = None
                 ) -> pd.DataFrame:
    """:func:`mcanb.bert_study.results_table` plus micro-F1 at the dev-tuned threshold (after
    :func:`add_dev_threshold`) and, given :func:`mcanb.bert_study.coverage`, the share of the note each row read."""
    table = results_table(results, label_space)
    if any(f"test/{DEV_THRESHOLD}" in r for r in results):
        tuned = results_table([{**r, "test/micro_f1": r.get(f"test/{DEV_THRESHOLD}")} for r in results], label_space)
        table.insert(table.columns.get_loc("micro-F1") + 1, "micro-F1 (dev threshold)", tuned["micro-F1"])
    return with_coverage(table, cov) if cov else table


def with_coverage(table: pd.DataFrame, cov: dict[str, dict[str, float]]) -> pd.DataFrame:
    """:func:`results_table` (or :func:`beside_paper`) with a ``note read`` column: the share of each encoder's word
    pieces its architecture reads (:func:`coverage`), blank for the paper's rows."""
    arch = table["architecture"].map(lambda a: "trun" if str(a).startswith("BERT-trun") else "hier")
    share = [cov[a].get(e) for a, e in zip(arch, table["encoder"])]
    out = table.copy()
    out["note read"] = [f"{100 * s:.0f} %" if s is not None and ("source" not in out or src == "this run") else ""
                        for s, src in zip(share, out.get("source", ["this run"] * len(out)))]
    return out
