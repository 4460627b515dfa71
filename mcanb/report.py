"""The final report of a study profile: ``outputs/report/<profile>/index.html`` and ``report.md``.

One page gathering, for every run of the profile: its status (done, failed, interrupted, never ran: read from
the run's ``.mcanb-run.json``), each reproduced table beside the paper's numbers with the difference and the spread
over seeds, every other table the notebooks saved (``tables/*.csv``) and every figure (``figures/*.png``). Every
number of this study links to the ``metrics.json`` it was read from and the ``params.yaml`` that produced it; a row
that was not run says why, so no cell of the page is ever blank. Links are relative, so the page works from any
copy of ``outputs/``.

Comparisons with published numbers are registered per notebook in :data:`COMPARISONS` (notebook 04's Table 6
here); other notebooks' tables appear as saved. Explained in the README section "The whole study".
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from . import __version__, published
from .paths import OUTPUTS
from .reporting import load_metrics
from .study import Profile, RunSpec, StudyError, read_record, resolve

REPORT_DIR = OUTPUTS / "report"
NOT_IMPLEMENTED = {"HyperCore": "not implemented in mcanb (hyperbolic code embeddings and a code co-graph; Cao et al. 2020)",
                   "CNN (Kim, 2014)": "the paper's row for the original CNN settings; mcanb's `cnn` reproduces "
                                      "the retrained row"}


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _status(spec: RunSpec) -> tuple[str, dict | None]:
    try:
        rec = read_record(OUTPUTS / spec.key)
    except StudyError as e:                      # a damaged record: say so in the report, do not guess
        return f"damaged run record: {str(e)[:160]}", None
    if rec is None:
        return "never ran", None
    return {"done": "done", "running": "interrupted (resumes on the next `mcanb study`)",
            "failed": f"failed: {rec.get('error', '?')[:160]}"}.get(rec.get("status"), rec.get("status", "?")), rec


def table6_rows(spec: RunSpec, out: Path) -> list[dict]:
    """Notebook 04: one row per (Table 6 model, metric) with paper, original, this run, difference, seeds, links."""
    from .cnn_study import ROW_NAMES

    values = {**_defaults(spec), **resolve(spec)}
    space = str(values.get("label_space", "50"))
    run_dir = OUTPUTS / spec.key
    status, rec = _status(spec)
    metrics = load_metrics(run_dir) if (
        status == "done" and (run_dir / "metrics.json").exists()) else None
    ran = {ROW_NAMES.get(m, m): m for m in [*values.get("models", []), *values.get("baselines", [])]}
    implemented = set(ROW_NAMES.values())
    paper_rows = list(dict.fromkeys(n.model for n in published.NUMBERS if n.label_space == space))
    links = {"metrics": _rel(run_dir / "metrics.json", out), "params": _rel(run_dir / "params.yaml", out),
             "folder": _rel(run_dir, out)}
    rows = []
    for row in paper_rows + [r for r in ran if r not in paper_rows]:
        for metric in published.METRICS[space]:
            paper = published.value(row, space, metric, "paper")
            original = published.value(row, space, metric, "original")
            r = {"table": f"Table 6 ({'top-50' if space == '50' else 'full'} codes)", "run": spec.key, "model": row,
                 "metric": published.METRIC_LABELS[metric], "paper": paper, "original": original, **links}
            model = ran.get(row)
            if model is None:
                r["why"] = NOT_IMPLEMENTED.get(row) or ("not in this run's `models` (add it to run it)"
                                                        if row in implemented else "not implemented in mcanb")
            elif metrics is None:
                r["why"] = f"run {spec.key} {status}"
            elif metrics.get(f"{model}/test/{metric}/mean") is None:
                r["why"] = f"{metric} not in {spec.key}/metrics.json"
            else:
                r.update(_this_run(metrics, model, metric, f"/test/{metric}", paper))
            rows.append(r)
    return rows


def _this_run(metrics: dict, model: str, metric: str, seed_suffix: str, paper: float | None) -> dict:
    """This run's cells of a comparison row (percent): mean and sd over seeds, seed count, difference to the paper.

    ``model`` is the metrics.json prefix; per-seed keys are ``<model>/seed<k>...<seed_suffix>``."""
    mean, sd = 100 * metrics[f"{model}/test/{metric}/mean"], 100 * metrics[f"{model}/test/{metric}/sd"]
    seeds = sum(k.startswith(f"{model}/seed") and k.endswith(seed_suffix) for k in metrics) or 1
    return {"this run": mean, "sd": sd, "seeds": seeds, "difference": None if paper is None else mean - paper}


def _defaults(spec: RunSpec) -> dict:
    from .params import notebook_defaults
    from .paths import NOTEBOOKS

    return notebook_defaults(NOTEBOOKS / f"{spec.notebook}.ipynb")


def bert_rows(spec: RunSpec, out: Path) -> list[dict]:
    """Notebooks 02 (Table 2) and 03 (Table 5): one row per (encoder · architecture, metric), the paper's rows first
    (the paper is these numbers' original publication), then this run's own encoders (the toy's local ones)."""
    from .bert_study import LOCAL_LABELS, slug

    values = {**_defaults(spec), **resolve(spec)}
    table = 2 if spec.notebook.startswith("02") else 5
    space = str(values.get("label_space", "50")) if table == 2 else "50"
    run_dir = OUTPUTS / spec.key
    status, _ = _status(spec)
    metrics = load_metrics(run_dir) if (
        status == "done" and (run_dir / "metrics.json").exists()) else None
    paper = published.bert_frame(table)
    paper = paper[paper["label_space"] == space]
    by_id = {v: k for k, v in published.BERT_ENCODERS.items()}
    archs = values.get("architectures") or ["hier_lan"]
    mine = [(LOCAL_LABELS.get(e) or by_id.get(e, e), a) for e in values.get("encoders", []) for a in archs]
    wanted = list(dict.fromkeys([*zip(paper["encoder"], paper["architecture"]), *mine]))
    links = {"metrics": _rel(run_dir / "metrics.json", out), "params": _rel(run_dir / "params.yaml", out),
             "folder": _rel(run_dir, out)}
    rows = []
    for enc, arch in wanted:
        key = f"{slug(enc)}/{arch}"
        for metric in published.METRICS[space]:
            hit = paper[(paper["encoder"] == enc) & (paper["architecture"] == arch) & (paper["metric"] == metric)]
            value = float(hit["value"].iloc[0]) if len(hit) else None
            r = {"table": f"Table {table} ({'top-50' if space == '50' else 'full'} codes)", "run": spec.key,
                 "model": f"{enc} · {published.ARCHITECTURES[arch]}", "metric": published.METRIC_LABELS[metric],
                 "paper": value, "original": value, **links}
            if metrics is None:
                r["why"] = f"run {spec.key} {status}"
            elif metrics.get(f"{key}/test/{metric}/mean") is None:
                r["why"] = ("not in this run's `encoders` / `architectures` (its parameter file runs other rows)"
                            if (enc, arch) not in mine else f"{metric} not in {spec.key}/metrics.json")
            else:
                r.update(_this_run(metrics, key, metric, f"/{metric}", value))
            rows.append(r)
    return rows


COMPARISONS: dict[str, Callable[[RunSpec, Path], list[dict]]] = {
    "02_pretraining_domains": bert_rows, "03_hierarchy": bert_rows, "04_cnn_retraining": table6_rows}


def _fmt(v, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f"{v:.{digits}f}"


def comparison_cells(r: dict, md: bool) -> dict[str, str]:
    """Display cells of one comparison row: the run's numbers link to metrics.json, a row not run says why."""
    link = (lambda text, href: f"[{text}]({href})") if md else (
        lambda text, href: f'<a href="{html.escape(href)}">{html.escape(text)}</a>')
    cells = {"model": r["model"], "metric": r["metric"],
             "paper": _fmt(r["paper"]) if r["paper"] is not None else "not printed",
             "original publication": _fmt(r["original"]) if r["original"] is not None else "not reported"}
    if "this run" in r:
        spread = f" ± {r['sd']:.1f}" if r["seeds"] > 1 else ""
        cells["this run"] = link(f"{r['this run']:.1f}{spread}", r["metrics"])
        cells["seeds"] = str(r["seeds"])
        cells["difference"] = f"{r['difference']:+.1f}" if r["difference"] is not None else "no paper number"
        cells["parameters"] = link("params.yaml", r["params"])
    else:
        cells["this run"] = f"not run: {r['why']}"
        cells["seeds"] = "0"
        cells["difference"] = "not run"
        cells["parameters"] = link("params.yaml", r["params"]) if "never ran" not in r.get("why", "") else "–"
    return cells


def _csv_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=[0, 1] if path.name.startswith("table_6") else 0, index_col=0)
    return df.fillna("–").astype(str).replace({"": "–", "nan": "–"})


def gather(profile: Profile, out: Path) -> dict:
    """Everything the page shows, as plain data (used by both renderers)."""
    runs, comparisons, tables, figures = [], [], [], []
    for spec in profile.runs:
        status, rec = _status(spec)
        run_dir = OUTPUTS / spec.key
        runs.append({"run": spec.key, "status": status, "finished": (rec or {}).get("finished", "–"),
                     "seconds": _fmt((rec or {}).get("seconds"), 0), "fingerprint": (rec or {}).get("fingerprint", "–"),
                     "folder": _rel(run_dir, out), "params": _rel(run_dir / "params.yaml", out),
                     "exists": run_dir.exists()})
        if spec.notebook in COMPARISONS:
            comparisons.append((spec.key, COMPARISONS[spec.notebook](spec, out)))
        if status.startswith("done"):
            for csv in sorted(c for c in (run_dir / "tables").glob("*.csv") if not c.stem.endswith("_numbers")):
                tables.append((spec.key, csv.stem, _rel(csv, out), _csv_table(csv)))
            for png in sorted((run_dir / "figures").glob("*.png")):
                figures.append((spec.key, png.stem, _rel(png, out)))
    return {"runs": runs, "comparisons": comparisons, "tables": tables, "figures": figures}


def _md_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _html_table(rows: list[dict[str, str]], cls: str = "") -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}.note{color:#555}"""


def render(profile: Profile, data: dict, fmt: str) -> str:
    """The page as Markdown (``fmt="md"``) or HTML (``fmt="html"``)."""
    md = fmt == "md"
    esc = (lambda s: s) if md else html.escape
    link = (lambda t, h: f"[{t}]({h})") if md else (lambda t, h: f'<a href="{html.escape(h)}">{html.escape(t)}</a>')
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts: list[tuple[str, str]] = []      # (kind, content): kind h1/h2/h3/p/table/img
    parts.append(("h1", f"mcanb study report: {profile.name}"))
    parts.append(("p", f"{profile.description} Generated {now} by mcanb {__version__} from {profile.path.name}. "
                       "Numbers of this study are percentages (mean ± sd over seeds), each linked to the metrics.json "
                       "it was read from; differences are this study minus the paper as printed."))
    if profile.name.startswith("toy") or "toy" in profile.path.stem:
        parts.append(("p", "Toy profile: the data are the synthetic MIMIC-shaped fixture, so only the layout is "
                           "comparable with the paper, not the values."))
    parts.append(("h2", "Runs"))
    parts.append(("table", [{"run": r["run"], "status": r["status"], "finished": r["finished"],
                             "seconds": r["seconds"], "fingerprint": r["fingerprint"],
                             "folder": link("folder", r["folder"]) if r["exists"] else "not created",
                             "parameters": link("params.yaml", r["params"]) if r["exists"] else "–"}
                            for r in data["runs"]]))
    parts.append(("h2", "Reproduced tables beside the paper"))
    if not data["comparisons"]:
        parts.append(("p", "This profile has no run with published numbers to compare."))
    for key, rows in data["comparisons"]:
        for table in dict.fromkeys(r["table"] for r in rows):
            parts.append(("h3", f"{table} · {key}"))
            parts.append(("table", [comparison_cells(r, md) for r in rows if r["table"] == table]))
    parts.append(("h2", "Tables as saved by the notebooks"))
    for key, name, href, df in data["tables"]:
        parts.append(("h3", f"{name} · {key} ({link('csv', href)})"))
        flat = df.reset_index()
        flat.columns = [" / ".join(c) if isinstance(c, tuple) else str(c) for c in flat.columns]
        parts.append(("table", [{c: esc(str(v)) for c, v in row.items()} for row in flat.to_dict("records")]))
    parts.append(("h2", "Figures"))
    for key, name, href in data["figures"]:
        parts.append(("h3", f"{name} · {key}"))
        parts.append(("img", href))
    if md:
        out = []
        for kind, c in parts:
            out.append({"h1": f"# {c}\n", "h2": f"## {c}\n", "h3": f"### {c}\n", "p": f"{c}\n",
                        "table": _md_table(c) if kind == "table" else "", "img": f"![{c}]({c})\n"}[kind])
        return "\n".join(out)
    body = []
    for kind, c in parts:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(c)}</{kind}>")
        elif kind == "h3":
            body.append(f"<h3>{c}</h3>")
        elif kind == "p":
            body.append(f'<p class="note">{html.escape(c)}</p>')
        elif kind == "table":
            body.append(_html_table(c))
        else:
            body.append(f'<p><img src="{html.escape(c)}" alt="{html.escape(c)}"></p>')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>mcanb report: {html.escape(profile.name)}"
            f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(profile: Profile) -> Path:
    """Write ``outputs/report/<profile>/index.html`` and ``report.md``; return the HTML path."""
    out = REPORT_DIR / profile.name
    out.mkdir(parents=True, exist_ok=True)
    data = gather(profile, out)
    (out / "report.md").write_text(render(profile, data, "md"), encoding="utf-8")
    page = out / "index.html"
    page.write_text(render(profile, data, "html"), encoding="utf-8")
    return page
