"""Batch runs: the numbered notebooks with papermill, on the toy fixture or a parameter file.

``python run.py toy`` (or ``python -m mcanb.pipeline toy``) generates the toy MIMIC-shaped fixture and
executes every numbered notebook with ``parameters/<notebook>/toy.yaml``; ``python run.py run NB RUN``
executes one notebook with ``parameters/<NB>/<RUN>.yaml``. Each run writes
``outputs/<notebook>/<run>/<notebook>.ipynb`` beside the tables, figures, ``metrics.json`` and
``params.yaml`` that the notebook itself writes.

Relative paths: values in ``parameters/*.yaml`` are taken from the repository root (the files travel with
the repository); path values given on the command line (``-p input_path notes.csv``) are taken from the
caller's working directory (``--cwd``, which ``run.py`` sets) and made absolute before papermill runs,
with an error naming the parameter when the path does not exist.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from . import params as P
from .paths import NOTEBOOKS, PARAMETERS, ROOT, TOY_MIMIC, TOY_PREPROCESSED, out_dir


def _shown(path: Path) -> Path:
    """``path`` relative to the repository when inside it (outputs may live elsewhere: $MCANB_OUTPUTS)."""
    return path.relative_to(ROOT) if ROOT in path.parents else path


def numbered_notebooks() -> list[str]:
    """Names (without .ipynb) of ``notebooks/NN_*.ipynb`` in order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# Parameters that hold a path to something that must already exist, and the non-path words each accepts
# ("" = the notebook's default; splits_dir "caml" = download CAML's files).
PATH_PARAMETERS: dict[str, frozenset[str]] = {"input_path": frozenset({""}), "data_dir": frozenset({""}),
                                              "splits_dir": frozenset({"", "caml"})}
BUILT_ON_DEMAND = (TOY_MIMIC, TOY_PREPROCESSED)   # the notebooks generate these when missing


def resolve_path_overrides(overrides: dict[str, Any], cwd: str | Path) -> dict[str, Any]:
    """``overrides`` with every relative path in ``PATH_PARAMETERS`` made absolute against ``cwd``.

    ``~`` and ``$VARS`` are expanded first. A path that does not exist is a ``ParameterError`` naming the
    parameter, the value as typed and where it was looked for. Example: from ``/home/me/data``,
    ``{"input_path": "notes.csv"}`` -> ``{"input_path": "/home/me/data/notes.csv"}``.
    """
    out = dict(overrides)
    for key, value in overrides.items():
        if key not in PATH_PARAMETERS or not isinstance(value, str) or value in PATH_PARAMETERS[key]:
            continue
        path = Path(os.path.expandvars(os.path.expanduser(value)))
        if not path.is_absolute():
            path = Path(cwd) / path
        if not path.exists() and path.resolve() not in BUILT_ON_DEMAND:
            raise P.ParameterError(f"command-line override -p {key} {value}: {path} does not exist (relative "
                                   f"paths on the command line are taken from your working directory, {cwd})")
        out[key] = str(path.resolve())
    return out


def resolve_parameters(notebook: str, run: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters of ``parameters/<notebook>/<run>.yaml`` plus overrides, checked against the notebook."""
    nb_path = NOTEBOOKS / f"{notebook}.ipynb"
    if not nb_path.exists():
        raise P.ParameterError(f"{nb_path}: no such notebook (have: {', '.join(numbered_notebooks())})")
    defaults = P.notebook_defaults(nb_path)
    file = PARAMETERS / notebook / f"{run}.yaml"
    values = P.coerce(P.load_file(file) if file.exists() else {}, defaults)
    if not file.exists() and run != "toy":
        raise P.ParameterError(f"{file}: parameter file not found")
    P.check(values, defaults, str(file.relative_to(ROOT)))
    overrides = P.coerce(overrides or {}, defaults)
    P.check(overrides, defaults, "command-line override")
    values = {**values, **overrides}
    if "run_name" in defaults:
        values.setdefault("run_name", run)
    return values


def execute(notebook: str, run: str, overrides: dict[str, Any] | None = None, timeout: int | None = None,
            dry_run: bool = False) -> Path:
    """Run one notebook with papermill; return the executed copy's path.

    ``dry_run``: check and print the resolved parameters and the target, execute nothing, create nothing.
    """
    import papermill as pm

    values = resolve_parameters(notebook, run, overrides)
    target = out_dir(notebook, str(values.get("run_name", run)), create=not dry_run) / f"{notebook}.ipynb"
    if dry_run:
        print(f"[mcanb] dry run: {notebook} / {run} -> {_shown(target)} with\n"
              + yaml.safe_dump(values, sort_keys=True, allow_unicode=True), end="", flush=True)
        return target
    print(f"[mcanb] {notebook} / {run} -> {_shown(target)}", flush=True)
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
    ap.add_argument("--cwd", default=os.getcwd(),
                    help="directory that relative paths in -p overrides are taken from (default: the current one)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("toy", help="all numbered notebooks on the toy fixture")
    r = sub.add_parser("run", help="one notebook with parameters/<NB>/<RUN>.yaml")
    r.add_argument("notebook", help="e.g. 01_preprocess")
    r.add_argument("run", help="e.g. toy or mimic3 (parameters/<notebook>/<run>.yaml)")
    r.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override a parameter (a relative path is taken from your working directory)")
    r.add_argument("--dry-run", action="store_true", help="check and print the parameters, execute nothing")
    sub.add_parser("list", help="the numbered notebooks and their parameter files")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "toy":
            for path in toy():
                print(f"[mcanb] done: {_shown(path)}")
        elif args.cmd == "run":
            overrides = resolve_path_overrides(_overrides(args.p), args.cwd)
            execute(args.notebook, args.run, overrides, dry_run=args.dry_run)
        else:
            for nb in numbered_notebooks():
                runs = sorted(p.stem for p in (PARAMETERS / nb).glob("*.yaml"))
                print(f"{nb}: {', '.join(runs) or '(defaults only)'}")
    except P.ParameterError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
