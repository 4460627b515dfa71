"""The ``mcanb`` command: one notebook, the whole study, the report, predictions for a new note, JupyterLab.

::

    mcanb run NOTEBOOK RUN [-p KEY VALUE]...   # one notebook with parameters/<NOTEBOOK>/<RUN>.yaml
    mcanb study PROFILE [--dry-run]            # every run of parameters/study/<PROFILE>.yaml not up to date
    mcanb report PROFILE                       # outputs/report/<PROFILE>/index.html + report.md
    mcanb predict --model RUN_DIR --text FILE  # top codes of a new note (FILE or - for stdin)
    mcanb lab [--port N]                       # JupyterLab on notebooks/
    mcanb list                                 # notebooks, their parameter files, study profiles

A user error (a parameter, an input file, a run folder) prints one message naming the file, key or field and what
was expected, before any work starts, and exits 1; ``--debug`` adds the traceback (README "Troubleshooting").

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
    from .errors import yaml_problem
    from .params import ParameterError

    out = {}
    for k, v in pairs or []:
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise ParameterError(yaml_problem(f"-p {k} {v!r}", e) + "; quote lists as \"[a, b]\"") from e
    return out


def _cmd_run(args) -> None:
    from .study import RunSpec, execute_run, preflight, read_record
    from .paths import OUTPUTS
    from .pipeline import resolve_path_overrides

    overrides = resolve_path_overrides(_overrides(args.p), args.cwd)   # relative -p paths are the caller's
    if args.dry_run:
        from .pipeline import execute
        spec = RunSpec(args.notebook, args.run, overrides)
        preflight(spec)                                                # the same checks as a real run
        read_record(OUTPUTS / spec.key)                                # a damaged record is reported, not guessed
        execute(args.notebook, args.run, overrides, dry_run=True)      # the checked parameters; nothing runs
        return
    path = execute_run(args.notebook, args.run, overrides, timeout=args.timeout)
    print(f"[mcanb] done: {path}")


def _cmd_study(args) -> None:
    from .study import run_study

    run_study(args.profile, dry_run=args.dry_run, report=not args.no_report, timeout=args.timeout)


def _cmd_report(args) -> None:
    from .paths import OUTPUTS
    from .preflight import writable_problem
    from .report import write_report
    from .study import StudyError, load_profile

    profile = load_profile(args.profile)
    why = writable_problem(OUTPUTS / "report" / profile.name, "the report folder")
    if why:
        raise StudyError(why)
    print(f"[mcanb] report: {write_report(profile)}")


def _read_note(source: str, cwd: str) -> str:
    """The note's bytes (a file, or standard input for ``-``) decoded as UTF-8, whatever the locale."""
    from pathlib import Path

    from .errors import UserError

    name = "standard input" if source == "-" else source
    try:
        raw = sys.stdin.buffer.read() if source == "-" else (Path(cwd) / os.path.expanduser(source)).read_bytes()
    except OSError as e:
        raise UserError(f"--text {source}: cannot read the note ({e.strerror or e})") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"--text {source}: {name} is not UTF-8 text (byte {raw[e.start:e.start + 1]!r} at offset "
                        f"{e.start}); convert it first, e.g. `iconv -f latin1 -t utf-8 NOTE > note.txt`") from e


def _model_dir(model: str, cwd: str):
    """``--model`` as typed: relative paths from the caller's directory; ``outputs/...`` also names $MCANB_OUTPUTS."""
    from pathlib import Path

    from .errors import UserError
    from .paths import resolve

    p = Path(os.path.expanduser(model))
    here = p if p.is_absolute() else Path(cwd) / p
    if here.is_dir():
        return here.resolve()
    if not p.is_absolute() and p.parts[:1] == ("outputs",) and resolve(p).is_dir():
        return resolve(p)
    raise UserError(f"--model {model}: {here} is not a folder (relative paths are taken from your working directory, "
                    f"{cwd}; expected a training run folder such as outputs/04_cnn_retraining/toy/caml/seed13)")


def _cmd_predict(args) -> None:
    model = _model_dir(args.model, args.cwd)
    text = _read_note(args.text, args.cwd)                 # both checked before torch and the model load
    from .predict import format_prediction, load_predictor

    predictor = load_predictor(model)
    print(format_prediction(predictor.predict(text, top=args.top, spans=args.spans)))


def _at_least(lo: int):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = None
        if n is None or n < lo:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lo}, got {value!r}")
        return n
    return parse


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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    r = sub.add_parser("run", parents=[common], help="one notebook with parameters/<NOTEBOOK>/<RUN>.yaml")
    r.add_argument("notebook", help="e.g. 04_cnn_retraining")
    r.add_argument("run", help="e.g. toy (parameters/<notebook>/<run>.yaml)")
    r.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"), help="override a parameter (YAML value)")
    r.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    r.add_argument("--dry-run", action="store_true", help="check the parameter file and overrides, print them; run nothing")
    r.add_argument("--cwd", default=os.getcwd(), help="where relative paths given with -p start (default: here)")
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("study", parents=[common], help="the whole study for a profile (toy, mimic3-50, mimic3-full or a YAML path)")
    s.add_argument("profile")
    s.add_argument("--dry-run", action="store_true", help="list what would run and why; run nothing")
    s.add_argument("--no-report", action="store_true", help="do not write outputs/report/ at the end")
    s.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    s.set_defaults(func=_cmd_study)
    rp = sub.add_parser("report", parents=[common], help="outputs/report/<PROFILE>/: every reproduced table beside the paper's numbers")
    rp.add_argument("profile")
    rp.set_defaults(func=_cmd_report)
    p = sub.add_parser("predict", parents=[common], help="top codes of a new note with a trained run")
    p.add_argument("--model", required=True, help="a training run folder (with params.yaml, checkpoints/best.pt)")
    p.add_argument("--text", required=True, help="a text file, or - for standard input")
    p.add_argument("--top", type=_at_least(1), default=10, help="codes to show (default 10)")
    p.add_argument("--spans", type=_at_least(0), default=3, help="attention spans per code, label-attention models (default 3)")
    p.add_argument("--cwd", default=os.getcwd(), help="where a relative --model and --text start (default: here)")
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


def user_message(e: BaseException) -> str | None:
    """The one message to print for a user error (ours, or one raised in a notebook cell); None: show the traceback."""
    from papermill.exceptions import PapermillExecutionError

    from .errors import UserError, cell_failure

    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, PapermillExecutionError):
        executed = getattr(e, "executed_notebook", None)
        return cell_failure(e, executed, executed.stem if executed else "?")
    return None


def main(argv: list[str] | None = None) -> None:
    """Run one command. A user error prints one line-or-few message and exits 1 (``--debug``: the traceback too);
    a failing notebook cell that is not a user error prints its traceback; anything else raises."""
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(f"mcanb {args.cmd}: interrupted; the next call resumes where this one stopped")
    except Exception as e:  # noqa: BLE001 - sorted into user errors (one message) and the rest (traceback)
        msg = user_message(e)
        if msg is not None and not getattr(args, "debug", False):
            sys.exit(f"mcanb {args.cmd}: error: {msg}")
        if type(e).__name__ == "PapermillExecutionError":
            where = getattr(e, "executed_notebook", "its outputs folder")
            sys.exit(f"mcanb {args.cmd}: a notebook cell failed (the executed notebook {where} shows where; the "
                     f"next call resumes):\n{e}")
        if isinstance(e, FileNotFoundError) and not getattr(args, "debug", False):
            sys.exit(f"mcanb {args.cmd}: error: {e}")
        raise


if __name__ == "__main__":
    main()
