"""The ``mcanb`` command: one notebook, the whole study, the report, predictions for a new note, JupyterLab.

::

    mcanb run NOTEBOOK RUN [-p KEY VALUE]...   # one notebook with parameters/<NOTEBOOK>/<RUN>.yaml or RUN.yaml
    mcanb study PROFILE [--dry-run] [--jobs N] # every run of parameters/study/<PROFILE>.yaml not up to date
    mcanb report PROFILE                       # outputs/report/<PROFILE>/index.html + report.md
    mcanb predict --model RUN_DIR --text FILE  # top codes of a new note (FILE or - for stdin)
    mcanb runs [--prune [--dry-run]]           # the run store outputs/runs/; remove the unused runs
    mcanb lab [PROFILE] [--port N]             # JupyterLab on notebooks/ and outputs/; a profile's runs open
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

from .paths import shown

STEP_COMMAND = "step"      # the hidden command that runs one step of a parallel study (mcanb.study_run.run_step)


def _overrides(pairs: list[list[str]] | None) -> dict[str, Any]:
    from .errors import load_yaml, yaml_problem
    from .params import ParameterError

    out, typed = {}, {}
    for k, v in pairs or []:
        if k in out:                              # the shell gives both; which one was meant is not ours to guess
            raise ParameterError(f"-p {k} is given twice ({typed[k]} and {v}); give it once")
        typed[k] = v
        try:
            out[k] = load_yaml(v)
        except yaml.YAMLError as e:
            raise ParameterError(yaml_problem(f"-p {k} {v!r}", e) + "; quote lists as \"[a, b]\"") from e
    return out


def _cmd_run(args) -> None:
    from .paths import OUTPUTS
    from .pipeline import is_file_argument, parameter_file, resolve_path_overrides
    from .study import RunSpec, preflight, read_record
    from .study_run import execute_run

    overrides = resolve_path_overrides(_overrides(args.p), args.cwd)   # relative -p paths are the caller's
    if is_file_argument(args.run):                                     # ... and so is a parameter file's path
        args.run = str(parameter_file(args.notebook, args.run, args.cwd))
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
    from .report import write_report
    from .study import load_profile
    from .study_run import run_study

    if args.rehearse:
        from .errors import UserError
        from .rehearse import rehearse_study
        given = [o for o, on in (("--dry-run", args.dry_run), ("--jobs", args.jobs is not None),
                                 ("--no-report", args.no_report), ("--timeout", args.timeout is not None)) if on]
        if given:                           # silently ignored, a "dry run" would start the full-scale rehearsal
            raise UserError(f"--rehearse runs the profile at MIMIC-III scale with settings of its own; "
                            f"{', '.join(given)} cannot apply to it: leave {'it' if len(given) == 1 else 'them'} out "
                            f"(`mcanb study {args.profile} --dry-run` lists what the study itself would run)")
        rehearse_study(args.profile)        # the profile at MIMIC-III scale on the fixture, capped runs, a cost table
        return
    profile = load_profile(args.profile)        # a bad profile stops here, before anything runs
    try:
        run_study(args.profile, dry_run=args.dry_run, timeout=args.timeout, jobs=args.jobs)
    finally:                                    # after a failure too: the report says which run failed and why
        if not args.dry_run and not args.no_report:
            html = write_report(profile)
            print(f"report: {shown(html)}")


def _cmd_step(args) -> None:
    from .study_run import run_step

    run_step(args.spec)


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
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"--text {source}: {name} is not UTF-8 text (byte {raw[e.start:e.start + 1]!r} at offset "
                        f"{e.start}); convert it first, e.g. `iconv -f latin1 -t utf-8 NOTE > note.txt`") from e
    if not text.strip():                 # said before the model loads
        raise UserError(f"--text {source}: {name} is empty: give the text of a note")
    return text


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
    from .runs import missing_model, used_run  # a notebook run folder, a row and a seed: the training run it used
    for candidate in (here, *([resolve(p)] if not p.is_absolute() and p.parts[:1] == ("outputs",) else [])):
        if (found := used_run(candidate)) is not None:
            return found
    raise UserError(missing_model(model, here, cwd))      # not run yet (and the command), or what --model expects


def _cmd_predict(args) -> None:
    model = _model_dir(args.model, args.cwd)
    text = _read_note(args.text, args.cwd)                 # both checked before torch and the model load
    from .predict import format_prediction, load_predictor

    predictor = load_predictor(model)
    print(format_prediction(predictor.predict(text, top=args.top, spans=args.spans)))


def _cmd_runs(args) -> None:
    from .runs import main as runs_main

    runs_main(prune_unused=args.prune, dry_run=args.dry_run)


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
    from .pipeline import numbered_notebooks, parameter_files
    from .study import STUDY_PROFILES

    for nb in numbered_notebooks():
        runs, bases = parameter_files(nb)
        print(f"{nb}: {', '.join(runs) or '(defaults only)'}" + (f"  (bases: {', '.join(bases)})" if bases else ""))
    print("study profiles: " + ", ".join(sorted(p.stem.replace("_", "-") for p in STUDY_PROFILES.glob("*.yaml"))))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mcanb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    r = sub.add_parser("run", parents=[common], help="one notebook with parameters/<NOTEBOOK>/<RUN>.yaml or a YAML file's path")
    r.add_argument("notebook", help="e.g. 04_cnn_retraining")
    r.add_argument("run", help="e.g. toy (parameters/<notebook>/<run>.yaml) or path/to/mine.yaml "
                               "(run_name defaults to the file's stem)")
    r.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"), help="override a parameter (YAML value)")
    r.add_argument("--timeout", type=_at_least(1), default=None, help="seconds per cell (default: none)")
    r.add_argument("--dry-run", action="store_true", help="check the parameter file and overrides, print them; run nothing")
    r.add_argument("--cwd", default=os.getcwd(), help="where relative paths given with -p start (default: here)")
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("study", parents=[common], help="the whole study for a profile (toy, mimic3-50, mimic3-full or a YAML path)")
    s.add_argument("profile")
    s.add_argument("--dry-run", action="store_true", help="list what would run and why; run nothing")
    s.add_argument("--no-report", action="store_true", help="do not write outputs/report/ at the end")
    s.add_argument("--timeout", type=_at_least(1), default=None, help="seconds per cell (default: none)")
    s.add_argument("--rehearse", action="store_true", help="rehearse at MIMIC-III scale on the fixture with stand-in "
                   "encoders and capped training; print what each run costs (outputs/rehearsal/)")
    s.add_argument("--jobs", type=_at_least(1), default=None, help="notebook runs at once, each started when what it "
                   "reads is done (default: the profile's `jobs`, else 1)")
    s.set_defaults(func=_cmd_study)
    step = sub.add_parser(STEP_COMMAND, parents=[common])   # internal: one run of `mcanb study --jobs N`
    step.add_argument("spec", help="JSON (mcanb.study_run.step_spec)")
    step.set_defaults(func=_cmd_step)
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
    rs = sub.add_parser("runs", help="the run store outputs/runs/: status, what each was made from, who uses it")
    rs.add_argument("--prune", action="store_true", help="remove the runs that no notebook result uses")
    rs.add_argument("--dry-run", action="store_true", help="with --prune: list what would be removed; remove nothing")
    rs.set_defaults(func=_cmd_runs)
    lab = sub.add_parser("lab", help="JupyterLab on notebooks/ and outputs/ (the executed notebooks)")
    lab.add_argument("profile", nargs="?", help="open the executed notebooks of this study profile (e.g. toy)")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--ip", default="127.0.0.1", help="listen address (default: this machine only)")
    lab.add_argument("--no-browser", action="store_true")
    lab.add_argument("--allow-root", action="store_true", help="let JupyterLab run as root (containers)")
    lab.set_defaults(func=_cmd_lab)
    ls = sub.add_parser("list", help="notebooks, parameter files and study profiles")
    ls.set_defaults(func=_cmd_list)
    sub.metavar = "{" + ",".join(c for c in sub.choices if c != STEP_COMMAND) + "}"   # the internal one unlisted
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


def _check_command(ap: argparse.ArgumentParser, argv: list[str]) -> None:
    """A misspelt command is one line naming the commands a user can call (argparse's own message would list the
    internal ``step`` too) and the nearest one."""
    from .params import close_names

    given = next((a for a in argv if not a.startswith("-")), None)
    commands = next(a.choices for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    if given is None or given in commands:
        return
    shown = [c for c in commands if c != STEP_COMMAND]
    close = close_names(given, shown, n=1)
    ap.error(f"unknown command {given!r}" + (f" (did you mean {close[0]}?)" if close else "")
             + f"; choose from {', '.join(shown)}")


def _check_overrides(ap: argparse.ArgumentParser, argv: list[str]) -> None:
    """``-p seeds [13, 14]`` unquoted: the shell cuts the value at its spaces and argparse would say only
    "unrecognized arguments: 14]". One line naming the parameter and how to quote it instead."""
    for i in range(len(argv) - 2):
        key, value = argv[i + 1], argv[i + 2]
        if argv[i] != "-p" or value[:1] not in ("[", "{"):
            continue
        close = "]" if value[0] == "[" else "}"
        words = [value]
        for word in argv[i + 3:]:
            if "".join(words).count(value[0]) <= "".join(words).count(close):
                break
            words.append(word)
        if len(words) > 1:
            ap.error(f"-p {key} {' '.join(words)}: the shell cut the value at its spaces; quote it as one word: "
                     f"-p {key} \"{' '.join(words)}\"")


def main(argv: list[str] | None = None) -> None:
    """Run one command. A user error prints one line-or-few message and exits 1 (``--debug``: the traceback too);
    a failing notebook cell that is not a user error prints its traceback; anything else raises."""
    ap = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _check_command(ap, argv)
    _check_overrides(ap, argv)
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(f"mcanb {args.cmd}: interrupted; the next call resumes where this one stopped")
    except BrokenPipeError:          # `mcanb runs | head`: the reader stopped; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error when Python flushes it
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - sorted into user errors (one message) and the rest (traceback)
        msg = user_message(e)
        if msg is not None and not getattr(args, "debug", False):
            sys.exit(f"mcanb {args.cmd}: error: {msg}")
        if type(e).__name__ == "CellTimeoutError" and not getattr(args, "debug", False):   # nbclient's, --timeout
            sys.exit(f"mcanb {args.cmd}: error: a notebook cell ran longer than --timeout {args.timeout} s and was "
                     "stopped (the executed notebook, named above, shows which); raise --timeout or leave it out, "
                     "and call again: finished training runs are reused and a stopped one resumes")
        if type(e).__name__ == "PapermillExecutionError":
            where = getattr(e, "executed_notebook", "its outputs folder")
            sys.exit(f"mcanb {args.cmd}: a notebook cell failed (the executed notebook {where} shows where; the "
                     f"next call resumes):\n{e}")
        if isinstance(e, FileNotFoundError) and not getattr(args, "debug", False):
            sys.exit(f"mcanb {args.cmd}: error: {e}")
        raise


if __name__ == "__main__":
    main()
