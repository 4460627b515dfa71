"""The paper's own comparisons, computed from its printed numbers (:mod:`mcanb.published`, Ji et al. 2021 Tables
2–6), and the sentence every verdict of the project is written with (:func:`compare`).

Notebooks 02–04 and the report print these instead of typing the paper's findings into markdown: each says on which
metrics a comparison holds, with both values, and a tie at the printed precision is said as such.

* :func:`paper_domain` (Table 2), :func:`paper_more_data` (Tables 3 and 4), :func:`paper_hierarchy` (Table 5),
  :func:`paper_bert_vs_cnn` (Table 2 against Table 6) and :func:`paper_cnn` (Table 6).

This run's verdicts, with their test for noise, are :mod:`mcanb.bert_verdicts`' and :mod:`mcanb.cnn_scores`'.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from . import published

MORE_DATA_PAIRS = (("PubMedBERT abstract", "PubMedBERT full text"), ("BioBERT abstract", "BioBERT full text"),
                   ("ClinicalBERT disch. sum.", "ClinicalBERT all notes"))   # (less data, more data), §4.2


def metric_label(metric: str) -> str:
    """``micro_f1`` -> ``micro-F1``: a metric as the tables print it."""
    return published.METRIC_LABELS.get(metric, metric)


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def ahead(a_scores: Mapping[str, float], b_scores: Mapping[str, float], metrics: Sequence[str],
          digits: int = 1) -> dict[str, list[str]]:
    """The ``metrics`` both have, sorted into ``above`` (A's value higher), ``below`` and ``tied``, compared as printed
    (``digits`` decimals): what :func:`compare` says, and the report's at-a-glance table counts."""
    out: dict[str, list[str]] = {"above": [], "below": [], "tied": []}
    for m in metrics:
        x, y = a_scores.get(m), b_scores.get(m)
        if x is None or y is None or pd.isna(x) or pd.isna(y):
            continue
        x, y = round(float(x), digits), round(float(y), digits)
        out["below" if x < y else "above" if x > y else "tied"].append(m)
    return out


def compare(a: str, a_scores: Mapping[str, float], b: str, b_scores: Mapping[str, float],
            metrics: Sequence[str], digits: int = 1) -> str:
    """``"A is above B on micro-F1 (68.1 vs 67.1) and P@5 (…); B is ahead on macro-AUC (90.8 vs 88.6)."`` over the
    metrics both have, each winner's value first; values are compared as printed (``digits`` decimals), so a tie at
    that precision is a tie."""
    sides = ahead(a_scores, b_scores, metrics, digits)

    def said(m: str, first: Mapping[str, float], second: Mapping[str, float]) -> str:
        x, y = (round(float(v[m]), digits) for v in (first, second))
        return f"{metric_label(m)} ({x:.{digits}f} vs {y:.{digits}f})"
    above = [said(m, a_scores, b_scores) for m in sides["above"]]
    below = [said(m, b_scores, a_scores) for m in sides["below"]]     # "B is ahead on m (B's value vs A's)"
    tied = [said(m, a_scores, b_scores) for m in sides["tied"]]
    if not (above or below or tied):
        return f"{a} and {b} share no metric."
    parts = []
    if above:
        parts.append(f"{a} is above {b} on {join_words(above)}")
    if below:
        parts.append(f"{b} is ahead on {join_words(below)}" if above else f"{b} is above {a} on {join_words(below)}")
    if tied:
        parts.append(f"they tie on {join_words(tied)}")
    return "; ".join(parts) + "."


def _paper_rows(table: int, label_space: str, architecture: str | None = None) -> dict[str, dict[str, float]]:
    df = published.bert_frame(table)
    df = df[df["label_space"] == label_space]
    if architecture:
        df = df[df["architecture"] == architecture]
    return {e: dict(zip(g["metric"], g["value"])) for e, g in df.groupby("encoder", sort=False)}


def paper_bert_vs_cnn(label_space: str = "50") -> str:
    """The paper's best BERT (Table 2, BERT-hier + LAN, best micro-F1) against its retrained CNN (Table 6)."""
    rows = _paper_rows(2, label_space)
    metrics = published.METRICS[label_space]
    best = max(rows, key=lambda e: rows[e]["micro_f1"])
    cnn = {m: published.value("CNN (retrained)", label_space, m, "paper") for m in metrics}
    n_above = sum(r["micro_f1"] > cnn["micro_f1"] for r in rows.values())
    space = "top-50" if label_space == "50" else "full"
    return (f"Paper, {space} codes (Table 2 vs Table 6): {compare(f'{best} (BERT-hier + LAN)', rows[best], 'the retrained CNN', cnn, metrics)} "
            f"BERT encoders above the CNN on micro-F1: {n_above} of {len(rows)}.")


def paper_domain(label_space: str = "50") -> str:
    """Table 2: how many closer-domain encoders are above BERT-base on each metric, and the best one."""
    rows = _paper_rows(2, label_space)
    base = rows.pop("BERT-base")
    metrics = published.METRICS[label_space]
    counts = [f"{metric_label(m)} {sum(r[m] > base[m] for r in rows.values())}/{len(rows)}" for m in metrics]
    best = max(rows, key=lambda e: rows[e]["micro_f1"])
    return (f"Paper, Table 2 ({'top-50' if label_space == '50' else 'full'} codes): encoders pretrained closer to "
            f"the clinical domain above BERT-base, per metric: {', '.join(counts)}. Best micro-F1: {best} "
            f"({rows[best]['micro_f1']:.1f} vs BERT-base {base['micro_f1']:.1f}).")


def paper_more_data(table: int, label_space: str = "50") -> str:
    """Tables 3 and 4: for each (less, more) pretraining-data pair, the metrics where more data scores higher."""
    arch = "hier_lan" if table == 3 else "trun_fcn"
    rows = _paper_rows(table, label_space, arch)
    metrics = published.METRICS[label_space]
    wins = total = 0
    lines = []
    for less, more in MORE_DATA_PAIRS:
        if less in rows and more in rows:
            shared = [m for m in metrics if m in rows[less] and m in rows[more]]
            w = sum(rows[more][m] > rows[less][m] for m in shared)
            wins, total = wins + w, total + len(shared)
            lines.append(f"  {compare(more, rows[more], less, rows[less], shared)}")
    head = (f"Paper, Table {table} ({'top-50' if label_space == '50' else 'full'} codes, "
            f"{published.ARCHITECTURES[arch]}): more pretraining data scores higher in {wins} of {total} "
            "comparisons.")
    return "\n".join([head, *lines])


def paper_hierarchy() -> str:
    """Table 5 (top-50): per metric, how many encoders gain from the hierarchy under FCN and from LAN in BERT-hier."""
    df = published.bert_frame(5)
    wide = {(e, a): dict(zip(g["metric"], g["value"])) for (e, a), g in df.groupby(["encoder", "architecture"])}
    encs = list(dict.fromkeys(df["encoder"]))
    out = []
    for (hi, lo), what in ((("hier_fcn", "trun_fcn"), "BERT-hier + FCN above BERT-trun + FCN"),
                           (("hier_lan", "hier_fcn"), "BERT-hier + LAN above BERT-hier + FCN")):
        counts = [f"{metric_label(m)} {sum(wide[(e, hi)][m] > wide[(e, lo)][m] for e in encs)}/{len(encs)}"
                  for m in published.METRICS["50"]]
        losers = [e for e in encs if wide[(e, hi)]["micro_f1"] <= wide[(e, lo)]["micro_f1"]]
        out.append(f"Paper, Table 5: {what}, encoders per metric: {', '.join(counts)}"
                   + (f" (not on micro-F1: {join_words(losers)})." if losers else "."))
    return "\n".join(out)


def paper_cnn(label_space: str = "50") -> str:
    """Table 6: the paper's retrained CNN against each other model it prints, as the paper printed them, and on how
    many metrics the retrained CNN is the best of the table (the paper's "new state of the art" on the top-50 codes)."""
    metrics = published.METRICS[label_space]
    printed = published.frame().query("source == 'paper' and label_space == @label_space")
    rows = {m: dict(zip(g["metric"], g["value"])) for m, g in printed.groupby("model", sort=False)}
    cnn = rows.pop("CNN (retrained)")
    best = [m for m in metrics if all(cnn[m] > r[m] for r in rows.values() if m in r)]
    space = "top-50" if label_space == "50" else "full"
    lines = [f"Paper, Table 6 ({space} codes): the retrained CNN is the best model of the table on "
             + (f"{len(best)} of {len(metrics)} metrics ({join_words([metric_label(m) for m in best])})."
                if best else f"none of its {len(metrics)} metrics.")]
    for model, scores in rows.items():
        said = compare("the retrained CNN", cnn, model, scores, metrics)
        lines.append(f"  {said[0].upper()}{said[1:]}")
    return "\n".join(lines)
