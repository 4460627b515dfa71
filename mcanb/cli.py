"""The ``mcanb`` command: one notebook, the whole study, the report, predictions for a new note, JupyterLab.

::

    mcanb run NOTEBOOK RUN [-p KEY VALUE]...   # one notebook with parameters/<NOTEBOOK>/<RUN>.yaml
    mcanb study PROFILE [--dry-run]            # every run of parameters/study/<PROFILE>.yaml not up to date
    mcanb report PROFILE                       # outputs/report/<PROFILE>/index.html + report.md
    mcanb predict --model RUN_DIR --text FILE  # top codes of a new note (FILE or - for stdin)
    mcanb lab [PROFILE] [--port N]             # JupyterLab on notebooks/ and outputs/; a profile's runs open
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


def _lab_workspace(folder, name: str, paths: list[str]) -> None:
    """A JupyterLab workspace ``name`` in ``folder`` that opens ``paths`` (relative to the lab root) as tabs."""
    import json

    from jupyterlab_server.workspaces_handler import WorkspacesManager

    ids = [f"notebook:{p}" for p in paths]
    data = {"layout-restorer:data": {"main": {"dock": {"type": "tab-area", "currentIndex": 0, "widgets": ids},
                                              "current": ids[0]}},
            **{i: {"data": {"path": p, "factory": "Notebook"}} for i, p in zip(ids, paths)}}
    WorkspacesManager(str(folder)).save(name, json.dumps({"data": data, "metadata": {"id": name}}))


def _cmd_lab(args) -> None:
    """JupyterLab on a folder of two links, ``notebooks/`` and ``outputs/`` (the executed copies), so a reader opens
    the study as it ran; with a profile, its executed notebooks open as tabs. SIGINT, SIGTERM and SIGHUP stop the
    server too (it runs in its own process group and gets a SIGTERM; a SIGKILL follows after 20 s)."""
    import shutil
    import signal
    import subprocess
    import tempfile
    import threading
    from pathlib import Path

    from .paths import NOTEBOOKS, OUTPUTS
    from .study import StudyError, load_profile

    opened = []
    if args.profile:
        prof = load_profile(args.profile)
        opened = [f"outputs/{s.key}/{s.notebook}.ipynb" for s in prof.runs
                  if (OUTPUTS / s.key / f"{s.notebook}.ipynb").exists()]
        if not opened:
            raise StudyError(f"profile {prof.name}: no executed notebook under {OUTPUTS} yet; run "
                             f"`mcanb study {args.profile}` first")
    tmp = Path(tempfile.mkdtemp(prefix="mcanb-lab-"))
    code = 1
    try:
        root = tmp / "root"
        root.mkdir()
        (root / "notebooks").symlink_to(NOTEBOOKS, target_is_directory=True)
        OUTPUTS.mkdir(parents=True, exist_ok=True)
        (root / "outputs").symlink_to(OUTPUTS, target_is_directory=True)
        cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--port={args.port}",
               f"--ServerApp.ip={args.ip}"]
        if opened:
            name = f"mcanb-{prof.name}"
            _lab_workspace(tmp / "workspaces", name, opened)
            cmd += [f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.default_url=/lab/workspaces/{name}"]
        if args.no_browser:
            cmd.append("--no-browser")
        if args.allow_root:
            cmd.append("--allow-root")
        print("+", " ".join(cmd), flush=True)
        if opened:
            print(f"[mcanb] opens {len(opened)} executed notebook(s) of {prof.name}: {', '.join(opened)}", flush=True)
        proc = subprocess.Popen(cmd, start_new_session=True)

        def stop(signum, frame) -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                timer = threading.Timer(20, lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
                timer.daemon = True
                timer.start()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        code = proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)


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
    lab = sub.add_parser("lab", help="JupyterLab on notebooks/ and outputs/ (the executed notebooks)")
    lab.add_argument("profile", nargs="?", help="open the executed notebooks of this study profile (e.g. toy)")
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
