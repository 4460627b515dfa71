"""The BERT study's verdicts on this run, computed: sentences that say on which metrics a comparison holds.

From this run's results (records of :func:`mcanb.grid.run_grid`): :func:`domain_verdict`, :func:`more_data_verdict`,
:func:`hierarchy_verdict`, :func:`floor_verdict`; given the processed data, each comparison also says which of its
differences stand beyond test-set noise (:func:`noise_clause`, a paired bootstrap over the test notes). The paper's own
comparisons, from its printed numbers, are :mod:`mcanb.paper_verdicts`'; the two are never mixed in one sentence.

Notebooks 02 and 03 print these instead of typing numbers into markdown. Every comparison names its metrics; a
tie (equal to the printed precision) is said as such.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from . import published
from .cnn_scores import FLOOR_ALPHA, floor_check, floor_table
from .paired import resamplable, worst_p
from .paper_verdicts import compare, join_words as _join, metric_label as _label
from .reporting import summarise_seeds


def means(results: Sequence[dict], split: str = "test") -> dict[tuple[str, str], dict[str, float]]:
    """``{(encoder label, architecture): {metric: mean over seeds, in percent}}`` for every metric of the rows."""
    frame = pd.DataFrame(results)
    cols = [c for c in frame.columns if c.startswith(f"{split}/")]
    out = {}
    for key, g in frame.groupby(["encoder", "architecture"], sort=False):
        out[key] = {c.split("/", 1)[1]: 100 * float(g[c].mean()) for c in cols if g[c].notna().any()}
    return out


def _metrics(label_space: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    return (*published.METRICS[label_space], *extra)


def _coverage_note(label: str, coverage: Mapping[str, float] | None) -> str:
    return f" (reads {100 * coverage[label]:.0f} % of the notes' words)" if coverage and label in coverage else ""


FLOOR_METRIC = "micro_f1@dev_threshold"   # what a row must beat the most-frequent floor on (bert_scores.DEV_THRESHOLD)
ALPHA = FLOOR_ALPHA   # one level for every paired test: beyond noise when every seed's one-sided p is below it
# The architectures whose rows each notebook (and the report) warns about when one does not clear the floor.
MUST_CLEAR = {"02_pretraining_domains": ("hier_lan",), "03_hierarchy": ("trun_lan", "hier_lan")}
NOISE_LEAD = "Beyond test-set noise"   # how a verdict's noise clause starts (said_and_noise sets it apart)


def said_and_noise(text: str) -> list[tuple[str, str]]:
    """Each line of a verdict, split into what it compares and its noise clause (:func:`noise_clause`; "" when it has
    none). The notebooks print them with :func:`show`, the report as list items."""
    out = []
    for line in text.splitlines():
        said, lead, rest = line.partition(f" {NOISE_LEAD}")
        out.append((said, (lead + rest).strip()))
    return out


def show(text: str) -> None:
    """Print a verdict: each comparison on its own line, its noise clause indented on the next."""
    for said, noise in said_and_noise(text):
        print(said + (f"\n    {noise}" if noise else ""))


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _runs(results: Sequence[dict]) -> dict[tuple[str, str], dict[Any, Mapping[str, Any]]]:
    """``{(encoder label, architecture): {seed: result record}}``."""
    out: dict[tuple[str, str], dict[Any, Mapping[str, Any]]] = {}
    for r in results:
        out.setdefault((r["encoder"], r["architecture"]), {})[r.get("seed")] = r
    return out


def noise_ps(processed: Any, results: Sequence[dict], a: tuple[str, str], b: tuple[str, str],
             metrics: Sequence[str], *, n_resamples: int = 1000) -> tuple[dict[str, float], bool]:
    """``({metric: p}, skipped)``: for each metric a paired bootstrap can resample (:func:`mcanb.paired.resamplable`:
    all, the AUCs while they fit in memory) on which rows ``a`` and ``b`` (``(encoder, architecture)`` keys of
    ``results``) differ as printed, the worst one-sided p over the seeds both ran of the better row against the other
    over the test notes (:func:`mcanb.paired.worst_p`); ``skipped``: a metric was left out for its size."""
    runs = _runs(results)
    seeds = sorted(set(runs.get(a, {})) & set(runs.get(b, {})), key=str)
    ps, skipped = {}, False
    for m in metrics:
        if not resamplable(m, processed):
            skipped = True
            continue
        values = [[runs[k][s].get(f"test/{m}") for s in seeds] for k in (a, b)]
        if not seeds or any(v is None or pd.isna(v) for vs in values for v in vs):
            continue
        ma, mb = (round(100 * sum(vs) / len(vs), 1) for vs in values)
        if ma != mb:
            hi, lo = (a, b) if ma > mb else (b, a)
            ps[m] = worst_p(processed, [(runs[hi][s], runs[lo][s]) for s in seeds], m, n_resamples=n_resamples)
    return ps, skipped


def noise_clause(processed: Any, results: Sequence[dict], a: tuple[str, str], b: tuple[str, str],
                 metrics: Sequence[str], *, alpha: float = ALPHA, n_resamples: int = 1000,
                 tested: tuple[dict[str, float], bool] | None = None) -> str:
    """Which of rows ``a`` and ``b``'s differences stand beyond test-set noise (:func:`noise_ps`, or its result
    ``tested``): beyond noise when every seed's one-sided p is under ``alpha``. ``""`` when none was tested."""
    ps, skipped = tested or noise_ps(processed, results, a, b, metrics, n_resamples=n_resamples)
    beyond = [f"{_label(m)} ({_p(p)})" for m, p in ps.items() if p < alpha]
    within = [f"{_label(m)} ({_p(p)})" for m, p in ps.items() if p >= alpha]
    if not ps:
        return ""
    n_test = len(processed.hadm_ids("test"))
    said = [f"the differences on {_join(beyond)}" if beyond else "no difference",
            *([f"within it: {_join(within)}"] if within else []),
            *([f"the AUCs are not bootstrapped at this size ({n_test:,} test notes with "
               f"{sum(map(len, processed.label_ids('test'))):,} gold codes)"] if skipped else [])]
    return (f" {NOISE_LEAD} (paired bootstrap over the {n_test} test notes, one-sided p < {alpha:g} for every "
            f"seed): {'; '.join(said)}.")


