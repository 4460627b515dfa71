"""The paper's Tables 2–6 with this run's rows under them: one builder, rendered by the notebooks, the report and
the README.

A :class:`Comparison` is one paper table for one label space: rows are models as the paper prints them
(:mod:`mcanb.published` owns the names), columns the paper's metrics. Under the paper's rows sit the rows of one
run of this study, in the same columns (mean ± sd over seeds, percent), with a mapping column where a row of this
run stands in for a paper row (a local encoder stands in for the paper's encoders of its pretraining domain:
"in-domain ↔ ClinicalBERT all notes"). A paper row with no counterpart here is listed once, with one reason, in
a "not run" line. The difference to the paper appears only where this run's data is the paper's (MIMIC-III),
and only for the same model. For a coded-notes table of the user's own (``input_format: table``) the paper's rows,
its verdicts and the mappings are left out (:func:`shows_paper`): MIMIC-III's numbers say nothing about other data,
so such a table holds this run's rows only, in the paper's columns.

This run's numbers come as a flat ``{name: number}`` dict in the layout of a notebook's ``metrics.json``
(``<row key>/test/<metric>/mean|sd``, per seed ``<row key>/test/<metric>/seed<k>``: :mod:`mcanb.grid`), read by
:func:`measured`;
row keys are a CNN-family model name (``caml``) or ``<encoder slug>/<architecture>``. Notebooks 02–04 call
:func:`build` through ``bert_scores.beside_paper`` and ``cnn_scores.table6``; the report and the README go through
:func:`mcanb.reproduced.run_tables`, which reads a run folder. Paper: Ji, Hölttä & Marttinen 2021, Tables 2–6.
"""
from __future__ import annotations

import json
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from . import published
from .paper_verdicts import MORE_DATA_PAIRS
from .reporting import seed_count


@dataclass(frozen=True)
class Cell:
    """This run's number for one row and metric, in percent: mean and sd over ``n`` seeds."""

    mean: float
    sd: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.1f}" if self.n <= 1 else f"{self.mean:.1f} ± {self.sd:.1f}"


@dataclass
class Row:
    """One line of a comparison table."""

    name: str                              # the paper's row name, or this run's row label
    source: str                            # "paper" | "original" | "this run" | "not run"
    values: dict[str, Any] = field(default_factory=dict)   # metric -> float (published) or Cell (this run)
    architecture: str = ""                 # a key of published.ARCHITECTURES (BERT rows)
    stands_for: str = ""                   # mapping to the paper's rows, where this row is not one of them
    note: str = ""                         # why a row did not run; the source of a published row
    domain: str = ""                       # pretraining domain of a BERT row
    key: str = ""                          # this run's metrics.json prefix
    peers: tuple[str, ...] = ()            # the paper rows (same architecture) this row stands in for

    @property
    def seeds(self) -> int:
        return max((c.n for c in self.values.values() if isinstance(c, Cell)), default=0)


