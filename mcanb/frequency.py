"""F1 by training-set code frequency (the paper's Figure 3), for every model whose test predictions were saved.

Explained in ``notebooks/05_frequency_analysis.ipynb``. The training notebooks' runs sit in the run store
(``outputs/runs/<row>/<identity>/seed<k>/predictions_test.parquet``, :mod:`mcanb.grid`), and each notebook run lists
the ones its results come from in ``outputs/<notebook>/<run>/training_runs.json``; baselines save theirs in the
notebook run folder itself (``outputs/<notebook>/<run>/<baseline>/``). A ``params.yaml`` beside the predictions
or in a folder above (up to the run folder) names ``data_dir`` and ``label_space``. :func:`discover` finds them,
:func:`bin_scores` scores each one per frequency bin with ``mcanb.metrics.f1_by_frequency`` plus what
the paper left out (codes per bin, codes a model never predicts, a bootstrap interval per bin), and
:func:`summarise` averages seeds. Paper: Ji, Hölttä & Marttinen 2021, §4.4 and Figure 3 (whose bin edges are not
printed; the defaults are ``mcanb.metrics.DEFAULT_BINS``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from . import metrics, processed as processed_mod
from .identity import file_sha256, uses
from .paths import OUTPUTS, ROOT, RUNS, resolve
from .plots import PALETTE
from .predictions import load_predictions

PREDICTIONS = "predictions_test.parquet"
THIS_NOTEBOOK = "05_frequency_analysis"


@dataclass(frozen=True)
class PredictionRun:
    """One saved set of test scores and where it came from."""

    notebook: str        # e.g. "04_cnn_retraining"
    run: str             # the run folder name, e.g. "toy"
    model: str           # e.g. "cnn" (params.yaml "model", else the first folder below the run)
    seed: int | None     # None for deterministic baselines
    label_space: str     # "50" | "full"
    data_dir: Path       # preprocessing output the model was trained on
    path: Path           # the predictions_test.parquet file
    params_file: Path    # the nearest params.yaml that named label_space / data_dir

    @property
    def name(self) -> str:
        """Label of the model in tables and figures: ``cnn`` or, when several runs are shown, ``04:toy:cnn``."""
        return f"{self.notebook[:2]}:{self.run}:{self.model}"


def _params_chain(folder: Path, stop: Path) -> list[Path]:
    """``params.yaml`` files from ``folder`` up to ``stop`` (inclusive), nearest first."""
    out, d = [], folder
    while True:
        if (d / "params.yaml").exists():
            out.append(d / "params.yaml")
        if d == stop or stop not in d.parents:
            return out
        d = d.parent


def describe(pred: Path, run_dir: Path, source: tuple[str, str] | None = None) -> PredictionRun:
    """A :class:`PredictionRun` for ``pred`` inside ``run_dir`` (= ``outputs/<notebook>/<run>``, or a training run
    folder of the run store, whose notebook and run are then ``source``).

    Raises ``ValueError`` naming the file when no ``params.yaml`` between the two gives label_space and data_dir.
    """
    found: dict[str, Any] = {}
    params_file: Path | None = None
    for f in _params_chain(pred.parent, run_dir):
        doc = yaml.safe_load(f.read_text()) or {}
        for key in ("label_space", "data_dir", "row", "label", "model", "seed"):
            if key in doc and key not in found:
                found[key] = doc[key]
                if key in ("label_space", "data_dir"):
                    params_file = params_file or f
    missing = [k for k in ("label_space", "data_dir") if not found.get(k)]
    if missing:
        raise ValueError(f"{pred}: no params.yaml between it and {run_dir} gives {missing}; the notebook that "
                         "saved these predictions must record them (mcanb.train.fit extra_params)")
    rel = pred.parent.relative_to(run_dir).parts
    model = str(found.get("row") or found.get("label") or found.get("model") or (rel[0] if rel else run_dir.name))
    m = re.search(r"seed(\d+)", "/".join(rel))
    seed = int(found["seed"]) if source and found.get("seed") is not None else int(m.group(1)) if m else None
    notebook, run = source or (run_dir.parent.name, run_dir.name)
    return PredictionRun(notebook, run, model, seed, str(found["label_space"]), resolve(found["data_dir"]), pred,
                         params_file)


def discover(runs: Sequence[str], outputs: Path = OUTPUTS, exclude: Sequence[str] = (THIS_NOTEBOOK,)
             ) -> list[PredictionRun]:
    """The test predictions of every notebook run named in ``runs`` (run names, glob patterns): the training runs
    its ``training_runs.json`` lists (in the run store) and its own ``**/predictions_test.parquet`` (baselines).

    Example: ``discover(["toy"])`` finds notebook 04's ``outputs/runs/cnn/<identity>/seed13/...`` through
    ``outputs/04_cnn_retraining/toy/training_runs.json``, and its ``outputs/04_cnn_retraining/toy/most_frequent/``.
    A training run that two notebook runs list is shown once, and so is a baseline whose scores two notebook runs
    saved byte for byte (the most-frequent floor of notebooks 02, 03 and 04). Sorted by notebook, run, model, seed.
    """
    found = []
    skip = {*exclude, RUNS.name}
    for nb_dir in sorted(p for p in Path(outputs).iterdir() if p.is_dir() and p.name not in skip):
        for pattern in runs:
            for run_dir in sorted(p for p in nb_dir.glob(pattern) if p.is_dir()):
                found += [describe(p, run_dir) for p in sorted(run_dir.rglob(PREDICTIONS))]
                for entry in uses(run_dir) or []:
                    if (entry / PREDICTIONS).exists():
                        found.append(describe(entry / PREDICTIONS, entry, (nb_dir.name, run_dir.name)))
    unique: dict[Path, PredictionRun] = {}
    for r in found:
        unique.setdefault(r.path, r)                     # the first notebook run that lists it
    ordered = sorted(unique.values(), key=lambda r: (r.notebook, r.run, r.model, -1 if r.seed is None else r.seed))
    seen: set[tuple[str, str, str]] = set()
    out = []
    for r in ordered:     # a baseline (no seed) that several notebooks fit on the same data is the same scores
        if r.seed is None:
            same = (r.label_space, r.model, file_sha256(r.path))
            if same in seen:
                continue
            seen.add(same)
        out.append(r)
    return out


def reader_name(name: str) -> str:
    """A model name of :func:`short_names` as the tables and the report name the row (``mcanb.comparison.identify``):
    ``02:toy:in_domain_mlm_on_training_notes/hier_lan`` -> ``02/toy: in-domain (MLM on training notes) · BERT-hier +
    LAN``, ``cnn`` -> ``CNN (retrained)``. Figure 3's legend shows these."""
    from . import comparison, published

    parts = name.split(":", 2)
    where, key = (f"{parts[0]}/{parts[1]}: ", parts[2]) if len(parts) == 3 else ("", name)
    label, arch, _ = comparison.identify(key)
    return where + (f"{label} · {published.ARCHITECTURES.get(arch, arch)}" if arch else label)


