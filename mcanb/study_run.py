"""Running notebooks with their fingerprint records: one run (``mcanb run``) and a whole profile (``mcanb study``).

:func:`execute_run` writes the run folder's ``.mcanb-run.json`` (:data:`mcanb.study.RECORD`) before, and again after,
the notebook runs. A run whose fingerprint changed has its folder emptied first, so no stale file survives; a run
interrupted with the same fingerprint is rerun *in place* with ``resume=True`` (for notebooks that have that
parameter, e.g. notebook 04, whose training runs continue from ``checkpoints/last.pt`` and give the same numbers as an
uninterrupted run). :func:`run_study` checks every run of a profile before the first one starts, then runs what is
not up to date (:mod:`mcanb.study` plans): in order, or with ``jobs`` > 1 several at once, each as soon as what it
reads has finished. Explained in the README section "The whole study".
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__
from . import params as P
from .paths import NOTEBOOKS, OUTPUTS, ROOT, TOY_MIMIC, out_dir, shown
from .study import (RECORD, DamagedRecord, RunSpec, StudyError, fingerprint, input_paths, load_profile, parts,
                    preflight, read_record, why)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_record(run_dir: Path, rec: dict[str, Any]) -> None:
    tmp = run_dir / f"{RECORD}.tmp"
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    os.replace(tmp, run_dir / RECORD)


def _started(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``), or None where that is not known."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` is running, and is the one that started at ``started`` (a record's ``pid_started``):
    after a restart another process may have that number (containers start again from 1)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _started(pid) in (None, started)


def execute_run(notebook: str, run: str, overrides: dict[str, Any] | None = None, *, reads: list[str] | None = None,
                timeout: int | None = None, progress: bool = True, progress_bar: bool = True) -> Path:
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
    if (rec and rec.get("status") == "running" and rec.get("pid") != os.getpid()
            and _pid_alive(int(rec.get("pid", 0)), rec.get("pid_started"))):
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
              "status": "running", "pid": os.getpid(), "pid_started": _started(os.getpid()), "started": _now(),
              "mcanb_version": __version__,
              "overrides": spec.overrides}
    _write_record(run_dir, record)
    try:
        defaults = P.notebook_defaults(NOTEBOOKS / f"{notebook}.ipynb")
        from .paths import RUNS, resolve as resolve_path
        also = (resolve_path(values.get("runs_dir") or defaults.get("runs_dir") or RUNS),)  # the run store (mcanb.grid)
        with Monitor(run_dir, f"{notebook}/{spec.run_name}", enabled=progress, also=also):
            path = pipeline.execute(notebook, run, values, timeout=timeout, progress_bar=progress_bar)
    except BaseException as e:
        e.executed_notebook = run_dir / f"{notebook}.ipynb"      # where the cell's full traceback is (mcanb.errors)
        _write_record(run_dir, {**record, "status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                                "seconds": round(time.time() - started, 1)})
        raise
    _write_record(run_dir, {**record, "status": "done", "finished": _now(), "seconds": round(time.time() - started, 1)})
    echo_warnings(run_dir, f"{notebook}/{spec.run_name}")
    return path


def echo_warnings(run_dir: Path, label: str) -> list[str]:
    """Print the ``warnings`` of the run's ``report.json`` (notebook 01: inputs read twice, large shares of records
    dropped) on the terminal, where the notebook's own output is not shown; returns them."""
    try:
        found = json.loads((run_dir / "report.json").read_text()).get("warnings") or []
    except (OSError, ValueError, AttributeError):
        return []
    for w in found:
        print(f"[mcanb] {label}: warning: {w}", file=sys.stderr, flush=True)
    return found


def run_study(profile: str, *, dry_run: bool = False, echo: Callable[[str], None] = print,
              timeout: int | None = None, jobs: int | None = None) -> list[tuple[RunSpec, str]]:
    """``mcanb study PROFILE``: run what is not up to date (``mcanb study`` then writes the report).

    With ``dry_run`` only prints the plan. ``jobs`` (default: the profile's ``jobs``, else 1): notebook runs at once;
    with more than one, each run starts as soon as every run it ``reads`` has finished (:func:`_run_parallel`).
    Returns ``[(spec, reason)]`` as planned before running.
    """
    prof = load_profile(profile)
    jobs = jobs or prof.jobs
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
            except (P.ParameterError, StudyError) as e:
                problems.append(str(e))
        steps.append((spec, reason))
    width = max(len(s.key) for s, _ in steps)
    echo(f"study '{prof.name}' ({shown(prof.path)}): "
         f"{sum(r != 'up to date' for _, r in steps)} of {len(steps)} runs to do"
         + (f", up to {jobs} at once" if jobs > 1 else ""))
    for i, (spec, reason) in enumerate(steps, 1):
        what = "skip: up to date" if reason == "up to date" else f"run: {reason}"
        echo(f"  [{i}/{len(steps)}] {spec.key:<{width}}  {what}")
    if problems:
        raise StudyError(f"{len(problems)} problem(s) found before running anything"
                         + (" (dry run)" if dry_run else "") + ":\n" + "\n".join(f"- {p}" for p in problems))
    if dry_run:
        return steps
    t0 = time.time()
    todo = [(i, spec) for i, (spec, reason) in enumerate(steps, 1)
            if not (reason == "up to date" and why(spec, set()) == "up to date")]
    reasons = {spec.key: reason for spec, reason in steps}
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, reasons, len(steps), jobs, echo, timeout)
    else:
        for i, spec in todo:
            echo(f"[{i}/{len(steps)}] {spec.key}: {reasons[spec.key]}")
            t = time.time()
            execute_run(spec.notebook, spec.run, spec.overrides, reads=spec.reads, timeout=timeout)
            echo(f"[{i}/{len(steps)}] {spec.key}: done in {time.time() - t:.0f} s")
    echo(f"study '{prof.name}': finished in {time.time() - t0:.0f} s")
    return steps


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def step_spec(spec: RunSpec, timeout: int | None) -> str:
    """The JSON argument of ``mcanb step``: what :func:`execute_run` needs to run ``spec``."""
    return json.dumps({"notebook": spec.notebook, "run": spec.run, "overrides": spec.overrides,
                       "reads": spec.reads, "timeout": timeout})


