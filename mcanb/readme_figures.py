"""Rewrite the result blocks of README.md from the toy runs' outputs, so no result is ever typed by hand.

``python run.py readme-figures`` (or ``make readme-figures``, or ``python -m mcanb.readme_figures``) reads

* ``outputs/04_cnn_retraining/toy/metrics.json`` (written by ``python run.py toy``) -> block ``table6``;
* ``outputs/fixtures/toy_mimic/fixture.json`` (the toy fixture's ceiling and floor) -> block ``fixture``;
* ``outputs/02_pretraining_domains/toy`` and ``outputs/03_hierarchy/toy`` ``metrics.json`` -> block ``bert``;

and replaces the text between ``<!-- figures:NAME:start -->`` and ``<!-- figures:NAME:end -->`` in README.md. The
result tables are :mod:`mcanb.comparison`'s, the table objects the notebooks and the study report render.
Each block ends with a stamp naming the command, the date it ran and the file it read. A missing output or
marker is an error that names it; nothing else in the README changes.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import Callable

import yaml

from .paths import OUTPUTS, ROOT, TOY_MIMIC

COMMAND = "python run.py readme-figures"


class FiguresError(RuntimeError):
    """An output the README needs is missing, or README.md lacks a block's markers."""


def _read_json(path: Path, produced_by: str) -> dict:
    if not path.exists():
        raise FiguresError(f"{path}: not found; run `{produced_by}` first")
    return json.loads(path.read_text())


def _stamp(source: Path, when: str | None = None) -> str:
    shown = (Path("outputs") / source.relative_to(OUTPUTS) if OUTPUTS in source.parents
             else source.relative_to(ROOT) if ROOT in source.parents else source)
    today = _dt.date.today().isoformat()
    made = f", run of {when}" if when else ""
    return f"<sub>Written by `{COMMAND}` on {today} from `{shown}`{made}.</sub>"


def _tables(outputs: Path, notebook: str, produced_by: str) -> tuple[list, dict, Path]:
    """The comparison tables of ``outputs/<notebook>/toy`` (mcanb.reproduced, as the notebook and the report show
    them), its parameters and its metrics.json."""
    from .reproduced import run_tables

    run_dir = outputs / notebook / "toy"
    _read_json(run_dir / "metrics.json", produced_by)             # a missing or damaged file is one message naming it
    params = yaml.safe_load((run_dir / "params.yaml").read_text()) if (run_dir / "params.yaml").exists() else {}
    tables = run_tables(notebook, run_dir, params)
    if not any(r.source == "this run" for t in tables for r in t.this_run):
        raise FiguresError(f"{run_dir / 'metrics.json'}: no '<row>/test/<metric>/mean' entries")
    return tables, params, run_dir / "metrics.json"


def _render(tables: list, short: bool) -> list[str]:
    """``short``: only the paper rows this run's rows are or stand in for (Tables 2–5 have up to 21 rows)."""
    from .comparison import markdown

    out = []
    for t in tables:
        out += [f"**{t.title}**, this run on {t.data} under the paper's rows (percent):", "", markdown(t, short=short)]
    return out


def table6_block(outputs: Path = OUTPUTS) -> str:
    """Table 6 as notebook 04 and the report show it (``mcanb.comparison``): the paper's rows, the toy run's rows
    under them (mean ± sd over seeds), a not-run line per reason."""
    tables, params, source = _tables(outputs, "04_cnn_retraining", "python run.py toy")
    seeds, threads = params.get("seeds"), params.get("num_threads")
    setting = ", ".join(s for s in (f"seeds {', '.join(map(str, seeds))}" if seeds else "",
                                    f"at most {params['num_epochs']} epochs" if "num_epochs" in params else "",
                                    f"{threads} torch thread{'s' * (threads != 1)}" if threads else "") if s)
    note = f"Test set of the toy fixture ({setting}); ± is the standard deviation over seeds." if setting else ""
    created = _read_json(source, "python run.py toy").get("created")
    return "\n".join([*_render(tables, short=False), note, _stamp(source, created)]).strip()


def fixture_block(outputs: Path = OUTPUTS) -> str:
    """One sentence: the toy fixture's oracle ceiling and most-frequent floor (test micro-F1, top-50 codes)."""
    path = outputs / TOY_MIMIC.relative_to(OUTPUTS) / "fixture.json"
    doc = _read_json(path, "python run.py toy")
    ceiling = doc["oracle"]["test_50"]["micro_f1"]
    floor = doc["baseline_most_frequent"]["test_50"]["micro_f1"]
    return (f"On the toy top-50 test set the ceiling is a test micro-F1 of **{ceiling:.3f}** and the floor "
            f"**{floor:.3f}**.\n{_stamp(path)}")


def bert_block(outputs: Path = OUTPUTS) -> str:
    """Tables 2 (notebook 02) and 5 (notebook 03) as the notebooks and the report show them (``mcanb.comparison``),
    in short form: the paper rows the toy rows stand in for, the toy rows, one not-run line per reason."""
    parts, sources = [], []
    for nb, table in (("02_pretraining_domains", 2), ("03_hierarchy", 5)):
        tables, _, source = _tables(outputs, nb, f"python run.py run {nb} toy")
        parts += _render([t for t in tables if t.table == table], short=True)
        sources.append(source)
    return "\n".join([*parts, *(_stamp(p) for p in sources)]).strip()


BLOCKS: dict[str, Callable[[Path], str]] = {"table6": table6_block, "fixture": fixture_block, "bert": bert_block}


def replace_block(text: str, name: str, body: str, source: str = "README.md") -> str:
    """``text`` with the lines between ``<!-- figures:NAME:start -->`` and ``...:end -->`` replaced by ``body``."""
    start, end = f"<!-- figures:{name}:start -->", f"<!-- figures:{name}:end -->"
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
    hits = len(pattern.findall(text))
    if hits != 1:
        raise FiguresError(f"{source}: expected one '{start}' ... '{end}' block, found {hits}")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def update(readme: Path = ROOT / "README.md", outputs: Path = OUTPUTS, names: tuple[str, ...] = tuple(BLOCKS)) -> str:
    """Rewrite the named blocks of ``readme`` in place; return the new text."""
    text = readme.read_text()
    for name in names:
        text = replace_block(text, name, BLOCKS[name](outputs), str(readme))
    readme.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mcanb.readme_figures", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--outputs", type=Path, default=OUTPUTS, help="the outputs/ folder of a toy run")
    ap.add_argument("--block", action="append", choices=list(BLOCKS), help="only these blocks (default: all)")
    args = ap.parse_args(argv)
    try:
        update(args.readme, args.outputs, tuple(args.block or BLOCKS))
    except FiguresError as e:
        sys.exit(f"error: {e}")
    print(f"[mcanb] rewrote {', '.join(args.block or BLOCKS)} in {args.readme}")


if __name__ == "__main__":
    main()
