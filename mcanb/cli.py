"""The ``mcanb`` command: one notebook, the whole study, the report, predictions for a new note, JupyterLab.

::

    mcanb run NOTEBOOK RUN [-p KEY VALUE]...   # one notebook with parameters/<NOTEBOOK>/<RUN>.yaml
    mcanb study PROFILE [--dry-run]            # every run of parameters/study/<PROFILE>.yaml not up to date
    mcanb report PROFILE                       # outputs/report/<PROFILE>/index.html + report.md
    mcanb predict --model RUN_DIR --text FILE  # top codes of a new note (FILE or - for stdin)
    mcanb lab [--port N]                       # JupyterLab on notebooks/
    mcanb list                                 # notebooks, their parameter files, study profiles

``python run.py toy`` is ``mcanb study toy`` and ``python run.py run`` is ``mcanb run``. Explained in the
README section "The whole study".
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml


def _overrides(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {k: yaml.safe_load(v) for k, v in (pairs or [])}


def _cmd_run(args) -> None:
    from .pipeline import resolve_path_overrides
    from .study import execute_run

    overrides = resolve_path_overrides(_overrides(args.p), args.cwd)   # relative -p paths are the caller's
    if args.dry_run:
        from .pipeline import execute
        execute(args.notebook, args.run, overrides, dry_run=True)      # the checked parameters; nothing runs
        return
    path = execute_run(args.notebook, args.run, overrides, timeout=args.timeout)
    print(f"[mcanb] done: {path}")


def _cmd_study(args) -> None:
    from .study import run_study

    if args.rehearse:
        from .rehearse import rehearse_study
        rehearse_study(args.profile)        # the profile at MIMIC-III scale on the fixture, capped runs, a cost table
        return
    run_study(args.profile, dry_run=args.dry_run, report=not args.no_report, timeout=args.timeout)


def _cmd_report(args) -> None:
    from .report import write_report
    from .study import load_profile

    print(f"[mcanb] report: {write_report(load_profile(args.profile))}")


def _cmd_predict(args) -> None:
    from .predict import format_prediction, load_predictor

    text = sys.stdin.read() if args.text == "-" else open(args.text, encoding="utf-8").read()
    predictor = load_predictor(args.model)
    print(format_prediction(predictor.predict(text, top=args.top, spans=args.spans)))


def _cmd_lab(args) -> None:
    import subprocess

    from .paths import NOTEBOOKS

    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={NOTEBOOKS}", f"--port={args.port}",
           f"--ServerApp.ip={args.ip}"]
    if args.no_browser:
        cmd.append("--no-browser")
    if args.allow_root:
        cmd.append("--allow-root")
    print("+", " ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


def _cmd_list(args) -> None:
    from .paths import PARAMETERS
    from .pipeline import numbered_notebooks
    from .study import STUDY_PROFILES

    for nb in numbered_notebooks():
        runs = sorted(p.stem for p in (PARAMETERS / nb).glob("*.yaml"))
        print(f"{nb}: {', '.join(runs) or '(defaults only)'}")
    print("study profiles: " + ", ".join(sorted(p.stem.replace("_", "-") for p in STUDY_PROFILES.glob("*.yaml"))))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mcanb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one notebook with parameters/<NOTEBOOK>/<RUN>.yaml")
    r.add_argument("notebook", help="e.g. 04_cnn_retraining")
    r.add_argument("run", help="e.g. toy (parameters/<notebook>/<run>.yaml)")
    r.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"), help="override a parameter (YAML value)")
    r.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    r.add_argument("--dry-run", action="store_true", help="check the parameter file and overrides, print them; run nothing")
    r.add_argument("--cwd", default=os.getcwd(), help="where relative paths given with -p start (default: here)")
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("study", help="the whole study for a profile (toy, mimic3-50, mimic3-full or a YAML path)")
    s.add_argument("profile")
    s.add_argument("--dry-run", action="store_true", help="list what would run and why; run nothing")
    s.add_argument("--no-report", action="store_true", help="do not write outputs/report/ at the end")
    s.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    s.add_argument("--rehearse", action="store_true", help="rehearse at MIMIC-III scale on the fixture with stand-in "
                   "encoders and capped training; print what each run costs (outputs/rehearsal/)")
    s.set_defaults(func=_cmd_study)
    rp = sub.add_parser("report", help="outputs/report/<PROFILE>/: every reproduced table beside the paper's numbers")
    rp.add_argument("profile")
    rp.set_defaults(func=_cmd_report)
    p = sub.add_parser("predict", help="top codes of a new note with a trained run")
    p.add_argument("--model", required=True, help="a training run folder (with params.yaml, checkpoints/best.pt)")
    p.add_argument("--text", required=True, help="a text file, or - for standard input")
    p.add_argument("--top", type=int, default=10, help="codes to show (default 10)")
    p.add_argument("--spans", type=int, default=3, help="attention spans per code, label-attention models (default 3)")
    p.set_defaults(func=_cmd_predict)
    lab = sub.add_parser("lab", help="JupyterLab on notebooks/")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--ip", default="127.0.0.1", help="listen address (default: this machine only)")
    lab.add_argument("--no-browser", action="store_true")
    lab.add_argument("--allow-root", action="store_true", help="let JupyterLab run as root (containers)")
    lab.set_defaults(func=_cmd_lab)
    ls = sub.add_parser("list", help="notebooks, parameter files and study profiles")
    ls.set_defaults(func=_cmd_list)
    return ap


def main(argv: list[str] | None = None) -> None:
    from papermill.exceptions import PapermillExecutionError

    from .params import ParameterError
    from .study import StudyError

    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ParameterError, StudyError, FileNotFoundError, ValueError) as e:
        sys.exit(f"mcanb {args.cmd}: error: {e}")
    except PapermillExecutionError as e:
        sys.exit(f"mcanb {args.cmd}: a notebook cell failed (the executed notebook in its outputs folder shows "
                 f"where; the next call resumes):\n{e}")
    except KeyboardInterrupt:
        sys.exit(f"mcanb {args.cmd}: interrupted; the next call resumes where this one stopped")


if __name__ == "__main__":
    main()