@dataclass
class Pair:
    """One comparison a verdict says, as data (the report's tables): ``lead`` (``"BERT-hier + LAN: "``), the two rows
    as said, their mean scores (percent) on ``metrics``, each tested metric's worst one-sided p (:func:`noise_ps`;
    empty when untested), the floor caveat (:func:`floor_caveat`, ``""`` when both rows clear the floor) and the
    verdict's ``line`` itself."""
    lead: str
    a: str
    b: str
    a_scores: Mapping[str, float]
    b_scores: Mapping[str, float]
    metrics: tuple[str, ...]
    ps: dict[str, float]
    caveat: str
    line: str


def _say(lead: str, said: tuple[str, str], keys: tuple[tuple[str, str], tuple[str, str]], score: Mapping,
         metrics: Sequence[str], results: Sequence[dict], processed: Any, floor: Mapping[str, Any] | None,
         collect: list | None) -> str:
    """A verdict's line on rows ``keys`` (said as ``said``): :func:`compare`, :func:`floor_caveat` and
    :func:`noise_clause`; the same comparison is appended to ``collect`` as a :class:`Pair` when given."""
    tested = noise_ps(processed, results, *keys, metrics) if processed is not None else ({}, False)
    caveat = floor_caveat(results, floor, processed, keys)
    line = (lead + compare(said[0], score[keys[0]], said[1], score[keys[1]], metrics) + caveat
            + (noise_clause(processed, results, *keys, metrics, tested=tested) if processed is not None else ""))
    if collect is not None:
        collect.append(Pair(lead, *said, score[keys[0]], score[keys[1]], tuple(metrics), tested[0], caveat.strip(),
                            line))
    return line


def domain_verdict(rows: Sequence, results: Sequence[dict], label_space: str = "50", *,
                   architecture: str = "hier_lan", coverage: Mapping[str, float] | None = None,
                   extra_metrics: Sequence[str] = (), processed: Any = None,
                   floor: Mapping[str, Any] | None = None, collect: list | None = None) -> str:
    """This run's domain axis under one architecture: in-domain vs random init, and general vs in-domain, on every
    metric, with each encoder's coverage of the note when given (``{label: share}``); given the ``processed`` data,
    which differences stand beyond test-set noise (:func:`noise_clause`), and, given the ``floor`` record too, a
    warning where a row of the pair does not clear the most-frequent floor (:func:`floor_caveat`). ``collect``: a
    list that gets each comparison as a :class:`Pair` (the same in the other verdicts)."""
    score = means(results)
    by_domain: dict[str, str] = {}
    for r in rows:   # the first encoder of each domain (a less-data twin comes after its encoder)
        if (r.label, architecture) in score:
            by_domain.setdefault(r.domain, r.label)
    metrics = _metrics(label_space, extra_metrics)
    lines = []
    for a, b in (("in-domain", "none"), ("general", "in-domain")):
        if a in by_domain and b in by_domain:
            la, lb = by_domain[a], by_domain[b]
            lines.append(_say(f"{published.ARCHITECTURES[architecture]}: ",
                              (la + _coverage_note(la, coverage), lb + _coverage_note(lb, coverage)),
                              ((la, architecture), (lb, architecture)), score, metrics, results, processed, floor,
                              collect))
    return "\n".join(lines) or "This run has no pair of domains to compare."