@dataclass
class Comparison:
    """One paper table (``table`` 2–6) for one label space, with one run's rows under the paper's."""

    table: int
    label_space: str
    paper: list[Row]
    this_run: list[Row]
    original: list[Row] = field(default_factory=list)   # Table 6: original publications where they differ
    data: str = "unknown data"                           # what this run read: "MIMIC-III", "the toy fixture", ...
    run: str = ""                                        # "<notebook>/<run name>"
    run_dir: Path | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The paper's metrics, then this run's F1 at the dev-tuned threshold where its rows carry it."""
        extra = tuple(m for m in published.DEV_TUNED_METRICS if any(m in r.values for r in self.this_run))
        return (*published.METRICS[self.label_space], *extra)

    @property
    def with_paper(self) -> bool:
        """Whether the paper's rows belong beside this run's (:func:`shows_paper`)."""
        return shows_paper(self.data)

    @property
    def difference(self) -> bool:
        """Differences to the paper mean something only on the paper's data."""
        return self.data == "MIMIC-III"

    @property
    def title(self) -> str:
        space = "top-50 codes" if self.label_space == "50" else "full code set"
        if not self.with_paper:
            return f"{published.TABLE_TITLES[self.table]} ({space}; this run, in the columns of the paper's Table {self.table})"
        return f"Table {self.table} ({space}): {published.TABLE_TITLES[self.table]}"

    @property
    def multi_architecture(self) -> bool:
        return len({r.architecture for r in (self.paper if self.with_paper else self.this_run)}) > 1

    def diff(self, row: Row, metric: str) -> float | None:
        """This run minus the paper for the paper's row of the same name, where the data is MIMIC-III."""
        cell = row.values.get(metric)
        if not self.difference or not isinstance(cell, Cell):
            return None
        same = [p for p in self.paper if p.name == row.name and p.architecture == row.architecture]
        v = same[0].values.get(metric) if same else None
        return None if v is None else cell.mean - v

    def frame(self) -> pd.DataFrame:
        """The table as strings: source, model, [architecture,] stands for, one column per metric, seeds (and a
        ``Δ <metric>`` column per metric on MIMIC-III). A not-run row carries its reason in ``stands for``."""
        labels = [published.METRIC_LABELS[m] for m in self.metrics]
        out = []
        for r in [*self.paper, *self.original, *self.this_run]:
            row = {"source": r.source, "model": r.name}
            if self.multi_architecture:
                row["architecture"] = published.ARCHITECTURES.get(r.architecture, r.architecture)
            row["stands for"] = r.note if r.source == "not run" else r.stands_for
            for m, label in zip(self.metrics, labels):
                v = r.values.get(m)
                row[label] = ("" if r.source in ("paper", "original") and m in published.DEV_TUNED_METRICS
                              else "–" if v is None else str(v) if isinstance(v, Cell) else f"{v:.1f}")
            row["seeds"] = str(r.seeds) if r.source == "this run" else ""
            if self.difference:
                for m, label in zip(self.metrics, labels):
                    d = self.diff(r, m)
                    row[f"Δ {label}"] = "" if d is None else f"{d:+.1f}"
            out.append(row)
        columns = ["source", "model", *(["architecture"] if self.multi_architecture else []), "stands for", *labels,
                   "seeds", *([f"Δ {label}" for label in labels] if self.difference else [])]
        return pd.DataFrame(out, columns=columns)     # the columns even without rows (another corpus, nothing run)


# ------------------------------------------------------------------------------------------------ this run

def measured(metrics: Mapping[str, float], split: str = "test") -> dict[str, dict[str, Cell]]:
    """``{row key: {metric: Cell}}`` from a flat metrics.json dict (fractions become percent)."""
    wanted = {m for ms in published.METRICS.values() for m in ms} | set(published.DEV_TUNED_METRICS)
    out: dict[str, dict[str, Cell]] = {}
    for k, mean in metrics.items():
        head, _, tail = k.rpartition(f"/{split}/")
        if not head or not tail.endswith("/mean") or tail[:-5] not in wanted or mean is None:
            continue
        metric = tail[:-5]
        n = seed_count(metrics, head, split, metric)
        sd = metrics.get(f"{head}/{split}/{metric}/sd") or 0.0
        out.setdefault(head, {})[metric] = Cell(100 * float(mean), 100 * float(sd), n)
    return out


def measured_from_summary(summary: pd.DataFrame) -> dict[str, dict[str, Cell]]:
    """The same from ``mcanb.reporting.summarise_seeds`` output (row, metric, mean, sd, n_seeds)."""
    out: dict[str, dict[str, Cell]] = {}
    for key, metric, mean, sd, n in summary[["row", "metric", "mean", "sd", "n_seeds"]].itertuples(index=False):
        out.setdefault(key, {})[metric] = Cell(100 * float(mean), 100 * float(sd), int(n))
    return out