def short_names(preds: Sequence[PredictionRun]) -> dict[Path, str]:
    """``{path: label}``: the bare model name when one notebook run is shown, else ``NN:run:model``."""
    several = len({(p.notebook, p.run) for p in preds}) > 1
    return {p.path: p.name if several else p.model for p in preds}


def train_counts(data: processed_mod.Processed) -> np.ndarray:
    """(num_codes,) training documents per code, recounted from the training split and checked against labels.csv."""
    counts = data.multi_hot("train").sum(axis=0).astype(np.int64)
    if "train_count" in data.labels and not np.array_equal(counts, data.labels["train_count"].to_numpy()):
        bad = int(np.flatnonzero(counts != data.labels["train_count"].to_numpy())[0])
        raise ValueError(f"{data.data_dir}/{data.label_space}/labels.csv row {bad} (code {data.codes[bad]}): "
                         f"train_count {data.labels['train_count'].iloc[bad]} but the training split has {counts[bad]}")
    return counts


def load_scores(pred: PredictionRun, data: processed_mod.Processed) -> np.ndarray:
    """(n_test, num_codes) scores of ``pred`` in the order of ``data``'s test split (checked, never guessed)."""
    hadm, scores = load_predictions(pred.path)
    want = data.hadm_ids("test")
    if scores.shape[1] != data.num_codes:
        raise ValueError(f"{pred.path}: {scores.shape[1]} score columns but {data.data_dir} label space "
                         f"{data.label_space!r} has {data.num_codes} codes")
    if not np.array_equal(np.sort(hadm), np.sort(want)):
        raise ValueError(f"{pred.path}: its {len(hadm)} hadm_ids are not the test split of {data.data_dir} "
                         f"({len(want)} documents)")
    order = pd.Series(np.arange(len(hadm)), index=hadm).loc[want].to_numpy()
    return scores[order]


