"""Rewrite the result blocks of README.md from the toy runs' outputs, so no result is ever typed by hand.

``python run.py readme-figures`` (or ``make readme-figures``, or ``python -m mcanb.readme_figures``) reads

* ``outputs/04_cnn_retraining/toy/metrics.json`` (written by ``python run.py toy``) -> block ``table6``;
* ``outputs/fixtures/toy_mimic/fixture.json`` (the toy fixture's ceiling and floor) -> block ``fixture``;
* ``outputs/02_pretraining_domains/toy`` and ``outputs/03_hierarchy/toy`` ``metrics.json`` -> block ``bert``;

and replaces the text between ``<!-- figures:NAME:start -->`` and ``<!-- figures:NAME:end -->`` in README.md.
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
# Row labels of the README's toy Table 6 (the notebook's own Table 6 uses the paper's row names).
MODEL_LABELS = {"cnn": "CNN", "caml": "CAML", "dr_caml": "DR-CAML", "multirescnn": "MultiResCNN", "laat": "LAAT",
                "tfidf_lr": "TF-IDF + LR", "most_frequent": "most frequent codes"}
TABLE6_COLUMNS = (("micro_f1", "micro-F1"), ("macro_auc", "macro-AUC"), ("p@5", "P@5"))


class FiguresError(RuntimeError):
    """An output the README needs is missing, or README.md lacks a block's markers."""


def _read_json(path: Path, produced_by: str) -> dict:
    if not path.exists():
        raise FiguresError(f"{path}: not found; run `{produced_by}` first")
    return json.loads(path.read_text())


def _stamp(source: Path, when: str | None = None) -> str:
    shown = source.relative_to(ROOT) if ROOT in source.parents else source
    today = _dt.date.today().isoformat()
    made = f", run of {when}" if when else ""
    return f"<sub>Written by `{COMMAND}` on {today} from `{shown}`{made}.</sub>"


def table6_block(outputs: Path = OUTPUTS) -> str:
    """Markdown table: one row per model of the toy notebook-04 run, micro-F1 mean ± sd over seeds, macro-AUC, P@5.

    Rows follow the run's ``models`` then ``baselines`` (from ``params.yaml`` beside ``metrics.json``).
    """
    run_dir = outputs / "04_cnn_retraining" / "toy"
    doc = _read_json(run_dir / "metrics.json", "python run.py toy")
    m = doc["metrics"]
    params = yaml.safe_load((run_dir / "params.yaml").read_text()) if (run_dir / "params.yaml").exists() else {}
    names = [*params.get("models", []), *params.get("baselines", [])]
    found = sorted({k.split("/")[0] for k in m if k.endswith("/test/micro_f1/mean")})
    names = [n for n in names if n in found] + [n for n in found if n not in names]
    if not names:
        raise FiguresError(f"{run_dir / 'metrics.json'}: no '<model>/test/micro_f1/mean' entries")
    lines = ["| model | " + " | ".join(label for _, label in TABLE6_COLUMNS) + " |",
             "|---" * (len(TABLE6_COLUMNS) + 1) + "|"]
    for name in names:
        n_seeds = len({k.split("/")[1] for k in m if k.startswith(f"{name}/seed") and k.endswith("/test/micro_f1")})
        cells = []
        for metric, _ in TABLE6_COLUMNS:
            mean, sd = m.get(f"{name}/test/{metric}/mean"), m.get(f"{name}/test/{metric}/sd")
            if mean is None:
                cells.append("")
            elif metric == "micro_f1" and n_seeds > 1:
                cells.append(f"{mean:.3f} ± {sd:.3f}")
            else:
                cells.append(f"{mean:.3f}")
        lines.append(f"| {MODEL_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    seeds = params.get("seeds")
    threads = params.get("num_threads")
    setting = ", ".join(s for s in (f"seeds {', '.join(map(str, seeds))}" if seeds else "",
                                    f"at most {params['num_epochs']} epochs" if "num_epochs" in params else "",
                                    f"{threads} torch thread{'s' * (threads != 1)}" if threads else "") if s)
    note = f"Test set of the toy fixture ({setting}); ± is the standard deviation over seeds." if setting else ""
    return "\n".join([*lines, "", note, _stamp(run_dir / "metrics.json", doc.get("created"))]).strip()


def fixture_block(outputs: Path = OUTPUTS) -> str:
    """One sentence: the toy fixture's oracle ceiling and most-frequent floor (test micro-F1, top-50 codes)."""
    path = outputs / TOY_MIMIC.relative_to(OUTPUTS) / "fixture.json"
    doc = _read_json(path, "python run.py toy")
    ceiling = doc["oracle"]["test_50"]["micro_f1"]
    floor = doc["baseline_most_frequent"]["test_50"]["micro_f1"]
    return (f"On the toy top-50 test set the ceiling is a test micro-F1 of **{ceiling:.3f}** and the floor "
            f"**{floor:.3f}**.\n{_stamp(path)}")


def bert_block(outputs: Path = OUTPUTS) -> str:
    """Markdown table: every (encoder, architecture) of the toy notebook 02 and 03 runs, test micro-F1 (mean ± sd
    over seeds), macro-AUC and P@5, with the most-frequent floor; the notebook that ran it in the last column."""
    from .published import ARCHITECTURES

    rows, floor, sources = {}, None, []
    for nb in ("02_pretraining_domains", "03_hierarchy"):
        path = outputs / nb / "toy" / "metrics.json"
        doc = _read_json(path, f"python run.py run {nb} toy")
        sources.append(path)
        m = doc["metrics"]
        floor = m.get("most_frequent/test/micro_f1", floor)
        for key in sorted(k for k in m if k.endswith("/test/micro_f1/mean")):
            enc, arch = key.split("/")[:2]
            rows.setdefault((enc, arch), (nb[:2], m))
    if not rows:
        raise FiguresError(f"{sources[-1]}: no '<encoder>/<architecture>/test/micro_f1/mean' entries")
    lines = ["| encoder | architecture | micro-F1 | macro-AUC | P@5 | notebook |", "|---|---|---|---|---|---|"]
    for (enc, arch), (nb, m) in rows.items():
        k = f"{enc}/{arch}/test"
        lines.append(f"| {enc.replace('_', ' ')} | {ARCHITECTURES.get(arch, arch)} | {m[k + '/micro_f1/mean']:.3f} ± "
                     f"{m[k + '/micro_f1/sd']:.3f} | {m[k + '/macro_auc/mean']:.3f} | {m[k + '/p@5/mean']:.3f} | {nb} |")
    note = (f"Test set of the toy fixture, top-50 codes; most-frequent floor {floor:.3f} micro-F1."
            if floor is not None else "")
    return "\n".join([*lines, "", note, *(_stamp(p) for p in sources)]).strip()


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
