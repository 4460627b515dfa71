"""What notebook 04's scores say: Table 6 beside the paper, each model against the most-frequent floor (the floor
test of both model families: notebooks 02 and 03 use it through :func:`mcanb.bert_verdicts.floor_verdict`), and the
best two models against each other. Reads finished runs; a training run never imports it, so editing it retrains
nothing (:data:`mcanb.identity.TRAINING_CODE`). Paper: Ji, Hölttä & Marttinen 2021, §4.4, Table 6.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from . import comparison, metrics, published
from .paired import paired_on_test, resamplable, worst_p
from .processed import Processed
from .reporting import metric_key, summarise_seeds


def table6(this_run: pd.DataFrame, label_space: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Ji et al. 2021, Table 6 for one label space with this run's rows under the paper's (percent, strings).

    ``this_run``: ``summarise_seeds`` output (row keys: the model names of ``ROW_NAMES``). A rendering of
    :func:`mcanb.comparison.build`, the table the report and the README show too: index ``model``; columns
    source ("paper", "original" where a model's own publication differs, "this run", "not run"), stands for, the
    paper's metrics, seeds; and a ``Δ <metric>`` column per metric when ``data_dir`` was made from MIMIC-III.
    """
    comp = comparison.build(6, label_space, comparison.measured_from_summary(this_run),
                            data=comparison.data_source(data_dir))
    return comp.frame().set_index("model")


FLOOR_METRICS = ("micro_auc", "macro_auc", "map", "micro_f1@dev_threshold", "micro_f1")  # threshold-free first
FLOOR_ALPHA = 0.05   # one-sided level of the floor test: above the floor when every seed's p is under it


def floor_check(summary: pd.DataFrame, models: Sequence[str], floor: str = "most_frequent",
                names: Sequence[str] = FLOOR_METRICS, *, results: Sequence[dict] | None = None,
                processed: Processed | None = None, alpha: float = FLOOR_ALPHA,
                n_resamples: int = 1000) -> pd.DataFrame:
    """Each model's mean test score beside the ``floor`` baseline's, per metric in ``names`` (where both have it);
    the one floor test of both model families (notebook 04 here, notebooks 02-03 through
    :func:`mcanb.bert_verdicts.floor_verdict`).

    A fact about this run, not a check of the code: a weak model on a hard corpus may sit at the floor. Columns
    model, metric, value, floor, p, above; one row per (model, metric). Without ``results``, ``above`` is
    ``value > floor`` and ``p`` is NaN. Given ``results`` (the records ``summary`` was made from, the floor's
    included) and ``processed``, every metric a paired bootstrap can resample (all of them; the AUCs while they fit
    in memory, :func:`mcanb.paired.resamplable`) is also tested over the test notes
    (:func:`mcanb.paired.paired_on_test`, each run at its own dev-tuned threshold for an ``@dev_threshold``
    metric): ``p`` is the largest one-sided p over the model's seeds, and ``above`` needs ``p < alpha`` as well, so
    a model above the floor by test-set noise is not counted above it."""
    means = summary.set_index(["row", "metric"])["mean"]
    runs: dict[str, list[dict]] = {}
    for r in results or ():
        runs.setdefault(r["row"], []).append(r)
    found = []
    for m in models:
        for k in names:
            if (m, k) not in means.index or (floor, k) not in means.index:
                continue
            value, base = means[(m, k)], means[(floor, k)]
            p = float("nan")
            if results is not None and value > base and resamplable(k, processed):
                p = worst_p(processed, [(r, runs[floor][0]) for r in runs[m]], k, n_resamples=n_resamples)
            found.append({"model": m, "metric": k, "value": value, "floor": base, "p": p,
                          "above": bool(value > base and not p >= alpha)})
    return pd.DataFrame(found, columns=["model", "metric", "value", "floor", "p", "above"])


def floor_table(check: pd.DataFrame, names: Mapping[str, str] | None = None,
                floor_name: str = "most-frequent floor") -> pd.DataFrame:
    """:func:`floor_check`'s answer as one table to read (notebooks 02-04 show it, the report renders it): the floor's
    own row first, then one row per model (``names``: how to say each), and for each metric its mean test score in
    percent and the largest one-sided p over the model's seeds, marked ✓ where the model is above the floor beyond
    test-set noise; "not above" where its mean is not above the floor's, "by its mean" where the metric was not
    resampled (an AUC too large to resample). Strings, as printed."""
    names = dict(names or {})
    metrics_ = list(dict.fromkeys(check["metric"]))
    labels = [published.METRIC_LABELS.get(m, m) for m in metrics_]
    index = pd.Index([floor_name, *(names.get(m, m) for m in dict.fromkeys(check["model"]))], name="row")
    out = pd.DataFrame("", index=index, columns=pd.MultiIndex.from_product([labels, ["%", "one-sided p"]]))
    for c in check.itertuples():
        label = labels[metrics_.index(c.metric)]
        out.loc[floor_name, (label, "%")] = f"{100 * c.floor:.1f}"
        row = names.get(c.model, c.model)
        out.loc[row, (label, "%")] = f"{100 * c.value:.1f}"
        out.loc[row, (label, "one-sided p")] = ("not above" if not c.value > c.floor else "by its mean" if pd.isna(c.p)
                                                else ("< 0.001" if c.p < 0.001 else f"{c.p:.3f}"))
        if c.above:
            out.loc[row, (label, "one-sided p")] += " ✓"
    return out


def compare_best_two(processed: Processed, results: Sequence[dict], metric: str = "micro_f1",
                     n_resamples: int = 1000) -> tuple[str, str, dict[Any, metrics.PairedComparison]]:
    """Paired bootstrap on the test set between the two models with the best mean *dev* ``metric``, on every seed
    both ran: ``(a, b, {seed: comparison})``.

    Ranking on dev keeps the test set out of the choice. Each seed's two trained models are compared (averaging
    scores over seeds would test an ensemble instead); the difference stands beyond test-set noise when every seed's
    one-sided p is under 0.05, the rule of the floor check and the BERT verdicts. A ``ValueError`` if fewer than two
    models have the metric: a run of one model has nothing to compare (the notebook skips it).
    """
    table = summarise_seeds(results, split="dev")
    ranked = table[table["metric"] == metric].sort_values("mean", ascending=False)["row"].tolist()
    if len(ranked) < 2:
        raise ValueError(f"need two models with {metric_key('dev', metric)}, have {ranked}")
    a, b = ranked[:2]
    runs = {row: {r.get("seed"): r for r in results if r["row"] == row} for row in (a, b)}
    order = dict(key=lambda s: (s is None, s))
    seeds = (sorted(set(runs[a]) & set(runs[b]), **order)                      # both trained on the seed
             or sorted(set(runs[a]) | set(runs[b]), **order))                 # or one is a baseline (no seed)

    def run(row: str, seed: Any) -> dict:
        return runs[row].get(seed) or runs[row].get(None) or next(iter(runs[row].values()))

    return a, b, {s: paired_on_test(processed, run(a, s), run(b, s), metric, n_resamples=n_resamples) for s in seeds}
