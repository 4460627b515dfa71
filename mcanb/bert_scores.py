"""This run's BERT scores beside what they depend on: micro-F1 at the dev-tuned threshold next to the 0.5 one, and the
share of each note a row read (:func:`mcanb.bert_study.coverage`). Used by notebooks 02 and 03."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import published
from .bert_study import results_table


DEV_THRESHOLD = "micro_f1@dev_threshold"   # result key (under test/): micro-F1 at the threshold tuned on dev, which
                                           # mcanb.train.fit computes for every run (mcanb.metrics.dev_threshold_scores)


def scores_table(results: Sequence[dict], label_space: str, cov: dict[str, dict[str, float]] | None = None
                 ) -> pd.DataFrame:
    """:func:`mcanb.bert_study.results_table` plus micro-F1 at the dev-tuned threshold (every run's
    ``test/micro_f1@dev_threshold``) and, given :func:`mcanb.bert_study.coverage`, the share of the note each row read."""
    table = results_table(results, label_space)
    if any(f"test/{DEV_THRESHOLD}" in r for r in results):
        tuned = results_table([{**r, "test/micro_f1": r.get(f"test/{DEV_THRESHOLD}")} for r in results], label_space)
        table.insert(table.columns.get_loc("micro-F1") + 1, "micro-F1 (dev threshold)", tuned["micro-F1"])
    return with_coverage(table, cov) if cov else table


def with_coverage(table: pd.DataFrame, cov: dict[str, dict[str, float]], architecture: str = "hier_lan"
                  ) -> pd.DataFrame:
    """:func:`results_table` (or :func:`beside_paper`) with a ``note read`` column: the share of the notes' words
    each row's architecture reads under its encoder (:func:`coverage`: of the first ``max_words`` words, the pieces
    its segments hold), blank for the paper's rows. ``architecture``: the rows'
    architecture where the table has no ``architecture`` column (a paper table of one architecture)."""
    archs = table["architecture"] if "architecture" in table else [published.ARCHITECTURES[architecture]] * len(table)
    kind = ["trun" if str(a).startswith("BERT-trun") else "hier" for a in archs]
    names = table["encoder"] if "encoder" in table else table["model"]
    share = [cov[k].get(e) for k, e in zip(kind, names)]
    out = table.copy()
    out["note read"] = [f"{100 * s:.0f} %" if s is not None and ("source" not in out or src == "this run") else ""
                        for s, src in zip(share, out.get("source", ["this run"] * len(out)))]
    return out


def plot_scores(results: Sequence[dict], metric: str = "micro_f1", split: str = "test", floor: float | None = None,
                title: str | None = None):
    """Bars of ``<split>/<metric>`` per encoder, one colour per architecture, the seeds' sd as error bars where there
    are several seeds (none with one: an sd of 0 would look like certainty); a dashed line at ``floor`` (the
    most-frequent baseline) when given; ``title`` above, and the number of seeds in the axis label."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .reporting import PALETTE

    frame = pd.DataFrame(results)
    g = frame.groupby(["encoder", "architecture"], sort=False)[f"{split}/{metric}"].agg(["mean", "std", "count"]
                                                                                         ).reset_index()
    encs, archs = list(dict.fromkeys(g["encoder"])), list(dict.fromkeys(g["architecture"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(encs), 3.4))
    width = 0.8 / len(archs)
    for j, arch in enumerate(archs):
        sub = g[g["architecture"] == arch].set_index("encoder").reindex(encs)
        spread = sub["std"].where(sub["count"] > 1)                    # one seed: no error bar
        ax.bar(np.arange(len(encs)) + (j - (len(archs) - 1) / 2) * width, sub["mean"], width,
               yerr=None if spread.isna().all() else spread.fillna(0), color=PALETTE[j % len(PALETTE)],
               label=published.ARCHITECTURES[arch], capsize=3)
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", lw=1, label="most frequent codes")
    ax.set_xticks(np.arange(len(encs)), [e.replace(" (", "\n(") for e in encs], fontsize=8)
    seeds = int(g["count"].max())
    ax.set_ylabel(f"{split} {published.METRIC_LABELS.get(metric, metric)}\n"
                  + (f"mean ± sd over {seeds} seeds" if seeds > 1 else "one seed"), fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    return fig
