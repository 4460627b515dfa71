"""The final report of a study profile: ``outputs/report/<profile>/index.html`` and ``report.md``.

A page a reader takes in in a minute, in this order:

0. "Not finished", only when a run of the profile has not finished: each status (never ran, interrupted, failed,
   a damaged run record, or results without a run record: a notebook run in JupyterLab or by the notebook tests,
   whose numbers the page does not show; :data:`STATUS_MEANS`) said once, with the runs it holds for;
1. the paper's three questions, each answered from this run's numbers with its figure (:mod:`mcanb.report_answers`:
   RQ1 pretraining domain and amount of pretraining data, RQ2 truncated vs hierarchical and FCN vs LAN, the
   comparisons notebooks 02 and 03 print, each as a small table with its noise test, and their floor verdicts; RQ3
   the best BERT row against the best CNN-family model, tested the same way);
2. the paper's tables with this run's rows under them (:mod:`mcanb.comparison`, the same table objects the notebooks
   and the README render), each number linked to the ``metrics.json`` it was read from;
3. Figure 3 (notebook 05);
4. every executed notebook rendered to HTML (``notebooks/*.html``), so the study reads without Jupyter;
5. the runs: status (from each run's ``.mcanb-run.json``), time, parameters.

Links are relative, so the page works from any copy of ``outputs/``. Explained in the README section "The whole
study".
"""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

from . import __version__, comparison, published, reproduced
from .paths import NOTEBOOKS, OUTPUTS
from .reporting import load_metrics
from .study import Profile, RunSpec, StudyError, params_sha, read_record, resolve
from .report_answers import answer, bert_vs_cnn, bert_vs_cnn_figure, pretraining_verdict, seed_records
from .report_glance import gather_top, paper_lines, render_top_html, render_top_md
from .report_items import html_item, md_item

REPORT_DIR = OUTPUTS / "report"
QUESTIONS = {"RQ1": "Does pretraining closer to clinical text, or on more of it, code better? (Tables 2, 3 and 4)",
             "RQ2": "Truncated or hierarchical BERT; a fully connected head or label-wise attention? (Table 5)",
             "RQ3": "Does BERT beat the CNN family? (Table 2 against Table 6)"}


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


NO_RECORD = "no run record"
# What a status that is not "done" means for the page, said once in its "Not finished" list (the tables and the
# questions name the status only).
STATUS_MEANS = {
    NO_RECORD: ("ran outside `mcanb run` and `mcanb study` (in JupyterLab, or in the notebook tests of "
                "`python run.py test`), so what the numbers were computed from is not known"),
    "never ran": "not started yet",
    "interrupted": "stopped before it finished; the next `mcanb study` resumes it",
    "failed": "stopped with an error (the Runs table at the end gives it)",
    "damaged run record": "its run record cannot be read (the Runs table at the end says why)",
    "other settings": ("its folder holds results of other parameters than the profile's (a `mcanb run` with `-p` "
                       "overrides, or a parameter file edited since), or reads such a run; the next `mcanb study` "
                       "reruns it"),
}


def _status(spec: RunSpec, stale: set[str]) -> tuple[str, dict | None]:
    """``(status, run record)``: ``done``, a key of :data:`STATUS_MEANS`, or ``failed: <error>`` / ``damaged run
    record: <why>`` / ``other settings: <which>`` (:func:`short_status` is the part before the colon): a finished run
    whose recorded parameters are not the profile's, or that read such a run. ``stale``: the keys of the profile's
    earlier runs found so, which this adds to. Only the parameters count: code, library versions and input files are
    :func:`mcanb.study.why`'s to judge before rerunning, and a report may be made on another machine than the runs.
    A record without ``parts`` (written before records kept them) cannot say, and stays ``done``."""
    try:
        rec = read_record(OUTPUTS / spec.key)
    except StudyError as e:                      # a damaged record: say so in the report, do not guess
        return f"damaged run record: {_one_line(str(e))}", None
    if rec is None:                              # results without a record: run in JupyterLab or by papermill
        return (NO_RECORD if (OUTPUTS / spec.key / "metrics.json").exists() else "never ran"), None
    status = {"done": "done", "running": "interrupted", "failed": f"failed: {_one_line(str(rec.get('error', '?')))}"
              }.get(rec.get("status"), rec.get("status", "?"))
    if status != "done" or not isinstance(rec.get("parts"), dict):
        return status, rec
    read = sorted(set(rec["parts"].get("inputs") or {}) & stale)    # other settings' numbers are not the profile's
    if rec["parts"].get("params") != params_sha(spec):
        status = "other settings: parameters"
    elif read:
        status = f"other settings: reads {', '.join(read)}"
    if status != "done":
        stale.add(spec.key)
    return status, rec


