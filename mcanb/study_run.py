"""Running notebooks with their fingerprint records: one run (``mcanb run``) and a whole profile (``mcanb study``).

:func:`execute_run` writes the run folder's ``.mcanb-run.json`` (:data:`mcanb.study.RECORD`) before, and again after,
the notebook runs. A run whose fingerprint changed has its folder emptied first, so no stale file survives; a run
interrupted with the same fingerprint is rerun *in place* with ``resume=True`` (for notebooks that have that
parameter, e.g. notebook 04, whose training runs continue from ``checkpoints/last.pt`` and give the same numbers as an
uninterrupted run). :func:`run_study` checks every run of a profile before the first one starts, then runs in order
what is not up to date (:mod:`mcanb.study` plans). Explained in the README section "The whole study".
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__
from . import params as P
from .paths import NOTEBOOKS, OUTPUTS, ROOT, TOY_MIMIC, out_dir
from .study import (RECORD, DamagedRecord, RunSpec, StudyError, fingerprint, input_paths, load_profile, parts,
                    preflight, read_record, why)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_record(run_dir: Path, rec: dict[str, Any]) -> None:
    tmp = run_dir / f"{RECORD}.tmp"
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    os.replace(tmp, run_dir / RECORD)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def execute_run(notebook: str, run: str, overrides: dict[str, Any] | None = None, *, reads: list[str] | None = None,
                timeout: int | None = None, progress: bool = True) -> Path:
    """Run one notebook (``mcanb run`` and every step of ``mcanb study``) and keep its fingerprint record.

    A folder whose record has another fingerprint (or no record) is emptied first; a folder interrupted with
    the same fingerprint is reused and the notebook called with ``resume=True`` when it has that parameter.
    Returns the executed notebook's path. Refuses to start while another live process runs the same folder.
    """
    from . import pipeline
    from .progress import Monitor

    spec = RunSpec(notebook, run, dict(overrides or {}), list(reads or []))
    preflight(spec)
    if input_paths(spec).get("input_path") == TOY_MIMIC:
        from .notebook import toy_mimic
        toy_mimic()                           # generated before it is fingerprinted, as the notebook would
    fp_parts = parts(spec)
    fp = fingerprint(fp_parts)
    rec = read_record(OUTPUTS / spec.key)
    run_dir = out_dir(notebook, spec.run_name)
    if rec and rec.get("status") == "running" and rec.get("pid") != os.getpid() and _pid_alive(int(rec.get("pid", 0))):
        raise StudyError(f"{run_dir}: process {rec['pid']} is running this notebook now (started {rec.get('started')});"
                         f" wait for it or stop it, then call again")
    values = dict(spec.overrides)
    if rec is None or rec.get("fingerprint") != fp:
        for child in run_dir.iterdir():                       # stale outputs of other settings must not survive
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    elif "resume" in P.notebook_defaults(NOTEBOOKS / f"{notebook}.ipynb"):
        values["resume"] = True
    started = time.time()
    record = {"notebook": notebook, "run": run, "parameter_file": pipeline.describe_source(notebook, run),
              "run_name": spec.run_name, "fingerprint": fp, "parts": fp_parts,
              "status": "running", "pid": os.getpid(), "started": _now(), "mcanb_version": __version__,
              "overrides": spec.overrides}
    _write_record(run_dir, record)
    try:
        defaults = P.notebook_defaults(NOTEBOOKS / f"{notebook}.ipynb")
        from .paths import RUNS, resolve as resolve_path
        also = (resolve_path(values.get("runs_dir") or defaults.get("runs_dir") or RUNS),)  # the run store (mcanb.grid)
        with Monitor(run_dir, f"{notebook}/{spec.run_name}", enabled=progress, also=also):
            path = pipeline.execute(notebook, run, values, timeout=timeout)
    except BaseException as e:
        e.executed_notebook = run_dir / f"{notebook}.ipynb"      # where the cell's full traceback is (mcanb.errors)
        _write_record(run_dir, {**record, "status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                                "seconds": round(time.time() - started, 1)})
        raise
    _write_record(run_dir, {**record, "status": "done", "finished": _now(), "seconds": round(time.time() - started, 1)})
    return path


def run_study(profile: str, *, dry_run: bool = False, echo: Callable[[str], None] = print,
              timeout: int | None = None) -> list[tuple[RunSpec, str]]:
    """``mcanb study PROFILE``: run what is not up to date, in order (``mcanb study`` then writes the report).

    With ``dry_run`` only prints the plan. Returns ``[(spec, reason)]`` as planned before running.
    """
    prof = load_profile(profile)
    steps: list[tuple[RunSpec, str]] = []
    rerun: set[str] = set()
    problems: list[str] = []                    # found before any run starts, reported by --dry-run too
    for spec in prof.runs:                      # plan lazily: a later run's fingerprint needs the earlier ones
        try:
            reason = why(spec, rerun)
        except DamagedRecord as e:
            reason = "refused: damaged run record"
            problems.append(str(e))
        except StudyError:
            reason = "input not finished"
        if reason != "up to date":
            rerun.add(spec.key)
            try:
                preflight(spec, [OUTPUTS / s.key for s, _ in steps])
            except P.ParameterError as e:
                problems.append(str(e))
        steps.append((spec, reason))
    width = max(len(s.key) for s, _ in steps)
    echo(f"study '{prof.name}' ({prof.path.relative_to(ROOT) if ROOT in prof.path.parents else prof.path}): "
         f"{sum(r != 'up to date' for _, r in steps)} of {len(steps)} runs to do")
    for i, (spec, reason) in enumerate(steps, 1):
        what = "skip: up to date" if reason == "up to date" else f"run: {reason}"
        echo(f"  [{i}/{len(steps)}] {spec.key:<{width}}  {what}")
    if problems:
        raise StudyError(f"{len(problems)} problem(s) found before running anything"
                         + (" (dry run)" if dry_run else "") + ":\n" + "\n".join(f"- {p}" for p in problems))
    if dry_run:
        return steps
    t0 = time.time()
    for i, (spec, reason) in enumerate(steps, 1):
        if reason == "up to date" and why(spec, set()) == "up to date":
            continue
        echo(f"[{i}/{len(steps)}] {spec.key}: {reason}")
        t = time.time()
        execute_run(spec.notebook, spec.run, spec.overrides, reads=spec.reads, timeout=timeout)
        echo(f"[{i}/{len(steps)}] {spec.key}: done in {time.time() - t:.0f} s")
    echo(f"study '{prof.name}': finished in {time.time() - t0:.0f} s")
    return steps
