"""The top of the study report: what a reader needs before the tables.

* :func:`glance` — one line per comparison the report makes (RQ1–RQ3): which row is ahead on how many metrics, and
  on which of them beyond test-set noise; one line per floor table: how many rows clear the most-frequent floor.
  Computed from the same items the questions' tables show (``bert_verdicts.Pair`` and ``FloorRows``).
* :func:`paper_says` — RQ1's and RQ2's answers in the paper, computed from its printed tables
  (:mod:`mcanb.paper_verdicts`), so this run's answer stands beside the paper's.
* :func:`toy_limits` — on the toy fixture, what the run is (synthetic notes, tiny encoders, short segments, seeds),
  read from the runs' own parameters and counts, so that nobody reads its values as MIMIC-III's.
* :data:`GLOSSARY` — the terms the page uses, in a sentence each.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import published
from .paper_verdicts import ahead, paper_domain, paper_hierarchy, paper_more_data

GLOSSARY = (
    ("BERT-trun / BERT-hier", "the first 512 word pieces of a note / the note cut into segments, each encoded by BERT, "
                              "with a transformer over the segments"),
    ("FCN / LAN", "a fully connected layer on the [CLS] state / a label-wise attention network: each code its own "
                  "attention-weighted summary of the token states"),
    ("micro-F1 / macro-F1", "F1 over every (note, code) decision / averaged over codes, so a rare code weighs as much "
                            "as a common one (CAML's definition)"),
    ("dev thr.", "F1 at one threshold tuned on the dev notes instead of 0.5 (the test notes never choose it)"),
    ("macro-AUC / micro-AUC", "how well the scores rank, per code / over all decisions, with no threshold "
                              "(50 is chance)"),
    ("P@k", "the share of a note's k highest-scored codes that are right"),
    ("most-frequent floor", "every note gets the same scores, the codes' training frequencies: a row that learned "
                            "from the text beats it"),
    ("one-sided p, ✓", "a paired bootstrap over the test notes; ✓ where p < 0.05 on every seed, a difference beyond "
                       "test-set noise (it says nothing about the spread between seeds)"),
)


def _pair_line(rq: str, item: Any) -> dict[str, str]:
    sides = ahead(item.a_scores, item.b_scores, item.metrics)
    n = sum(map(len, sides.values()))
    label = published.METRIC_LABELS.get
    said = "; ".join(f"{who} on {len(on)} of {n} ({', '.join(label(m, m) for m in on)})"
                     for who, on in ((item.a, sides["above"]), (item.b, sides["below"])) if on) or "tied"
    if not item.ps:
        beyond = "not tested (no predictions at hand)"
    else:
        from .bert_verdicts import ALPHA       # not at the top: it imports the models (torch)
        sure = [label(m, m) for m, p in item.ps.items() if p < ALPHA]
        beyond = ", ".join(sure) if sure else "none"
    return {"question": rq, "comparison": f"{item.lead}{item.a} vs {item.b}", "ahead": said,
            "beyond test-set noise": beyond}


def _floor_line(rq: str, item: Any) -> dict[str, str]:
    table = item.table
    rows = list(table.index[1:])                                     # the floor's own row first
    labels = list(dict.fromkeys(label for label, _ in table.columns))
    cleared = [f"{sum('✓' in str(table.loc[r, (label, 'one-sided p')]) for r in rows)} on {label}" for label in labels]
    return {"question": rq, "comparison": f"{len(rows)} rows against the most-frequent floor",
            "ahead": "rows above it beyond noise: " + ", ".join(cleared), "beyond test-set noise": "see its table"}


def glance(questions: Sequence[tuple[str, Sequence, Any]]) -> list[dict[str, str]]:
    """One line per comparison and floor table of the report's questions (``(rq, items, figure)``)."""
    out = []
    for rq, items, _ in questions:
        for item in items:
            if hasattr(item, "table"):
                out.append(_floor_line(rq, item))
            elif hasattr(item, "ps"):
                out.append(_pair_line(rq, item))
    return out


def paper_says(label_space: str = "50") -> dict[str, list[str]]:
    """RQ1's and RQ2's answers in the paper's own tables, per metric (:mod:`mcanb.paper_verdicts`); RQ3's is
    :func:`mcanb.report_answers.bert_vs_cnn`'s last item."""
    more = [paper_more_data(3, label_space)] + ([paper_more_data(4, "50")] if label_space == "50" else [])
    return {"RQ1": [paper_domain(label_space), *(m.splitlines()[0] for m in more)],
            "RQ2": paper_hierarchy().splitlines() if label_space == "50" else []}


