"""This run's BERT scores as notebooks 02 and 03 show them: in the paper's columns (:func:`results_table`) and beside
the paper's Tables 2-5 (:func:`beside_paper`), micro-F1 at the dev-tuned threshold next to the 0.5 one, the share of
the notes' words a row read (:func:`coverage`, from each encoder's word pieces: :func:`word_pieces`) and what each
encoder's pretraining did (:func:`pretraining_table`, and :func:`context_verdict` on it). Reads finished runs; a
training run never imports it, so editing it retrains nothing (:data:`mcanb.identity.TRAINING_CODE`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import comparison, encoder_probe, encoders, grid, published, wordpiece
from .bert_study import Encoder
from .paths import shown
from .processed import Processed


DEV_THRESHOLD = "micro_f1@dev_threshold"   # result key (under test/): micro-F1 at the threshold tuned on dev, which
                                           # mcanb.train.fit computes for every run (mcanb.metrics.dev_threshold_scores)


def scores_table(results: Sequence[dict], label_space: str, cov: dict[str, dict[str, float]] | None = None
                 ) -> pd.DataFrame:
    """:func:`results_table` plus micro-F1 at the dev-tuned threshold (every run's
    ``test/micro_f1@dev_threshold``) and, given :func:`coverage`, the share of the note each row read."""
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

    from .plots import PALETTE

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


def piece_lengths(processed: Processed, rows: Sequence[Encoder], *, max_words: int, split: str = "train",
                  progress: bool = False) -> pd.DataFrame:
    """Word pieces per note of ``split`` under each encoder's tokenizer (notes cut at ``max_words`` words first);
    one column per encoder label; ``attrs["pieces_per_word"]`` holds each encoder's pieces per word. Uses (and fills)
    the word-piece cache."""
    cols = {}
    for r in rows:
        tok = encoders.load_tokenizer(r.encoder)
        ids = wordpiece.encode_split(processed, split, tok, max_words, progress=progress)
        cols[r.label] = [len(x) for x in ids]
    out = pd.DataFrame(cols)
    note_words = processed.frames[split]["text"].str.split().str.len().fillna(0).to_numpy()
    kept = np.minimum(note_words, max_words)
    out.attrs["pieces_per_word"] = pd.Series({c: out[c].sum() / max(int(kept.sum()), 1) for c in out})
    out.attrs["note_words"], out.attrs["kept_words"] = note_words.tolist(), kept.tolist()
    return out


def word_pieces(processed: Processed, rows_of: Sequence[Encoder], params: Mapping[str, Any]
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """Notebooks 02 and 03's word-piece facts from their parameters (``max_words``, ``segment_length``,
    ``max_segments``): :func:`piece_lengths`, its :func:`segment_summary` and the :func:`coverage` shares."""
    lengths = piece_lengths(processed, rows_of, max_words=params["max_words"])
    return (lengths, segment_summary(lengths, params["segment_length"], params["max_segments"]),
            coverage(lengths, params["segment_length"], params["max_segments"]))


def segment_summary(lengths: pd.DataFrame, segment_length: int, max_segments: int) -> pd.DataFrame:
    """Per encoder: word pieces per note (mean, median, max; of the note's first ``max_words`` words), segments
    BERT-hier reads (mean), the share of the notes' words that BERT-hier (``max_segments`` segments) and BERT-trun
    (one segment) read, their *coverage* (:func:`coverage`), and the share ``max_words`` keeps. Encoders whose
    vocabularies split the same words into more pieces read less of each note under the same settings."""
    cov = coverage(lengths, segment_length, max_segments)
    kept = lengths.clip(upper=max_segments * (segment_length - 2))
    return pd.DataFrame({
        "pieces (mean)": lengths.mean(), "pieces (median)": lengths.median(), "pieces (max)": lengths.max(),
        "pieces per word": lengths.attrs.get("pieces_per_word", pd.Series(dtype=float)),
        "segments read (mean)": np.ceil(kept / (segment_length - 2)).clip(lower=1).mean(),
        "share read by BERT-hier": pd.Series(cov["hier"]), "share read by BERT-trun": pd.Series(cov["trun"]),
        "share kept by max_words": _kept_share(lengths),
    }).dropna(axis=1, how="all").round(2)


def _kept_share(lengths: pd.DataFrame) -> pd.Series:
    """The share of the notes' words that ``max_words`` keeps (the same for every encoder), NaN without counts."""
    kept, words = lengths.attrs.get("kept_words"), lengths.attrs.get("note_words")
    value = float(np.sum(kept)) / max(float(np.sum(words)), 1.0) if kept is not None else np.nan
    return pd.Series(value, index=lengths.columns)


def coverage(lengths: pd.DataFrame, segment_length: int, max_segments: int) -> dict[str, dict[str, float]]:
    """``{"hier"|"trun": {encoder label: share of the notes' words read}}`` from :func:`piece_lengths`' table:
    BERT-hier reads ``max_segments * (segment_length - 2)`` pieces per note, BERT-trun ``segment_length - 2``, of
    the pieces of the note's first ``max_words`` words. Each note's words read are its words kept times the share
    of their pieces read, summed over notes and divided by all their words (``attrs`` ``note_words`` and
    ``kept_words``; without them, the share of the pieces: every word kept). So a note cut at ``max_words`` counts
    as read only in part, even when every segment fits."""
    body = segment_length - 2
    kept, words = lengths.attrs.get("kept_words"), lengths.attrs.get("note_words")

    def share(cap: int) -> dict[str, float]:
        read = lengths.clip(upper=cap)
        if kept is None:                                   # no word counts: the share of the pieces themselves
            return (read.sum() / lengths.sum().clip(lower=1)).to_dict()
        words_read = (read / lengths.clip(lower=1)).mul(np.asarray(kept, dtype=float), axis=0).sum()
        return (words_read / max(float(np.sum(words)), 1.0)).to_dict()

    return {"hier": share(max_segments * body), "trun": share(body)}


def results_table(results: Sequence[dict], label_space: str, split: str = "test") -> pd.DataFrame:
    """This run's rows in the paper's columns: one row per (encoder, architecture), ``"mean ± sd"`` over seeds
    (percent), plus ``n_seeds``. Columns follow :data:`mcanb.published.METRICS` for the label space; the cells are
    :func:`mcanb.comparison.measured`'s, as in the comparison tables."""
    rows = []
    for key, cells in comparison.measured(grid.flat_metrics(results, (split,)), split).items():
        label, arch, _ = comparison.identify(key)
        rows.append({"encoder": label, "architecture": published.ARCHITECTURES[arch],
                     "n_seeds": max(c.n for c in cells.values()),
                     **{published.METRIC_LABELS[m]: str(cells[m]) if m in cells else "not run"
                        for m in published.METRICS[label_space]}})
    return pd.DataFrame(rows)


def metric_means(results: Sequence[dict], metric: str = "micro_f1", split: str = "test") -> dict[tuple[str, str], float]:
    """``{(encoder label, architecture): mean over seeds}`` of ``<split>/<metric>`` (fractions, not percent)."""
    frame = pd.DataFrame(results)
    return {k: float(g[f"{split}/{metric}"].mean()) for k, g in frame.groupby(["encoder", "architecture"])}


def beside_paper(results: Sequence[dict], table: int, label_space: str,
                 data_dir: str | Path | None = None) -> pd.DataFrame:
    """The paper's Table ``table`` with this run's rows under it (:func:`mcanb.comparison.build`, the table the
    report and the README show): a ``source`` column says which is which, ``stands for`` which paper rows a local
    encoder stands in for; differences to the paper only when ``data_dir`` was made from MIMIC-III."""
    return comparison.build(table, label_space, comparison.measured(grid.flat_metrics(results)),
                            data=comparison.data_source(data_dir)).frame()


CLS_SPREAD = "[CLS] spread over notes, %"     # a column of pretraining_table
FLAT_CLS = 5.0                                # % of a state's length; the packaged MiniLM: 44 on the toy notes


def pretraining_table(rows: Sequence[Encoder], processed: Processed | None = None, length: int = 64,
                      notes: int = 8) -> pd.DataFrame:
    """One line per encoder: domain, initialisation, where it comes from and, for the local ones, the masked-language-
    model loss at the start and end of pretraining (mean over the first and last 10 % of steps) and its time.

    Given ``processed``, also how contextual each encoder is on the first ``length`` word pieces of the first ``notes``
    training notes of at least 7 words (:func:`mcanb.encoder_probe.context_probe`; a random-init row with weights from
    seed 0): what a head that reads only ``[CLS]`` (the FCN) can get from a note. No such columns when no training
    note is that long."""
    texts = None
    if processed is not None:
        train = processed.frames["train"]["text"]
        texts = train[train.str.split().str.len() >= 7].head(notes).tolist() or None
    out = []
    for r in rows:
        meta = Path(r.encoder) / "pretraining.json"
        rec = json.loads(meta.read_text()) if r.init == "pretrained" and meta.exists() else {}
        line = {"encoder": r.label, "domain": r.domain, "init": r.init, "from": shown(r.encoder),
                "MLM loss, first 10 %": rec.get("mlm_loss_first"), "MLM loss, last 10 %": rec.get("mlm_loss_last"),
                "pretraining s": rec.get("seconds"), "pretraining examples": rec.get("examples")}
        if texts is not None:
            with torch.random.fork_rng():   # the random-init weights must not move the notebook's random state
                probe = encoder_probe.context_probe(encoders.load_encoder(r.encoder, r.init, seed=0),
                                                    encoders.load_tokenizer(r.encoder), texts, length=length)
            line.update({"next piece moves, %": probe["neighbour_move"], "[CLS] moves, %": probe["cls_move"],
                         CLS_SPREAD: probe["cls_spread"]})
        out.append(line)
    return pd.DataFrame(out).set_index("encoder")


def context_verdict(pretraining: pd.DataFrame, flat: float = FLAT_CLS) -> str:
    """Which encoders' ``[CLS]`` states hardly differ between notes (under ``flat`` % of a state's length, from
    :func:`pretraining_table` given the notes): a head that reads only ``[CLS]`` (BERT-trun + FCN,
    BERT-hier + FCN) has little to learn from them. Empty when the table has no such column."""
    if CLS_SPREAD not in pretraining:
        return ""
    spread = pretraining[CLS_SPREAD]
    few = [f"{name} {value:.1f} %" for name, value in spread.items() if value < flat]
    if few:
        return (f"[CLS] states that differ between notes by under {flat:g} % of their length: {'; '.join(few)}. A "
                "head that reads only [CLS] (the FCN rows) has little to learn from these encoders.")
    return (f"Every encoder's [CLS] states differ between notes by {flat:g} % of their length or more "
            f"({spread.min():.1f}-{spread.max():.1f}).")