def _bert_labels() -> dict[str, tuple[str, str]]:
    """``{encoder slug: (row label, domain)}`` for the paper's encoders and mcanb's local ones."""
    rows = {published.slug(n): (n, published.BERT_DOMAINS[n]) for n in published.BERT_ENCODERS}
    rows.update({published.slug(label): (label, published.LOCAL_DOMAINS[k])
                 for k, label in published.LOCAL_LABELS.items()})
    return rows


def identify(key: str) -> tuple[str, str, str]:
    """``(row label, architecture, domain)`` of a row key: ``"caml"`` -> ``("CAML", "", "")``,
    ``"in_domain_mlm_on_training_notes/hier_lan"`` -> ``("in-domain (MLM on training notes)", "hier_lan", "in-domain")``."""
    if "/" not in key:
        return published.CNN_ROWS.get(key, key), "", ""
    enc, arch = key.split("/", 1)
    label, domain = _bert_labels().get(enc) or _templated_label(enc) or (enc, "")
    return label, arch, domain


def less_data_twin(key: str) -> bool:
    """Whether a BERT row key's encoder is a local less-data twin (``in_domain_less_data_mlm_on_25_of_...``), which
    the verdicts take after the encoder it halves (a domain is stood for by its first encoder)."""
    return "/" in key and _templated_label(key.split("/", 1)[0]) is not None


def _templated_label(enc: str) -> tuple[str, str] | None:
    """A local label with a share in it (``"in-domain, less data (MLM on {pct} % of training notes)"``) from its slug."""
    for k, template in published.LOCAL_LABELS.items():
        if "{pct}" in template:
            head, tail = (published.slug(t) for t in template.split("{pct}"))
            m = re.fullmatch(re.escape(head) + r"_(\d+)_" + re.escape(tail), enc)
            if m:
                return template.format(pct=m.group(1)), published.LOCAL_DOMAINS[k]
    return None


def encoder_label(encoder: str) -> str:
    """The row label of a notebook's ``encoders`` entry: a local name, a hub id of a paper encoder, or itself."""
    by_id = {v: k for k, v in published.BERT_ENCODERS.items()}
    return published.LOCAL_LABELS.get(encoder) or by_id.get(encoder, encoder)


# ------------------------------------------------------------------------------------------------ the builder

def _paper_rows(table: int, label_space: str) -> list[Row]:
    if table == 6:
        ms = published.METRICS[label_space]
        rows = [Row(n, "paper", {m: v for m in ms if (v := published.value(n, label_space, m, "paper")) is not None},
                    note="Ji et al. 2021, Table 6") for n in published.CNN_ROW_ORDER]
        return [r for r in rows if r.values]
    df = published.bert_frame(table)
    df = df[df["label_space"] == label_space]
    if df.empty:
        raise ValueError(f"Table {table} has no numbers for label space {label_space!r}")
    rows: dict[tuple[str, str], Row] = {}
    for enc, arch, metric, value in df[["encoder", "architecture", "metric", "value"]].itertuples(index=False):
        rows.setdefault((enc, arch), Row(enc, "paper", {}, arch, domain=published.BERT_DOMAINS.get(enc, ""),
                                         note=f"Ji et al. 2021, Table {table}")).values[metric] = float(value)
    return list(rows.values())


def _original_rows(label_space: str) -> list[Row]:
    """Table 6's models as their own publications report them, where that differs from or adds to Table 6."""
    out = []
    for name in dict.fromkeys(n.model for n in published.NUMBERS if n.source == "original"
                              and n.label_space == label_space):
        vals = {m: published.value(name, label_space, m, "original") for m in published.METRICS[label_space]}
        vals = {m: v for m, v in vals.items() if v is not None}
        if any(published.value(name, label_space, m, "paper") != v for m, v in vals.items()):
            where = next(n.where for n in published.NUMBERS if n.model == name and n.source == "original"
                         and n.label_space == label_space)
            out.append(Row(name, "original", vals, note=where.split("(", 1)[-1].rstrip(")")))
    return out


