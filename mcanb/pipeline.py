"""Batch runs: the numbered notebooks with papermill, on the toy fixture or a parameter file.

``python run.py toy`` (or ``python -m mcanb.pipeline toy``) generates the toy MIMIC-shaped fixture and
executes every numbered notebook with ``parameters/<notebook>/toy.yaml``; ``python run.py run NB RUN``
executes one notebook with ``parameters/<NB>/<RUN>.yaml``. Each run writes
``outputs/<notebook>/<run>/<notebook>.ipynb`` beside the tables, figures, ``metrics.json`` and
``params.yaml`` that the notebook itself writes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from . import params as P
from .paths import NOTEBOOKS, PARAMETERS, ROOT, TOY_MIMIC, out_dir


def numbered_notebooks() -> list[str]:
    """Names (without .ipynb) of ``notebooks/NN_*.ipynb`` in order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def resolve_parameters(notebook: str, run: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters of ``parameters/<notebook>/<run>.yaml`` plus overrides, checked against the notebook."""
    nb_path = NOTEBOOKS / f"{notebook}.ipynb"
    if not nb_path.exists():
        raise P.ParameterError(f"{nb_path}: no such notebook (have: {', '.join(numbered_notebooks())})")
    defaults = P.notebook_defaults(nb_path)
    file = PARAMETERS / notebook / f"{run}.yaml"
    values = P.load_file(file) if file.exists() else {}
    if not file.exists() and run != "toy":
        raise P.ParameterError(f"{file}: parameter file not found")
    P.check(values, defaults, str(file.relative_to(ROOT)))
    overrides = overrides or {}
    P.check(overrides, defaults, "command-line override")
    values = {**values, **overrides}
    if "run_name" in defaults:
        values.setdefault("run_name", run)
    return values


def execute(notebook: str, run: str, overrides: dict[str, Any] | None = None, timeout: int | None = None) -> Path:
    """Run one notebook with papermill; return the executed copy's path."""
    import papermill as pm

    values = resolve_parameters(notebook, run, overrides)
    target = out_dir(notebook, str(values.get("run_name", run))) / f"{notebook}.ipynb"
    shown = target.relative_to(ROOT) if ROOT in target.parents else target   # MCANB_OUTPUTS may lie elsewhere
    print(f"[mcanb] {notebook} / {run} -> {shown}", flush=True)
    pm.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), str(target), parameters=values,
                        kernel_name="python3", cwd=str(ROOT), log_output=False, progress_bar=True,
                        execution_timeout=timeout)
    return target


def toy() -> list[Path]:
    """Every numbered notebook on the toy fixture."""
    from . import fixture

    fixture.ensure(TOY_MIMIC, size="toy")
    return [execute(nb, "toy") for nb in numbered_notebooks()]


def _overrides(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {k: yaml.safe_load(v) for k, v in (pairs or [])}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mcanb.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("toy", help="all numbered notebooks on the toy fixture")
    r = sub.add_parser("run", help="one notebook with parameters/<NB>/<RUN>.yaml")
    r.add_argument("notebook", help="e.g. 01_preprocess")
    r.add_argument("run", help="e.g. toy or mimic3 (parameters/<notebook>/<run>.yaml)")
    r.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"), help="override a parameter")
    sub.add_parser("list", help="the numbered notebooks and their parameter files")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "toy":
            for path in toy():
                print(f"[mcanb] done: {path.relative_to(ROOT)}")
        elif args.cmd == "run":
            execute(args.notebook, args.run, _overrides(args.p))
        else:
            for nb in numbered_notebooks():
                runs = sorted(p.stem for p in (PARAMETERS / nb).glob("*.yaml"))
                print(f"{nb}: {', '.join(runs) or '(defaults only)'}")
    except P.ParameterError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