def run_step(arg: str) -> Path:
    """``mcanb step SPEC``: one run of a parallel study, without papermill's progress bar (several would interleave);
    its training progress lines name the run."""
    s = json.loads(arg)
    return execute_run(s["notebook"], s["run"], s["overrides"], reads=s["reads"], timeout=s["timeout"],
                       progress_bar=False)


def _run_parallel(todo: list[tuple[int, RunSpec]], reasons: dict[str, str], total: int, jobs: int,
                  echo: Callable[[str], None], timeout: int | None) -> None:
    """Up to ``jobs`` runs at once, each in its own ``mcanb step`` process (its own environment and kernel), each
    started once every run of ``todo`` that it reads has finished. A failed run stops new starts; the runs already
    going finish (their results stay usable), then the study stops with the failed runs named (each printed its own
    message above). A SIGTERM to the study (a batch scheduler's stop, ``kill``) is passed on to the running steps
    before the study ends the way it would alone; each killed run resumes at the next ``mcanb study``. (Ctrl-C in a
    terminal reaches every process of the group by itself.)"""
    import signal
    import subprocess
    import sys
    import threading

    pending = list(todo)

    share = str(max(1, usable_cores() // jobs))   # each run's share of the cores, unless the caller set the threads
    env = {**{v: share for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}, **os.environ}

    procs: dict[str, Any] = {}                # the running steps' processes, by run key

    def one(spec: RunSpec) -> int:
        proc = subprocess.Popen([sys.executable, "-m", "mcanb.cli", "step", step_spec(spec, timeout)], cwd=ROOT,
                                env=env)
        procs[spec.key] = proc
        try:
            return proc.wait()
        finally:
            procs.pop(spec.key, None)

    def pass_on(signum, frame) -> None:       # SIGTERM: to every running step, then to this process as before
        for proc in list(procs.values()):
            proc.send_signal(signum)
        signal.signal(signum, before)
        os.kill(os.getpid(), signum)

    main = threading.current_thread() is threading.main_thread()   # signal handlers live in the main thread only
    before = (signal.signal(signal.SIGTERM, pass_on) or signal.SIG_DFL) if main else None
    try:
        failed = _schedule(pending, jobs, total, reasons, echo, one)
    finally:
        if main:
            signal.signal(signal.SIGTERM, before)
    if failed:
        not_run = [s.key for _, s in pending]
        raise StudyError(f"{', '.join(failed)} failed (its message is above; the next `mcanb study` resumes it)"
                         + (f"; not started: {', '.join(not_run)}" if not_run else ""))


def _schedule(pending: list[tuple[int, RunSpec]], jobs: int, total: int, reasons: dict[str, str],
              echo: Callable[[str], None], one: Callable[[RunSpec], int]) -> list[str]:
    """:func:`_run_parallel`'s loop: start what is ready (up to ``jobs``), wait for one to end, repeat. Returns the
    failed runs' keys; ``pending`` keeps what never started."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    unfinished = {spec.key for _, spec in pending}
    failed: list[str] = []
    running: dict[Any, tuple[int, RunSpec, float]] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            ready = [] if failed else [(i, s) for i, s in pending if not set(s.reads) & unfinished]
            for i, spec in ready[:jobs - len(running)]:
                pending.remove((i, spec))
                echo(f"[{i}/{total}] {spec.key}: {reasons[spec.key]} (started beside {len(running)} other run(s))"
                     if running else f"[{i}/{total}] {spec.key}: {reasons[spec.key]}")
                running[pool.submit(one, spec)] = (i, spec, time.time())
            if not running:
                break                                 # a failure left nothing to wait for
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i, spec, t = running.pop(future)
                if future.result() == 0:
                    unfinished.discard(spec.key)
                    echo(f"[{i}/{total}] {spec.key}: done in {time.time() - t:.0f} s")
                else:
                    failed.append(spec.key)
                    echo(f"[{i}/{total}] {spec.key}: failed after {time.time() - t:.0f} s"
                         + (f"; waiting for {len(running)} running run(s) to finish" if running else ""))
    return failed