def more_data_verdict(pairs: Sequence[tuple[str, str]], results: Sequence[dict], label_space: str = "50", *,
                      architectures: Sequence[str] = ("hier_lan", "trun_fcn"), extra_metrics: Sequence[str] = (),
                      processed: Any = None, floor: Mapping[str, Any] | None = None,
                      collect: list | None = None) -> str:
    """This run's (less data, more data) encoder pairs, under each architecture that ran both (with
    :func:`noise_clause` given the ``processed`` data, and, given the ``floor`` record too, a warning where a row of
    the pair does not clear the most-frequent floor: :func:`floor_caveat`)."""
    score = means(results)
    lines = []
    for less, more in pairs:
        for arch in architectures:
            if (less, arch) in score and (more, arch) in score:
                metrics = _metrics(label_space, extra_metrics)
                lines.append(_say(f"{published.ARCHITECTURES[arch]}: ", (more, less), ((more, arch), (less, arch)),
                                  score, metrics, results, processed, floor, collect))
    return "\n".join(lines) or "This run has no less-data / more-data pair to compare."


def floor_caveat(results: Sequence[dict], floor: Mapping[str, Any] | None, processed: Any,
                 keys: Sequence[tuple[str, str]], metric: str = FLOOR_METRIC) -> str:
    """" Read with care: ..." naming the rows among ``keys`` (``(encoder, architecture)``) that do not clear the
    most-frequent ``floor`` on ``metric`` beyond test-set noise (the test of :func:`floor_verdict`): a comparison of
    rows that learned little from the notes says little about what it compares. Empty without ``floor`` or
    ``processed``, or when every row clears it."""
    if floor is None or processed is None:
        return ""
    rows = [r for r in results if (r["encoder"], r["architecture"]) in set(keys)]
    named = {r["row"]: f"{r['encoder']} · {published.ARCHITECTURES[r['architecture']]}" for r in rows}
    check = floor_check(summarise_seeds([*rows, floor]), list(named), floor["row"], [metric],
                        results=[*rows, floor], processed=processed)
    short = [named[c.model] for c in check.itertuples() if not c.above]
    if not short:
        return ""
    verb = "does" if len(short) == 1 else "do"
    return (f" Read with care: {_join(short)} {verb} not clear the most-frequent floor on {_label(metric)} beyond "
            "test-set noise, so this compares rows that learned little from the notes.")


def hierarchy_verdict(rows: Sequence, results: Sequence[dict], label_space: str = "50", *,
                      extra_metrics: Sequence[str] = (), processed: Any = None,
                      floor: Mapping[str, Any] | None = None, collect: list | None = None) -> str:
    """Per encoder: BERT-hier vs BERT-trun under each head, and LAN vs FCN within BERT-hier, on every metric (with
    :func:`noise_clause` given the ``processed`` data, and :func:`floor_caveat` given the ``floor`` record too)."""
    score = means(results)
    metrics = _metrics(label_space, extra_metrics)
    lines = []
    for r in rows:
        for hi, lo in (("hier_fcn", "trun_fcn"), ("hier_lan", "trun_lan"), ("hier_lan", "hier_fcn")):
            if (r.label, hi) in score and (r.label, lo) in score:
                lines.append(_say(f"{r.label}: ", (published.ARCHITECTURES[hi], published.ARCHITECTURES[lo]),
                                  ((r.label, hi), (r.label, lo)), score, metrics, results, processed, floor, collect))
    return "\n".join(lines) or "This run has no pair of architectures to compare."


@dataclass
class FloorRows:
    """:func:`floor_verdict` as data (the notebooks' and the report's table): every row against the floor
    (:func:`mcanb.cnn_scores.floor_table`), how they were tested, the ``warning`` when a row of the architectures that
    must clear the floor does not ("" otherwise) and the verdict's ``line``: its sentence, then that warning."""
    table: pd.DataFrame
    how: str
    line: str
    warning: str = ""