def short_status(status: str) -> str:
    """A run's status without its details (``failed: ValueError…`` -> ``failed``), as tables and questions say it."""
    return status.split(":")[0]


def _one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line (an error's traceback lines would break the report's tables), at most ``limit`` long."""
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _values(spec: RunSpec) -> dict:
    from .params import notebook_defaults

    return {**notebook_defaults(NOTEBOOKS / f"{spec.notebook}.ipynb"), **resolve(spec)}


def _measured(spec: RunSpec | None, status: str) -> dict[str, dict[str, comparison.Cell]]:
    path = OUTPUTS / spec.key / "metrics.json" if spec else None
    if spec is None or status != "done" or not path.exists():
        return {}
    return comparison.measured(load_metrics(path.parent))


def _notebook_html(spec: RunSpec, out: Path) -> Path | None:
    """The executed notebook of a run rendered to HTML (reused while the notebook is unchanged)."""
    src = OUTPUTS / spec.key / f"{spec.notebook}.ipynb"
    if not src.exists():
        return None
    dst = out / "notebooks" / f"{spec.notebook}__{spec.run_name}.html"
    if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        return dst
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(src, as_version=4))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body, encoding="utf-8")
    return dst


def gather(profile: Profile, out: Path) -> dict:
    """Everything the page shows, as plain data and comparison tables (used by both renderers)."""
    runs, tables, notebooks, figure3 = [], [], [], []
    first = {}                                          # notebook -> its first run in the profile
    values: dict[str, dict] = {}                        # notebook -> its first run's parameter values, resolved once
    statuses: dict[str, str] = {}                       # run key -> status, each run record read once
    stale: set[str] = set()
    for spec in profile.runs:
        status, rec = _status(spec, stale)
        statuses[spec.key] = status
        run_dir = OUTPUTS / spec.key
        first.setdefault(spec.notebook, spec)
        runs.append({"run": spec.key, "status": status, "finished": (rec or {}).get("finished", "–"),
                     "seconds": "–" if not rec or rec.get("seconds") is None else f"{rec['seconds']:.0f}",
                     "folder": _rel(run_dir, out), "params": _rel(run_dir / "params.yaml", out),
                     "exists": run_dir.exists()})
        if any(spec.notebook in nbs for nbs in published.TABLE_NOTEBOOKS.values()):
            given = _values(spec)
            values.setdefault(spec.notebook, given)
            tables += reproduced.run_tables(spec.notebook, run_dir, given,   # its row names the run
                                            None if status == "done" else short_status(status))
        if status == "done":
            page = _notebook_html(spec, out)
            if page:
                notebooks.append((spec.key, _rel(page, out)))
            if spec.notebook.startswith("05"):
                figure3 += [(spec.key, png.stem, _rel(png, out)) for png in sorted(run_dir.glob("figures/fig_3*.png"))]

    def status_of(nb: str) -> str:
        return statuses[first[nb].key] if nb in first else ""

    def fig(nb: str, name: str) -> str | None:
        spec = first.get(nb)                    # a figure only beside the numbers of a finished run
        path = OUTPUTS / spec.key / "figures" / f"{name}.png" if status_of(nb) == "done" else None
        return _rel(path, out) if path and path.exists() else None

    from .bert_verdicts import MUST_CLEAR, hierarchy_verdict
    m02, m03, m04 = (_measured(first.get(nb), status_of(nb)) for nb in ("02_pretraining_domains", "03_hierarchy",
                                                                         "04_cnn_retraining"))

    def not_run(nb: str) -> str:
        spec, status = first.get(nb), status_of(nb)
        if spec is None:
            return f"This profile does not run notebook {nb[:2]}."
        said = f"{spec.key}: {short_status(status)}" if status != "done" else f"{spec.key} has no metrics.json"
        return f"Notebook {nb[:2]} has not finished in this profile ({said}), so this run cannot answer it."

    found = {nb: seed_records(OUTPUTS / first[nb].key) if status_of(nb) == "done" else None   # each run read once
             for nb in ("02_pretraining_domains", "03_hierarchy", "04_cnn_retraining")}

    def answered(nb: str, verdict, measured) -> list:
        return answer(verdict, measured, found[nb], MUST_CLEAR[nb]) if measured else [not_run(nb)]

    rq = [("RQ1", answered("02_pretraining_domains", pretraining_verdict, m02), fig("02_pretraining_domains",
                                                                                   "fig_domains")),
          ("RQ2", answered("03_hierarchy", hierarchy_verdict, m03), fig("03_hierarchy", "fig_architectures"))]
    bert = {**m02, **m03}
    rq3_fig = bert_vs_cnn_figure(bert, m04, out)
    rq.append(("RQ3", bert_vs_cnn(bert, m04, [f for f in found.values() if f]),
                _rel(rq3_fig, out) if rq3_fig else None))
    unfinished: dict[str, list[str]] = {}
    for r in runs:
        if r["status"] != "done":
            unfinished.setdefault(short_status(r["status"]), []).append(r["run"])
    pre = first.get("01_preprocess")
    counts = load_metrics(OUTPUTS / pre.key) if pre and status_of("01_preprocess") == "done" else {}
    data_dir = next((v.get("data_dir") for v in values.values()), None)
    top = gather_top(rq, values, counts, comparison.data_source(data_dir) if data_dir else "unknown data")
    figure3_missing = (None if figure3 else not_run("05_frequency_analysis")
                       if status_of("05_frequency_analysis") != "done" else
                       "Notebook 05 finished but wrote no Figure 3 (figures/fig_3*.png).")
    return {"runs": runs, "tables": tables, "notebooks": notebooks, "figure3": figure3, "questions": rq,
            "unfinished": unfinished, "figure3_missing": figure3_missing, "top": top}


CSS = """body{font-family:system-ui,sans-serif;max-width:1260px;margin:1em auto;padding:0 .8em;color:#222;font-size:14px}
h1{font-size:22px;margin:.3em 0}h2{font-size:18px;margin:1.2em 0 .3em;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:1em 0 .2em}p{margin:.3em 0}.note{color:#555;font-size:13px}
table{border-collapse:collapse;margin:.3em 0 .8em;font-size:12px;line-height:1.25}
td,th{border:1px solid #d4d4d4;padding:1px 5px;text-align:left;vertical-align:top}
th{background:#f0f0f0;white-space:nowrap}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.a{white-space:nowrap}
tr.sec td{background:#e8eef6;font-weight:600}tr.mine td{background:#fffbe6}tr.skip td{color:#777;font-style:italic}
.d{color:#666;font-size:11px}.rq{display:flex;gap:1em;align-items:flex-start;margin:.4em 0 .9em}
.rq div{flex:1}.rq ul{margin:.2em 0;padding-left:1.2em}.rq li{margin:.25em 0}
.rq img{max-width:520px;max-height:250px;border:1px solid #ddd}img{max-width:100%}
td.map{max-width:330px;font-size:11px;color:#444}li.paper{color:#234;font-style:italic}
.limits{background:#fff4e0;border-left:4px solid #e0a030;padding:.4em .6em}"""


def _html_comparison(c: comparison.Comparison, out: Path) -> str:
    e = html.escape
    labels = [published.METRIC_LABELS[m] for m in c.metrics]
    arch = c.multi_architecture
    head = ["model", *(["architecture"] if arch else []), "↔ paper rows", *labels, "seeds"]
    ncol = len(head)
    link = _rel(c.run_dir / "metrics.json", out) if c.run_dir else None

    def row(r: comparison.Row, cls: str = "") -> str:
        if r.source == "not run":
            what = r.name + (f" · {published.ARCHITECTURES.get(r.architecture, r.architecture)}" if r.architecture
                             else "")
            return f'<tr class="skip"><td colspan="{ncol}">not run: <b>{e(what)}</b>: {e(r.note)}</td></tr>'
        cells_html = f"<td>{e(r.name)}</td>"
        if arch:
            cells_html += f'<td class="a">{e(published.ARCHITECTURES.get(r.architecture, r.architecture))}</td>'
        cells_html += f'<td class="map">{e(r.stands_for)}</td>'
        for m in c.metrics:
            v = r.values.get(m)
            if v is None:
                text = "–"
            elif isinstance(v, comparison.Cell):
                text = f'<a href="{e(link)}">{e(str(v))}</a>' if link else e(str(v))
                d = c.diff(r, m)
                text += f' <span class="d">({d:+.1f})</span>' if d is not None else ""
            else:
                text = f"{v:.1f}"
            cells_html += f'<td class="n">{text}</td>'
        cells_html += f'<td class="n">{r.seeds if r.source == "this run" else ""}</td>'
        return f'<tr class="{cls}">{cells_html}</tr>'

    def sec(text: str) -> str:
        return f'<tr class="sec"><td colspan="{ncol}">{text}</td></tr>'

    body = [sec(f"Ji et al. 2021, Table {c.table} (MIMIC-III)")] + [row(r) for r in c.paper] if c.with_paper else []
    if c.original:
        body += [sec("original publications, where they differ from or add to Table 6")] + [row(r) for r in c.original]
    run = f'<a href="{e(_rel(c.run_dir, out))}">{e(c.run)}</a>' if c.run_dir else e(c.run or "this run")
    diff = ("differences to the paper's row of the same model in brackets" if c.difference else
            "not the paper's data, so no differences are shown: compare orderings, not values" if c.with_paper else
            "the paper's MIMIC-III rows are left out: they say nothing about this corpus")
    body += [sec(f"this run: {run} on {e(c.data)}")]
    body += [row(r, "mine" if r.source == "this run" else "") for r in c.this_run]
    thead = "".join(f"<th>{e(h)}</th>" for h in head)
    return (f'<h3>{e(c.title)}</h3><p class="note">This run: mean ± sd over seeds, percent, each linked to its '
            f"metrics.json; {diff}.</p><table><thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _html_runs(runs: list[dict]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(r['run'])}</td><td>{e(r['status'])}</td><td>{e(str(r['finished']))}</td><td class='n'>"
        f"{e(r['seconds'])}</td><td>" + (f"<a href='{e(r['folder'])}'>folder</a> · <a href='{e(r['params'])}'>"
                                          f"params.yaml</a>" if r["exists"] else "not created") + "</td></tr>"
        for r in runs)
    return ("<table><thead><tr><th>run</th><th>status</th><th>finished</th><th>seconds</th><th>files</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _intro(profile: Profile) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (f"{profile.description} Generated {now} by mcanb {__version__} from {profile.path.name}. This run's "
            "numbers are test-set percentages (mean ± sd over seeds), each linked to the metrics.json it was read "
            "from.")


NO_NOTEBOOKS = "None: no run of this profile has finished."
FIG3_NOTE = ("The paper's Figure 3 shows F1 per bin of codes by their number of training documents, on MIMIC-III's "
             "full code set, for ClinicalBERT's three architectures, the CNN and CAML: every model falls as codes get "
             "rarer. Here each figure is one label space of this run (fig_3_50: top-50 codes, fig_3_full: all codes), "
             "every prediction set of notebooks 02-04, and the codes each model never predicts.")
NOISE_NOTE = ("Each question starts with the paper's answer, computed from its tables. Then come this run's "
              "comparisons: two rows, mean test score over seeds in percent, the better value in bold. Where the "
              "runs' predictions are at hand, a last row gives the one-sided p of a paired bootstrap over the test "
              "notes (the largest over the seeds both ran), ✓ where the difference is beyond test-set noise. Each "
              "question ends with every row against the most-frequent floor.")


def unfinished(profile: Profile, data: dict) -> tuple[str, list[str]]:
    """The page's "Not finished" lead and one line per status (:data:`STATUS_MEANS`) naming its runs; ``("", [])``
    when every run of the profile is done. Said once here, so the tables and questions name the status only."""
    if not data["unfinished"]:
        return "", []
    n = sum(len(keys) for keys in data["unfinished"].values())
    said = (f"None of the profile's {n} runs has finished" if n == len(data["runs"]) else
            f"{n} of the profile's {len(data['runs'])} runs {'has' if n == 1 else 'have'} not finished")
    lead = (f"{said}, so this page leaves their numbers, "
            f"figures and answers out. `mcanb study {profile.name}` runs them (`--dry-run` lists what it would run "
            "and why).")
    return lead, [f"{status} ({', '.join(keys)})" + (f": {STATUS_MEANS[status]}." if status in STATUS_MEANS else ".")
                  for status, keys in data["unfinished"].items()]


def render_html(profile: Profile, data: dict, out: Path) -> str:
    from .bert_verdicts import said_and_noise    # not at the top: it imports the models (torch)

    e = html.escape
    parts = [f"<h1>mcanb study report: {e(profile.name)}</h1>", f'<p class="note">{e(_intro(profile))}</p>',
             ]
    lead, lines = unfinished(profile, data)
    if lead:
        parts += ["<h2>Not finished</h2>", f"<p>{e(lead)}</p><ul>", *(f"<li>{e(line)}</li>" for line in lines), "</ul>"]
    parts += [render_top_html(data["top"]), "<h2>The paper's questions, answered by this run</h2>",
              f'<p class="note">{e(NOISE_NOTE)}</p>']
    for rq, answer_items, fig in data["questions"]:
        paper = "".join(f'<li class="paper">{e(line)}</li>' for line in paper_lines(data["top"], rq))
        img = f'<img src="{e(fig)}" alt="{rq} figure">' if fig else '<span class="note">(no figure)</span>'
        items = "".join(
            html_item(item) if not isinstance(item, str) else
            "".join(f"<li>{e(said)}" + (f'<br><span class="note">{e(noise)}</span>' if noise else "") + "</li>"
                    for said, noise in said_and_noise(item))
            for item in answer_items)
        parts.append(f'<h3 id="{rq.lower()}">{rq}. {e(QUESTIONS[rq])}</h3><div class="rq"><div><ul>{paper}{items}'
                     f'</ul></div>{img}</div>')
    parts.append("<h2>The paper's tables, this run under them</h2>")
    parts += [_html_comparison(c, out) for c in data["tables"]] or ["<p>No run of this profile reproduces a table.</p>"]
    parts += ["<h2>Figure 3: F1 by code frequency (notebook 05)</h2>", f'<p class="note">{e(FIG3_NOTE)}</p>']
    parts += [f'<p class="note">{e(key)}: {e(name)}</p><p><img src="{e(href)}" alt="{e(name)}"></p>'
              for key, name, href in data["figure3"]] or [f'<p class="note">{e(data["figure3_missing"])}</p>']
    parts.append("<h2>The executed notebooks</h2><ul>")
    parts += [f'<li><a href="{e(href)}">{e(key)}</a></li>' for key, href in data["notebooks"]] + ["</ul>"]
    if not data["notebooks"]:
        parts.append(f'<p class="note">{NO_NOTEBOOKS}</p>')
    parts += ["<h2>Runs</h2>", _html_runs(data["runs"])]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>mcanb report: {e(profile.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def render_md(profile: Profile, data: dict, out: Path) -> str:
    from .bert_verdicts import said_and_noise

    parts = [f"# mcanb study report: {profile.name}\n", _intro(profile) + "\n"]
    lead, lines = unfinished(profile, data)
    if lead:
        parts += ["## Not finished\n", lead + "\n", *(f"- {line}" for line in lines), ""]
    parts += [*render_top_md(data["top"]), "## The paper's questions, answered by this run\n", NOISE_NOTE + "\n"]
    for rq, answer_items, fig in data["questions"]:
        parts.append(f"### {rq}. {QUESTIONS[rq]}\n")
        parts += [f"- *In the paper:* {line}" for line in paper_lines(data["top"], rq)]
        for item in answer_items:
            parts += [md_item(item)] if not isinstance(item, str) else [
                f"- {said}" + (f"\\\n  {noise}" if noise else "")       # a hard line break, then the noise
                for said, noise in said_and_noise(item)]
        parts.append("")
        if fig:
            parts.append(f"![{rq}]({fig})\n")
    parts.append("## The paper's tables, this run under them\n")
    for c in data["tables"]:
        diff = ("differences in the Δ columns" if c.difference else "not the paper's data: no differences"
                if c.with_paper else "the paper's MIMIC-III rows are left out: they say nothing about this corpus")
        parts.append(f"### {c.title}\n\nthis run: {c.run} on {c.data}; {diff}.\n")
        parts.append(comparison.markdown(c, _rel(c.run_dir / "metrics.json", out) if c.run_dir else None))
    parts += ["## Figure 3: F1 by code frequency (notebook 05)\n", FIG3_NOTE + "\n"]
    parts += [f"![{name}]({href})\n" for _, name, href in data["figure3"]] or [f"{data['figure3_missing']}\n"]
    parts.append("## The executed notebooks\n")
    parts += [f"- [{key}]({href})" for key, href in data["notebooks"]] or [NO_NOTEBOOKS]
    parts.append("")
    parts.append("## Runs\n")
    parts.append("| run | status | finished | seconds | parameters |\n|---|---|---|---|---|")
    parts += [f"| {r['run']} | {r['status']} | {r['finished']} | {r['seconds']} | "
              + (f"[params.yaml]({r['params']}) |" if r["exists"] else "not created |") for r in data["runs"]]
    return "\n".join(parts) + "\n"


def write_report(profile: Profile) -> Path:
    """Write ``outputs/report/<profile>/index.html`` and ``report.md``; return the HTML path."""
    out = REPORT_DIR / profile.name
    out.mkdir(parents=True, exist_ok=True)
    data = gather(profile, out)
    (out / "report.md").write_text(render_md(profile, data, out), encoding="utf-8")
    page = out / "index.html"
    page.write_text(render_html(profile, data, out), encoding="utf-8")
    return page