def bin_scores(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray, *, bins: Sequence[float],
               threshold: float = 0.5, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per frequency bin: the paper's F1 plus codes per bin, never-predicted codes and a bootstrap CI.

    y_true, y_score: (n_docs, n_codes); counts: (n_codes,) training documents per code. Columns: ``bin``,
    ``n_codes``, ``n_present`` (codes with a test document), ``never_predicted`` (codes whose score never exceeds
    ``threshold`` on the test set), ``micro_f1`` and ``macro_f1_present`` (``metrics.f1_by_frequency``) and
    ``ci_low`` / ``ci_high`` (95% percentile bootstrap of the bin's micro-F1 over test documents). A bin without
    codes keeps its row with ``n_codes`` 0 and NaN scores, so the caller can say "no codes" instead of a blank.
    """
    table = pd.DataFrame(metrics.f1_by_frequency(y_true, y_score, counts, bins=bins, threshold=threshold))
    predicted = metrics.code_counts(y_true, y_score, threshold).predicted
    edges = np.asarray(bins, dtype=np.float64)
    idx = np.searchsorted(edges, counts, side="right") - 1
    never, low, high = [], [], []
    for b in range(len(table)):
        cols = np.flatnonzero(idx == b)
        never.append(int((predicted[cols] == 0).sum()))
        if len(cols) == 0:
            low.append(np.nan), high.append(np.nan)
            continue
        ci = metrics.bootstrap_ci(y_true[:, cols], y_score[:, cols], metrics=["micro_f1"], threshold=threshold,
                                  n_resamples=n_resamples, seed=seed)["micro_f1"]
        low.append(ci.low), high.append(ci.high)
    table["never_predicted"], table["ci_low"], table["ci_high"] = never, low, high
    table = table.rename(columns={"n_codes_present": "n_present"})
    return table[["bin", "n_codes", "n_present", "never_predicted", "micro_f1", "macro_f1_present",
                  "ci_low", "ci_high"]]


def frequency_tables(preds: Sequence[PredictionRun], *, bins: Sequence[float], threshold: float = 0.5,
                     n_resamples: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``{label_space: long table}``: :func:`bin_scores` of every prediction set, with model, seed, run columns."""
    names = short_names(preds)
    out: dict[str, list[pd.DataFrame]] = {}
    cache: dict[tuple[Path, str], tuple[processed_mod.Processed, np.ndarray, np.ndarray]] = {}
    for p in preds:
        key = (p.data_dir, p.label_space)
        if key not in cache:
            data = processed_mod.load(p.data_dir, p.label_space)
            cache[key] = (data, data.multi_hot("test"), train_counts(data))
        data, y, counts = cache[key]
        t = bin_scores(y, load_scores(p, data), counts, bins=bins, threshold=threshold,
                       n_resamples=n_resamples, seed=seed)
        t.insert(0, "model", names[p.path])
        t.insert(1, "seed", -1 if p.seed is None else p.seed)
        t["run_dir"] = str(p.path.parent.relative_to(ROOT) if ROOT in p.path.parents else p.path.parent)
        out.setdefault(p.label_space, []).append(t)
    return {space: pd.concat(frames, ignore_index=True) for space, frames in out.items()}


def summarise(long: pd.DataFrame) -> pd.DataFrame:
    """Per model and bin: mean and sd (ddof 1, 0 for one seed) of micro-F1 over seeds, seed count, the mean number
    of never-predicted codes (NaN for a bin without codes), and the widest bootstrap interval over seeds (``ci_low``
    min, ``ci_high`` max)."""
    g = long.groupby(["model", "bin"], sort=False)
    out = g.agg(n_codes=("n_codes", "first"), n_present=("n_present", "first"),
                never_predicted=("never_predicted", "mean"), f1_mean=("micro_f1", "mean"),
                f1_sd=("micro_f1", "std"), n_seeds=("seed", "count"),
                ci_low=("ci_low", "min"), ci_high=("ci_high", "max")).reset_index()
    out["f1_sd"] = out["f1_sd"].fillna(0.0)
    out["never_predicted"] = out["never_predicted"].where(out["n_codes"] > 0)    # an empty bin has no code to miss
    out["never_predicted_share"] = np.where(out["n_codes"] > 0, out["never_predicted"] / out["n_codes"].clip(lower=1),
                                            np.nan)
    return out


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells for reading beside the figure: a bin without codes is one row, "no codes", for
    every model at once (it is empty for all of them), never a blank."""
    rows, empty_done = [], set()
    for r in summary.itertuples(index=False):
        empty = r.n_codes == 0
        if empty:
            if r.bin in empty_done:
                continue
            empty_done.add(r.bin)
        f1 = "no codes" if empty else (f"{r.f1_mean:.3f}" if r.n_seeds == 1 else f"{r.f1_mean:.3f} ± {r.f1_sd:.3f}")
        ci = "–" if empty else f"{r.ci_low:.3f} to {r.ci_high:.3f}"
        rows.append({"model": "every model" if empty else r.model, "bin": r.bin, "codes": r.n_codes,
                     "in test": r.n_present, "never predicted (mean over seeds)": "–" if empty else
                     f"{r.never_predicted:g}", "micro-F1": f1, "95% CI": ci, "seeds": r.n_seeds})
    return pd.DataFrame(rows).set_index(["model", "bin"])


def plot(summary: pd.DataFrame, title: str):
    """Two seaborn panels: micro-F1 per bin with bootstrap intervals (the paper's Figure 3), and the share of each
    bin's codes a model never predicts; x tick labels carry the number of codes per bin."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    summary = summary[summary["n_codes"] > 0]                # a bin without codes has nothing to draw
    bins = list(dict.fromkeys(summary["bin"]))
    models = list(dict.fromkeys(summary["model"]))
    n_codes = summary.groupby("bin", sort=False)["n_codes"].first()
    ticks = [f"{b}\n{n_codes[b]} codes" for b in bins]
    palette = PALETTE if len(models) <= len(PALETTE) else sns.color_palette("tab20", len(models))   # no colour twice
    colours = dict(zip(models, palette))
    names = {m: reader_name(m) for m in models}
    columns = min(len(models), 4 if max(map(len, names.values())) <= 40 else 2)   # long names: 2 a row
    legend_rows = -(-len(models) // columns)
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4 + 0.3 * legend_rows))
    ax = sns.barplot(data=summary, x="bin", y="f1_mean", hue="model", order=bins, hue_order=models,
                     palette=colours, errorbar=None, ax=axes[0])
    width = 0.8 / len(models)                           # seaborn's dodge: hue bars share 0.8 of each category
    for j, model in enumerate(models):
        rows = summary[summary["model"] == model].set_index("bin").reindex(bins)
        x = np.arange(len(bins)) - 0.4 + (j + 0.5) * width
        ok = (rows["n_codes"].to_numpy() > 0) & rows["f1_mean"].notna().to_numpy()
        lo = (rows["f1_mean"] - rows["ci_low"]).clip(lower=0).to_numpy()
        hi = (rows["ci_high"] - rows["f1_mean"]).clip(lower=0).to_numpy()
        ax.errorbar(x[ok], rows["f1_mean"].to_numpy()[ok], yerr=[lo[ok], hi[ok]], fmt="none",
                    ecolor="#333333", elinewidth=1, capsize=2)
    ax.set(xlabel="training documents per code", ylabel="micro-F1 (test)", ylim=(0, 1), title=title)
    ax.set_xticks(range(len(bins)), ticks)
    ax2 = sns.barplot(data=summary, x="bin", y="never_predicted_share", hue="model", order=bins, hue_order=models,
                      palette=colours, errorbar=None, ax=axes[1], legend=False)
    ax2.set(xlabel="training documents per code", ylabel="share of codes never predicted", ylim=(0, 1.02),
            title="Codes never predicted (score ≤ threshold on every test note)")
    ax2.set_xticks(range(len(bins)), ticks)
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(handles, [names[x] for x in labels], loc="lower center", ncol=columns, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * legend_rows + 0.02, 1, 1))  # the legend's rows below the panels, not over them
    return fig


def flat_metrics(summary: pd.DataFrame, label_space: str) -> dict[str, float]:
    """``metrics.json`` entries ``<label_space>/<model>/<bin>/<stat>`` (bins without codes left out, counted)."""
    out: dict[str, float] = {}
    for r in summary.itertuples(index=False):
        key = f"{label_space}/{r.model}/{r.bin}"
        out[f"{key}/n_codes"] = int(r.n_codes)
        if r.n_codes == 0:
            continue
        out.update({f"{key}/micro_f1/mean": r.f1_mean, f"{key}/micro_f1/sd": r.f1_sd,
                    f"{key}/micro_f1/ci_low": r.ci_low, f"{key}/micro_f1/ci_high": r.ci_high,
                    f"{key}/never_predicted": r.never_predicted, f"{key}/n_seeds": int(r.n_seeds)})
    return out


def find_predictions(runs: Sequence[str], outputs: Path = OUTPUTS) -> list[PredictionRun]:
    """:func:`discover`, or a ``FileNotFoundError`` that names the command producing the missing input.

    This notebook only reads what the training notebooks saved; it never starts one. Example message for
    ``runs == ["toy"]``: "... run ``mcanb run 04_cnn_retraining toy`` first (or ``mcanb study toy``, which runs it)".
    """
    preds = discover(runs, outputs) if Path(outputs).exists() else []
    if preds:
        return preds
    named = [r for r in runs if not any(c in r for c in "*?[")]
    how = (f"mcanb run 04_cnn_retraining {named[0]}" if named else
           "mcanb run 04_cnn_retraining <run> (or 02_pretraining_domains, 03_hierarchy)")
    raise FileNotFoundError(f"no {PREDICTIONS} under {outputs}/<notebook>/{{{','.join(runs)}}}/: notebook 05 reads the "
                            f"test predictions the training notebooks save; run `{how}` first"
                            + (" (or `mcanb study toy`, which runs notebooks 01-05 in order)" if list(runs) == ["toy"]
                               else ""))
