"""How the study report draws one answer item of a question: a comparison of two rows (``bert_verdicts.Pair``) or
every row against the most-frequent floor (``bert_verdicts.FloorRows``), as an HTML list item with its table and as
Markdown. :mod:`mcanb.report` lays the items out under each question."""
from __future__ import annotations

import html

from . import published


def pair_cells(pair) -> tuple[list[str], list[tuple[str, list[tuple[str, bool]]]]]:
    """A comparison's table (``bert_verdicts.Pair``): the metric labels, then ``(row, [(cell, emphasised)])`` for
    each of the two rows (the better value, as printed, emphasised) and, where tested, the one-sided p (✓ beyond
    test-set noise; never emphasised, so that bold means one thing in the table: the better value)."""
    import math

    from .bert_verdicts import ALPHA

    ms = [m for m in pair.metrics if all(isinstance(x.get(m), (int, float)) and math.isfinite(x[m])
                                         for x in (pair.a_scores, pair.b_scores))]
    a, b = ([round(float(x[m]), 1) for m in ms] for x in (pair.a_scores, pair.b_scores))
    rows = [(pair.a, [(f"{x:.1f}", x > y) for x, y in zip(a, b)]),
            (pair.b, [(f"{y:.1f}", y > x) for x, y in zip(a, b)])]
    if pair.ps:
        ps = [pair.ps.get(m) for m in ms]
        rows.append(("one-sided p (largest over seeds)",
                     [("–", False) if p is None else (("< 0.001" if p < 0.001 else f"{p:.3f}")
                                                      + (" ✓" if p < ALPHA else ""), False) for p in ps]))
    return [published.METRIC_LABELS.get(m, m) for m in ms], rows


def floor_cells(rows) -> tuple[list[str], list[tuple[str, list[tuple[str, bool]]]]]:
    """The floor table (``bert_verdicts.FloorRows``) as :func:`pair_cells` gives a comparison's: each metric's
    percent column under its label, its p column as "p", a cell beyond test-set noise (✓) emphasised."""
    head = ["p" if part == "one-sided p" else label for label, part in rows.table.columns]
    return head, [(str(name), [(c, "✓" in c) for c in cells]) for name, cells in zip(rows.table.index,
                                                                                      rows.table.to_numpy().tolist())]


def floor_lead(rows) -> str:
    return ("Every row against the most-frequent floor: its mean test score in percent and the largest one-sided p "
            f"over its seeds that it beats the floor; ✓ marks a row above the floor beyond test-set noise ({rows.how})."
            " A row can rank each code's notes better than the floor (macro-AUC ✓) and still not beat its F1.")


def cells(item) -> tuple[str, str, tuple]:
    """An answer item's lead, caveat and table cells: a comparison (``bert_verdicts.Pair``) or the floor table."""
    if hasattr(item, "table"):
        return floor_lead(item), item.warning, floor_cells(item)
    return f"{item.lead}{item.a} vs {item.b}", item.caveat, pair_cells(item)


def html_item(item) -> str:
    e = html.escape
    lead, caveat, (head, rows) = cells(item)
    body = "".join(f"<tr><td>{e(label)}</td>" + "".join(
        f'<td class="n">{"<b>" if em else ""}{e(c)}{"</b>" if em else ""}</td>' for c, em in cells) + "</tr>"
        for label, cells in rows)
    caveat = f'<br><span class="note">{e(caveat)}</span>' if caveat else ""
    return (f"<li>{e(lead)}{caveat}<table><thead><tr><th></th>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table></li>")


def md_item(item) -> str:
    lead, caveat, (head, rows) = cells(item)
    table = ["| | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    table += [f"| {label} | " + " | ".join(f"**{c}**" if em else c for c, em in cells) + " |" for label, cells in rows]
    caveat = f"\\\n  {caveat}" if caveat else ""                   # a hard line break, then the caveat
    return "\n".join([f"- {lead}{caveat}\n", *("  " + t for t in table)]) + "\n"