def toy_limits(counts: Mapping[str, Any], bert: Mapping[str, Any], seeds: Mapping[str, int]) -> str:
    """What a toy run is, from notebook 01's ``counts`` (its metrics.json), notebook 02's parameter values ``bert``
    and the number of seeds of each training notebook (``seeds``)."""
    parts = []
    if counts:
        parts.append(f"synthetic MIMIC-shaped notes ({counts.get('documents', '?')} admissions; "
                     f"{counts.get('50/train', '?')} / {counts.get('50/dev', '?')} / {counts.get('50/test', '?')} "
                     "train / dev / test on the top-50 codes), not MIMIC-III")
    if bert:
        parts.append(f"local encoders of {bert.get('mlm_layers')} layers × {bert.get('mlm_hidden_size')} pretrained "
                     f"for {bert.get('mlm_steps')} masked-word steps (BERT-base: 12 × 768, pretrained for days), "
                     f"standing in for the paper's BERTs")
        parts.append(f"notes cut at {bert.get('max_words')} words and segments of {bert.get('segment_length')} "
                     "word pieces (the paper: 2,500 and 512)")
    if seeds:
        parts.append("seeds per row: " + ", ".join(f"{nb} {n}" for nb, n in seeds.items()))
    if not parts:
        return ""
    return ("This is a teaching run on the toy fixture: " + "; ".join(parts) + ". Compare orderings and whether a "
            "difference stands beyond noise, not values, with the paper's; with one seed a ✓ covers the test notes' "
            "sampling only. Notebook 02's last section says how to read a toy result that goes against the paper. "
            "Next: more seeds (a profile entry's `seeds: [13, 14, 15]`), a real pretrained encoder (`mcanb run "
            "03_hierarchy toy_minilm`), then the real study (`mcanb study mimic3-50 --rehearse` on this machine, "
            "then `mcanb study mimic3-50` with MIMIC-III and a GPU).")


def gather_top(questions: Sequence, values: Mapping[str, Mapping[str, Any]], counts: Mapping[str, Any],
               data_source: str) -> dict[str, Any]:
    """The report's top, as data for both renderers: the at-a-glance lines, the paper's answers, the toy's limits (on
    the toy fixture only) and the glossary. ``values``: each training notebook's parameter values, by notebook."""
    bert = values.get("02_pretraining_domains") or values.get("03_hierarchy") or {}
    space = str(bert.get("label_space", "50"))
    seeds = {nb[:2]: len(v.get("seeds") or []) for nb, v in values.items() if v.get("seeds")}
    limits = toy_limits(counts, bert, seeds) if data_source == "the toy fixture" else ""
    return {"glance": glance(questions), "paper": paper_says(space), "limits": limits, "glossary": GLOSSARY}


GLANCE_HEAD = ("question", "comparison", "ahead", "beyond test-set noise")


def render_top_md(top: Mapping[str, Any]) -> list[str]:
    """Markdown lines: at a glance, the toy's limits, the glossary."""
    out = ["## At a glance\n"]
    if top["limits"]:
        out.append(f"> {top['limits']}\n")
    if top["glance"]:
        out += ["| " + " | ".join(GLANCE_HEAD) + " |", "|---" * len(GLANCE_HEAD) + "|"]
        out += ["| " + " | ".join(str(r[h]).replace("|", "\\|") for h in GLANCE_HEAD) + " |" for r in top["glance"]]
        out.append("")
    out += ["<details><summary>Terms used on this page</summary>\n",
            *(f"- **{term}**: {text}" for term, text in top["glossary"]), "\n</details>\n"]
    return out


def render_top_html(top: Mapping[str, Any]) -> str:
    """The same as HTML."""
    import html
    e = html.escape
    parts = ["<h2>At a glance</h2>"]
    if top["limits"]:
        parts.append(f'<p class="limits">{e(top["limits"])}</p>')
    if top["glance"]:
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in GLANCE_HEAD) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{e(str(r[h]))}</td>" for h in GLANCE_HEAD) + "</tr>"
                               for r in top["glance"]) + "</tbody></table>")
    parts.append("<details><summary>Terms used on this page</summary><ul>"
                 + "".join(f"<li><b>{e(t)}</b>: {e(x)}</li>" for t, x in top["glossary"]) + "</ul></details>")
    return "".join(parts)


def paper_lines(top: Mapping[str, Any], rq: str) -> list[str]:
    """The paper's answer to ``rq``, one sentence a line (shown under the question, before this run's)."""
    return [line.removeprefix("Paper, ") for line in top["paper"].get(rq, [])]
