"""The study report's answers to the paper's three questions, computed from a profile's finished runs.

* RQ1 (notebook 02): :func:`pretraining_verdict`, the domain verdict then the more-data verdict;
* RQ2 (notebook 03): ``bert_verdicts.hierarchy_verdict``;
* RQ3 (notebooks 02-04): :func:`bert_vs_cnn`, the best BERT row against the best CNN-family model with the same
  paired test over the test notes, and its figure.

RQ1 and RQ2 are answered as their notebooks answer them (:func:`answer`): where the run's predictions are at hand
(:func:`seed_records`), each comparison says which differences stand beyond test-set noise and warns when a row does
not clear the run's most-frequent floor, and the floor verdict of every row follows; otherwise the sentences compare
means. :mod:`mcanb.report` lays them out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import comparison, identity, published


@dataclass
class RunResults:
    """What the noise tests need of one finished notebook run (:func:`seed_records`): its processed data, one result
    record per training run and, where the run saved it, its most-frequent floor (``cnn_study.saved_baseline``)."""
    data: Any
    records: list[dict]
    floor: dict | None


def seed_records(run: Path | None) -> RunResults | None:
    """The :class:`RunResults` of a finished notebook run folder that trains (``outputs/02_pretraining_domains/toy``,
    ``outputs/04_cnn_retraining/toy``): one record per training run (test metrics, dev threshold, test predictions)
    read from its params.yaml and training_runs.json, for the verdicts' noise test; None when any of it is gone (the
    verdicts then compare means). ``encoder``/``architecture``: ``mcanb.comparison.identify`` of the row (a CNN-family
    row: its model's name and ``""``). :func:`mcanb.report.gather` reads each run once."""
    import json

    import yaml

    from .cnn_study import saved_baseline
    from .errors import DamagedOutput
    from .paths import resolve as resolve_path
    from .processed import load
    from .reproduced import requested_keys

    try:
        params = yaml.safe_load((run / "params.yaml").read_text())
        data = load(resolve_path(params["data_dir"]), str(params["label_space"]))
        records = []
        for folder in identity.uses(run) or []:
            m = json.loads((folder / "metrics.json").read_text())["metrics"]
            key = str(yaml.safe_load((folder / "params.yaml").read_text())["row"])    # the grid row it trained
            label, architecture, _ = comparison.identify(key)
            records.append({"row": key, "encoder": label, "architecture": architecture,
                            "seed": folder.name, "predictions": str(folder / "predictions_test.parquet"),
                            "dev_threshold": m.get("dev_threshold"),
                            **{k: v for k, v in m.items() if k.startswith("test/")}})
    except (OSError, TypeError, KeyError, ValueError, DamagedOutput):   # the sentences then compare means
        return None
    if not records or not all(Path(r["predictions"]).exists() for r in records):
        return None
    return RunResults(data, _in_run_order(records, requested_keys(run.parent.name, params)),
                      saved_baseline(run / "most_frequent", data))


def _in_run_order(records: list[dict], keys: Sequence[str]) -> list[dict]:
    """``records`` grouped by encoder in the order the run's parameters name them, then each encoder's
    architectures in their order, rather than by folder name (the store's slugs put a less-data twin first)."""
    heads = list(dict.fromkeys(k.split("/")[0] for k in keys))
    tails = list(dict.fromkeys(k.split("/", 1)[-1] for k in keys))
    at = lambda seq, x: seq.index(x) if x in seq else len(seq)                  # noqa: E731 (unknown ones last)
    return sorted(records, key=lambda r: (at(heads, r["row"].split("/")[0]), at(tails, r["row"].split("/", 1)[-1])))


def answer(verdict, measured: dict[str, dict[str, comparison.Cell]], found: RunResults | None,
           must_clear: Sequence[str] | None = None) -> list:
    """``verdict`` (RQ1's :func:`pretraining_verdict` or RQ2's ``hierarchy_verdict``) on this run's rows, on the
    paper's metrics of its label space and micro-F1 at the dev-tuned threshold, as the run's notebook prints it: one
    ``bert_verdicts.Pair`` per comparison (the verdict's lines when it has none), then sentences (:func:`as_text`
    joins them as the notebook prints them).

    Given the run's :class:`RunResults` (``found``), each comparison says which differences stand beyond test-set
    noise and, with the run's most-frequent floor, warns where a row did not clear it; the floor verdict of every row
    follows, as a ``bert_verdicts.FloorRows`` (``bert_verdicts.floor_verdict``; ``must_clear``: the architectures
    the notebook warns about, :data:`mcanb.bert_verdicts.MUST_CLEAR`). Without it the comparisons are of means, in
    the label space whose P@k the rows have."""
    from .bert_scores import DEV_THRESHOLD
    from .bert_verdicts import floor_verdict

    extra = [published.DEV_TUNED_METRICS[0]]
    rows, results = _verdict_inputs(measured)
    pairs: list = []
    if found is None:
        text = verdict(rows, results, label_space=_label_space(measured.values()), extra_metrics=extra,
                       collect=pairs)
        return pairs or text.splitlines()
    data, records, floor = found.data, found.records, found.floor
    text = verdict(rows, records, label_space=str(data.label_space), extra_metrics=extra, processed=data, floor=floor,
                   collect=pairs)
    items = pairs or text.splitlines()
    if floor is None:
        return items
    table: list = []
    floor_verdict(records, floor, data, DEV_THRESHOLD, must_clear=must_clear, collect=table)
    return [*items, *table]


def as_text(items: Sequence) -> str:
    """:func:`answer`'s items as the notebook prints them: each comparison's line, each sentence, one a line."""
    return "\n".join(getattr(i, "line", i) for i in items)


def pretraining_verdict(rows, results: list[dict], floor: dict | None = None, **kw) -> str:
    """RQ1 as notebook 02 answers it: the domain verdict, then the more-data verdict (Tables 3 and 4) on this run's
    (less data, more data) pairs: the paper's (``paper_verdicts.MORE_DATA_PAIRS``) and a local less-data twin with the
    in-domain encoder it halves. ``kw``: the verdicts' ``label_space``, ``extra_metrics`` and ``processed``;
    ``floor``: the run's most-frequent baseline record, for both verdicts' warnings (as notebook 02)."""
    from .bert_verdicts import domain_verdict, more_data_verdict
    from .paper_verdicts import MORE_DATA_PAIRS

    labels = {r["encoder"] for r in results}
    more = published.LOCAL_LABELS["in-domain"]
    twins = {r["encoder"] for r in results if comparison.less_data_twin(r["row"])}
    pairs = [p for p in MORE_DATA_PAIRS if set(p) <= labels] + [(t, more) for t in sorted(twins) if more in labels]
    text = domain_verdict(rows, results, floor=floor, **kw)
    return text + ("\n" + more_data_verdict(pairs, results, floor=floor, **kw) if pairs else "")


def _verdict_inputs(results: dict[str, dict[str, comparison.Cell]]):
    """:mod:`mcanb.bert_verdicts`' inputs from measured BERT rows: the encoder rows and one result row per
    (encoder, architecture) with its mean test metrics (fractions, as the notebooks' result rows)."""
    from .bert_study import Encoder

    rows, out = {}, []
    for key, cells in results.items():
        label, arch, domain = comparison.identify(key)
        if arch:
            rows.setdefault(label, (comparison.less_data_twin(key), Encoder(label, "", domain=domain)))
            out.append({"row": key, "encoder": label, "architecture": arch, "seed": 0,
                        **{f"test/{m}": c.mean / 100 for m, c in cells.items()}})
    return [e for _, e in sorted(rows.values(), key=lambda r: r[0])], out   # a less-data twin after its encoder


def _label_space(cells: Any) -> str:
    """``"full"`` when any of these rows' cells has a metric only the full-code tables report (P@8, P@15), else
    ``"50"``: the label space of rows read from ``metrics.json`` without their data."""
    only_full = [m for m in published.METRICS["full"] if m not in published.METRICS["50"]]
    return "full" if any(m in c for c in cells for m in only_full) else "50"


def bert_vs_cnn(bert: dict[str, dict[str, comparison.Cell]], cnn: dict[str, dict[str, comparison.Cell]],
                found: Sequence[RunResults] = (), metric: str = "micro_f1") -> list:
    """RQ3: the best BERT row of this run against the best CNN-family model (baselines excluded) on the test
    ``metric``, as a sentence, or, where both exist, as a ``bert_verdicts.Pair`` on every metric both have (the
    sentence its ``line``), with the paired bootstrap over the test notes where the runs ``found`` (notebooks 02, 03
    and 04: :func:`seed_records`) have their predictions on one data set (``bert_verdicts.noise_ps``, on the seeds
    both ran); then the paper's own answer, per metric, from its top-50 Tables 2 and 6."""
    from .bert_scores import DEV_THRESHOLD
    from .bert_verdicts import Pair, noise_ps
    from .paper_verdicts import paper_bert_vs_cnn

    def best(results, keep):
        scored = [(c[metric], k) for k, c in results.items() if metric in c and keep(k)]
        return max(scored, key=lambda x: x[0].mean) if scored else None

    b = best(bert, lambda k: "/" in k)
    c = best(cnn, lambda k: "/" not in k and published.CNN_ROWS.get(k, k) not in published.BASELINE_ROWS)
    label = published.METRIC_LABELS[metric]
    paper = paper_bert_vs_cnn("50")        # the paper's own answer, per metric, from its Tables 2 and 6
    if b is None or c is None:
        missing = " and ".join(x for x, y in (("a BERT run (notebooks 02/03)", b), ("a CNN-family run (notebook 04)", c))
                               if y is None)
        return [f"This run lacks {missing} to compare. {paper}"]
    (bc, bk), (cc, ck) = b, c
    (blabel, barch, _), (clabel, _, _) = comparison.identify(bk), comparison.identify(ck)
    bname = f"{blabel} · {published.ARCHITECTURES[barch]}"
    verb = "beats" if bc.mean > cc.mean else "does NOT beat"
    said = (f"The best BERT variant of this run, {bname} ({bc} test {label}), {verb} the best CNN-family model, "
            f"{clabel} ({cc}).")
    space = str(found[0].data.label_space) if found else _label_space([bert[bk]])
    metrics = tuple(m for m in (*published.METRICS[space], DEV_THRESHOLD) if m in bert[bk] and m in cnn[ck])
    ps: dict[str, float] = {}
    if found and len({(str(f.data.data_dir), str(f.data.label_space)) for f in found}) == 1:   # one test set
        records = [r for f in found for r in f.records if r["row"] in (bk, ck)]
        ps = noise_ps(found[0].data, records, (blabel, barch), (clabel, ""), metrics)[0]
    pair = Pair("The best BERT row against the best CNN-family model: ", bname, clabel,
                {m: bert[bk][m].mean for m in metrics}, {m: cnn[ck][m].mean for m in metrics},
                metrics, ps, "", said)
    return [pair, paper]


def bert_vs_cnn_figure(bert, cnn, out: Path, metric: str = "micro_f1@dev_threshold") -> Path | None:
    """Bars of test ``metric`` (by default micro-F1 at the dev-tuned threshold, as the notebooks' figures) of every row of
    this run, mean ± sd over seeds, BERT and CNN family side by side."""
    shown = [*((k, c) for k, c in bert.items() if "/" in k or k not in cnn), *cnn.items()]   # a baseline once
    rows = [(f"{comparison.identify(k)[0]}\n{published.ARCHITECTURES.get(comparison.identify(k)[1], '')}".strip(),
             c[metric], "/" in k) for k, c in shown if metric in c]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import PALETTE
    rows.sort(key=lambda r: r[1].mean)
    fig, ax = plt.subplots(figsize=(6.4, 0.22 * len(rows) + 0.8))
    ax.barh(range(len(rows)), [r[1].mean for r in rows], xerr=[r[1].sd if r[1].n > 1 else 0 for r in rows],
            color=[PALETTE[0] if r[2] else PALETTE[1] for r in rows], capsize=2)
    ax.set_yticks(range(len(rows)), [r[0].replace("\n", " · ") for r in rows], fontsize=9)
    ax.set_xlabel(f"test {published.METRIC_LABELS[metric]} (%), mean ± sd over seeds", fontsize=8)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=PALETTE[0], label="BERT"), Patch(color=PALETTE[1], label="CNN family")],
              fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out / "rq3_bert_vs_cnn.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