def _peers(table: int, label: str, arch: str, domain: str, paper: list[Row]) -> tuple[str, ...]:
    """The paper rows a row of this run is (same name) or stands in for (same domain and architecture)."""
    if any(p.name == label and p.architecture == arch for p in paper):
        return (label,)
    if table == 6 or not domain or domain == "none":
        return ()
    peers = tuple(p.name for p in paper if p.domain == domain and p.architecture == arch)
    if table in (3, 4):        # the more-data tables: a less-data row stands for the pairs' less-data encoders
        less = label.startswith(published.LOCAL_LABELS["in-domain-less"].split("{pct}")[0])
        side = {pair[0 if less else 1] for pair in MORE_DATA_PAIRS}
        peers = tuple(p for p in peers if p in side) or peers
    return peers


def _stands_for(table: int, label: str, arch: str, domain: str, paper: list[Row]) -> str:
    """The mapping column: empty where this row is one of the paper's, else which paper rows it stands in for."""
    if any(p.name == label for p in paper):
        return ""
    if table == 6:
        if label in published.BASELINE_ROWS:
            return "reference point, not in the paper"
        return "not in Table 6" + (" (original publication below)" if any(
            n.model == label and n.source == "original" for n in published.NUMBERS) else "")
    if arch not in {p.architecture for p in paper}:
        return f"no paper row: {published.ARCHITECTURES.get(arch, arch)} is in the paper's text (§3.3), in no table"
    if domain == "none":
        return "no paper row (the paper always fine-tunes pretrained weights)"
    peers = _peers(table, label, arch, domain, paper)
    name = published.DOMAIN_NAMES.get(domain, domain or "unknown domain")
    return f"{name} ↔ {', '.join(peers)}" if peers else f"{name}: no such row in Table {table}"


def build(table: int, label_space: str, results: Mapping[str, Mapping[str, Cell]], *,
          requested: Sequence[str] = (), data: str = "unknown data", run: str = "", run_dir: Path | None = None,
          status: str | None = None) -> Comparison:
    """Paper Table ``table`` for ``label_space`` with this run's rows (``results``: :func:`measured` output).

    ``requested``: the row keys the run's parameters asked for (a missing one becomes a not-run row naming
    metrics.json); ``status``: why the whole run has no numbers (never ran, failed), or None when it finished.
    """
    if table not in published.TABLE_TITLES:
        raise ValueError(f"table must be one of {list(published.TABLE_TITLES)}, got {table!r}")
    if label_space not in published.METRICS:
        raise ValueError(f"label_space must be one of {list(published.METRICS)}, got {label_space!r}")
    paper = _paper_rows(table, label_space)
    comp = Comparison(table, label_space, paper, [], _original_rows(label_space) if table == 6 else [], data, run,
                      run_dir)
    if status is not None:
        comp.this_run.append(Row(f"run {run}" if run else "this run", "not run", note=status))
        return comp
    archs = {p.architecture for p in paper}
    keys = list(dict.fromkeys([*requested, *results]))
    covered: set[tuple[str, str]] = set()
    for key in keys:
        label, arch, domain = identify(key)
        if (table == 6) != (arch == "") or (table not in (5, 6) and arch not in archs):
            continue                  # another family, or an architecture this table lacks (Table 5 shows them all)
        stands, peers = _stands_for(table, label, arch, domain, paper), _peers(table, label, arch, domain, paper)
        covered |= {(label, arch)} | {(p, arch) for p in peers}
        if key in results:
            comp.this_run.append(Row(label, "this run", dict(results[key]), arch, stands, domain=domain, key=key,
                                     peers=peers))
        else:
            comp.this_run.append(Row(label, "not run", {}, arch, stands, f"in the run's parameters, but no numbers "
                                     f"in {run or 'the run'}/metrics.json", domain, key, peers))
    missing: dict[str, list[str]] = {}
    for p in paper:
        if (p.name, p.architecture) in covered:
            continue
        why = (published.NOT_IMPLEMENTED.get(p.name) or "not in this run's `models`") if table == 6 else \
            "not in this run's `encoders` (a hub id of the paper's encoder runs it)"
        if table == 6 or not any(name == p.name for name, _ in covered):  # an encoder run in another architecture
            missing.setdefault(why, []).append(p.name)                    # is not "not run"
    for why, names in missing.items():
        comp.this_run.append(Row(", ".join(dict.fromkeys(names)), "not run", note=why))
    if not comp.with_paper:       # another corpus: this run's rows only, no mapping onto the paper's models
        comp.paper, comp.original = [], []
        comp.this_run = [dataclasses.replace(r, stands_for="", peers=()) for r in comp.this_run
                         if r.source == "this run" or r.key]
    return comp