def floor_verdict(results: Sequence[dict], floor: Mapping[str, Any], processed: Any,
                  metric: str = FLOOR_METRIC, *, must_clear: Sequence[str] | None = None,
                  ranking: str | None = "macro_auc", alpha: float = ALPHA, n_resamples: int = 1000,
                  collect: list | None = None) -> tuple[bool, str]:
    """``(every row of the ``must_clear`` architectures, or every row, above the floor beyond test-set noise,
    sentence on every row)``.

    Each (encoder, architecture) row against ``floor``, the most-frequent-codes baseline's record
    (``cnn_study.run_baselines``), on ``metric`` by :func:`mcanb.cnn_scores.floor_check`, the floor test notebook 04
    uses too: a paired bootstrap over the test notes for each of the row's seeds, each run at its own dev-tuned
    threshold for an ``@dev_threshold`` metric. A row clears the floor when its mean is above the floor's and every
    seed's one-sided p is under ``alpha``; a row above the floor by less than that is said to be within test-set
    noise. Of the rows that do not clear it, the sentence then says which rank each code's notes better than the
    floor on ``ranking`` (macro-AUC: the floor gives every note the same scores, so its macro-AUC is 0.5) by the same
    test: those learned something from the notes, not enough to beat the floor's F1. The same answer, with a WARNING
    when a ``must_clear`` row does not clear the floor, is appended to ``collect`` as a :class:`FloorRows` when given.
    """
    named = {r["row"]: f"{r['encoder']} · {published.ARCHITECTURES[r['architecture']]}" for r in results}
    records = [*results, floor]
    both = floor_check(summarise_seeds(records), list(named), floor["row"],
                       [metric, *([ranking] if ranking and ranking != metric else [])], results=records,
                       processed=processed, alpha=alpha, n_resamples=n_resamples)
    check = both[both["metric"] == metric]
    arch = {r["row"]: r["architecture"] for r in results}
    ok = all(c.above for c in check.itertuples() if must_clear is None or arch[c.model] in must_clear)
    floor_value = float(floor[f"test/{metric}"])
    head = f"the most-frequent floor ({floor_value:.3f} {_label(metric)})"
    how = (f"paired bootstrap over the {len(processed.hadm_ids('test'))} test notes, {n_resamples} resamples, "
           f"one-sided p < {alpha:g} for every seed")
    line = _floor_sentence(both, metric, ranking, named, head, how)
    if collect is not None:
        must = " or ".join(published.ARCHITECTURES[a] for a in must_clear or ())
        warning = "" if ok or not must else f"WARNING: a {must} row does not clear {head} beyond test-set noise."
        collect.append(FloorRows(floor_table(both, named), how, f"{line} {warning}".strip(), warning))
    return ok, line


def _floor_sentence(both: pd.DataFrame, metric: str, ranking: str | None, named: Mapping[str, str], head: str,
                    how: str) -> str:
    """:func:`floor_verdict`'s sentence from its :func:`mcanb.cnn_scores.floor_check` answer ``both``."""
    check = both[both["metric"] == metric]
    clear, noise, below = [], [], []
    for c in check.itertuples():
        name = f"{named[c.model]} ({c.value:.3f}"
        if c.value <= c.floor:
            below.append(name + ")")
        else:
            (clear if c.above else noise).append(f"{name}, {_p(c.p)})")
    if not noise and not below:
        return f"All {len(named)} rows are above {head} beyond test-set noise ({how})."
    parts = [f"Above {head} beyond test-set noise ({how}): {_join(clear)}." if clear else
             f"No row is above {head} beyond test-set noise ({how})."]
    if noise:
        parts.append(f"Above it by no more than test-set noise: {_join(noise)}.")
    if below:
        parts.append(f"At or below it: {_join(below)}.")
    ranked = both[both["metric"] == ranking].set_index("model")
    short = [c.model for c in check.itertuples() if not c.above and c.model in ranked.index]
    if short:
        base = float(ranked["floor"].iloc[0])
        learned = [f"{named[m]} ({ranked.loc[m, 'value']:.3f}" + (f", {_p(ranked.loc[m, 'p'])})"
                   if pd.notna(ranked.loc[m, "p"]) else ", by its mean)")      # not resampled at this size
                   for m in short if ranked.loc[m, "above"]]
        rank_head = f"{_label(ranking)} ({base:.3f})"
        parts.append(f"Of the rows that do not clear it, above its {rank_head} beyond noise: {_join(learned)}; they "
                     "rank each code's notes better than the floor, not well enough to beat its F1." if learned else
                     f"None of the rows that do not clear it is above its {rank_head} beyond noise either.")
    return " ".join(parts)
