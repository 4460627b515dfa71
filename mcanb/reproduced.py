"""Which of the paper's tables a run reproduces, and which rows its parameters ask for.

The report and the README read a finished run through :func:`run_tables`: from the run's parameter values (the
notebook's defaults under its parameter file) they know the (encoder, architecture) rows it fine-tuned
(:func:`asked_rows`), hence the paper tables it stands beside (:func:`tables_of`); :mod:`mcanb.comparison` builds
each table from the run's ``metrics.json``. A row asked for and missing from ``metrics.json`` becomes a "not run" line.

Table 4 (more pretraining data under BERT-trun + FCN) asks about (less data, more data) pairs, so a run stands
beside it only when it fine-tuned both encoders of a pair under BERT-trun + FCN: notebook 02's ``more_data_pairs``
(on the top-50 codes), or notebook 03 given both encoders of one of the paper's pairs or the local less-data pair.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from . import published
from .comparison import Comparison, build, data_source, encoder_label, measured
from .paper_verdicts import MORE_DATA_PAIRS

BERT_NOTEBOOK_WITH_PAIRS = "02_pretraining_domains"
LOCAL_PAIR = (published.LOCAL_LABELS["in-domain-less"], published.LOCAL_LABELS["in-domain"])


def architectures(notebook: str, values: Mapping[str, Any]) -> list[str]:
    """The architectures a BERT notebook's parameter ``values`` fine-tune: notebook 03's ``architectures``; notebook 02
    (its cell "Fine-tuning") BERT-hier + LAN, and BERT-trun + FCN for its ``more_data_pairs`` on the top-50 codes."""
    if notebook != BERT_NOTEBOOK_WITH_PAIRS:
        return list(values.get("architectures") or ["hier_lan"])
    top50 = str(values.get("label_space", "50")) == "50"
    return ["hier_lan", *(["trun_fcn"] if top50 and _pairs(notebook, values) else [])]


def asked_rows(notebook: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(encoder, architecture) of every fine-tuning run the parameter ``values`` ask for: each encoder under each
    architecture, except that notebook 02 runs BERT-trun + FCN for the encoders of its pairs only."""
    encoders = list(values.get("encoders") or [])
    if notebook != BERT_NOTEBOOK_WITH_PAIRS:
        return [(e, a) for e in encoders for a in architectures(notebook, values)]
    paired = dict.fromkeys(e for pair in _pairs(notebook, values) for e in pair)
    trun = list(paired) if "trun_fcn" in architectures(notebook, values) else []
    return [(e, "hier_lan") for e in encoders] + [(e, "trun_fcn") for e in trun]


def _pairs(notebook: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (less data, more data) encoder pairs of a run: notebook 02's ``more_data_pairs``; otherwise its encoders
    that form one of the paper's pairs or the local less-data pair."""
    if notebook == BERT_NOTEBOOK_WITH_PAIRS:
        return [(less, more) for less, more in values.get("more_data_pairs") or []]
    by_label = {encoder_label(e): e for e in values.get("encoders") or []}
    return [(by_label[a], by_label[b]) for a, b in (*MORE_DATA_PAIRS, LOCAL_PAIR) if a in by_label and b in by_label]


def tables_of(notebook: str, values: Mapping[str, Any]) -> list[tuple[int, str]]:
    """The (paper table, label space) pairs a run of ``notebook`` with parameter ``values`` reproduces."""
    space = str(values.get("label_space", "50"))
    archs = set(architectures(notebook, values))
    trun = {e for e, a in asked_rows(notebook, values) if a == "trun_fcn"}
    out = []
    for table, nb in published.TABLE_NOTEBOOKS.items():
        if notebook not in nb:
            continue
        if table == 6:
            out.append((6, space))
            continue
        df = published.bert_frame(table)
        df = df[df["label_space"] == space]
        if df.empty or not archs & set(df["architecture"]):
            continue
        if table == 4 and not any({less, more} <= trun for less, more in _pairs(notebook, values)):
            continue
        out.append((table, space))
    return out


def requested_keys(notebook: str, values: Mapping[str, Any]) -> list[str]:
    """The row keys a run's parameters ask for."""
    if notebook == "04_cnn_retraining":
        return [*values.get("models", []), *values.get("baselines", [])]
    share = round(100 * float(values.get("less_data") or 0))     # the label of a less-data encoder names its share
    return [f"{published.slug(encoder_label(e).format(pct=share))}/{a}" for e, a in asked_rows(notebook, values)]


def run_tables(notebook: str, run_dir: Path, values: Mapping[str, Any], status: str | None = None) -> list[Comparison]:
    """Every paper table a run reproduces, read from its folder (``metrics.json``) and parameter ``values``.
    ``status`` is None for a finished run, else why it has no numbers."""
    path = run_dir / "metrics.json"
    if status is None and not path.exists():
        status = f"{path.name} not found"
    from .reporting import load_metrics        # a damaged metrics.json is one message naming the file
    results = measured(load_metrics(run_dir)) if status is None else {}
    key = f"{notebook}/{run_dir.name}"
    return [build(t, space, results, requested=requested_keys(notebook, values), data=data_source(
        values.get("data_dir")), run=key, run_dir=run_dir, status=status)
        for t, space in tables_of(notebook, values)]