# ------------------------------------------------------------------------------------------------ from a run folder

def data_source(data_dir: str | Path | None) -> str:
    """What a preprocessed folder was made from: "MIMIC-III", "the toy fixture", "a coded-notes table" (read from
    notebook 01's ``report.json``: the input format, and whether the notes folder is mcanb's generated fixture)."""
    if data_dir is None:
        return "unknown data"
    from .paths import resolve
    report = resolve(data_dir) / "report.json"
    if not report.exists():
        return "unknown data"
    doc = json.loads(report.read_text())
    if doc.get("input_format") == "table":
        return OTHER_CORPUS
    notes = (doc.get("input_files") or {}).get("NOTEEVENTS")
    if notes and (Path(notes).parent / "fixture.json").exists():
        return "the toy fixture"
    return "MIMIC-III" if doc.get("input_format") == "mimic3" else "unknown data"


OTHER_CORPUS = "a coded-notes table"


def shows_paper(data: str) -> bool:
    """Whether a run on ``data`` (:func:`data_source`'s answer) is shown beside the paper's numbers: yes for
    MIMIC-III and for the MIMIC-shaped toy fixture (which stands in for it, to teach the study), and where the data
    is not known; no for a coded-notes table of one's own, where the paper's MIMIC-III numbers compare with
    nothing."""
    return data != OTHER_CORPUS


def mapped_paper_rows(comp: Comparison) -> list[Row]:
    """The paper rows that a row of this run is, or stands in for (the README's short form of a table)."""
    return [p for p in comp.paper if any(r.source == "this run" and r.architecture == p.architecture
                                         and p.name in r.peers for r in comp.this_run)]


DEV_THR_NOTE = ("(dev thr.): this run's F1 at one threshold tuned on its dev notes; the paper reports F1 at 0.5 "
                "only, so its rows leave those columns empty.")


def markdown(comp: Comparison, link: str | None = None, short: bool = False) -> str:
    """A Markdown table of ``comp`` (the README and report.md); ``link``: where this run's numbers link to.
    ``short``: only the paper rows this run's rows are or stand in for, and one line counting the others."""
    frame = comp.frame()
    if short:
        keep = {id(r) for r in mapped_paper_rows(comp)}
        rows = [*comp.paper, *comp.original, *comp.this_run]
        mask = [r.source != "paper" or id(r) in keep for r in rows]
        hidden = len(comp.paper) - len(keep)
        frame = frame[mask].reset_index(drop=True)
    if link:
        frame.loc[frame["source"] == "this run", "model"] = [f"[{m}]({link})" for m in
                                                             frame.loc[frame["source"] == "this run", "model"]]
    frame["source"] = frame["source"].map({"paper": f"Table {comp.table}", "original": "original publication",
                                           "this run": "this run", "not run": "not run"})
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
              for row in frame.itertuples(index=False)]
    if short and hidden:
        lines.append(f"| Table {comp.table} | … {hidden} more row{'s' * (hidden != 1)} of the paper |"
                     + " |" * (len(cols) - 2))
    notes = [f"Table {comp.table} as printed: {published.TABLE_NOTES[comp.table]}"] if (
        not short and comp.with_paper and comp.table in published.TABLE_NOTES) else []  # under the whole table
    if comp.with_paper and len(comp.metrics) > len(published.METRICS[comp.label_space]):
        notes.append(DEV_THR_NOTE)
    lines += [f"\n<sub>{n}</sub>" for n in notes]
    return "\n".join(lines) + "\n"
