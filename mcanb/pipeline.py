"""Running one notebook with papermill: its parameter file resolved and checked, the target folder, the run.

The one command is ``mcanb run NOTEBOOK RUN`` (``python run.py run`` and ``make run`` call it; ``mcanb study``
runs a profile's notebooks through the same :func:`execute`). ``RUN`` names ``parameters/<NOTEBOOK>/<RUN>.yaml``
or is the path of a YAML file anywhere on disk (``mcanb run 01_preprocess ~/corpora/mycorpus.yaml``). A file may
extend another (``extends:``, :mod:`mcanb.params`); a base file (``*_base.yaml``) is never run by itself.
``run_name`` defaults to the file's stem. Each run writes ``outputs/<notebook>/<run_name>/<notebook>.ipynb``
beside the tables, figures, ``metrics.json`` and ``params.yaml`` (the resolved parameters, headed by the file
they came from) that the notebook itself writes.

Relative paths: values in parameter files are taken from the repository root (``mcanb.paths.resolve``); a
parameter file's own path and path values given on the command line (``-p input_path notes.csv``) are taken
from the caller's working directory (``--cwd``, which ``run.py`` sets) and made absolute before papermill runs,
with an error naming the parameter when the path does not exist. The same holds for encoder folders in
``-p encoders "[./my_encoder]"`` and for the folders a run creates (``runs_dir``, ``encoders_dir``).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import params as P
from .paths import NOTEBOOKS, PARAMETER_FILE_ENV, PARAMETERS, ROOT, TOY_MIMIC, TOY_PREPROCESSED, out_dir, shown


def kernel_manager(stderr: Any = None) -> dict[str, Any]:
    """papermill's keyword for the kernel manager of a run: a kernel that talks over Unix sockets (IPC), each in a
    name of its own under the temporary folder, not over TCP ports of localhost. Only this process talks to the
    kernel, and over TCP ipykernel warns on every start that the traffic is unencrypted, a line on the terminal of
    every ``mcanb run``. Empty (papermill's TCP default) where there are no Unix sockets (Windows). ``stderr``: a
    file the kernel process writes its own standard error to (:func:`execute`), instead of this process's."""
    if os.name == "nt":
        return {}
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:       # the sockets' path prefix; jupyter_client's is relative to the cwd
            return os.path.join(tempfile.gettempdir(), f"mcanb-kernel-{uuid.uuid4().hex[:16]}")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            return await super()._async_launch_kernel(kernel_cmd, **(kw if stderr is None else {**kw, "stderr": stderr}))

    return {"kernel_manager_class": IpcKernelManager}


def _pass_on(kernel_stderr: Any, stopped: bool) -> None:
    """Print what the kernel process wrote to its own standard error (a cell's output is in the notebook, not
    here: a crash's last words, a library's C-level warning) and close the file. When ``--timeout`` stopped a cell,
    the kernel's traceback of its own interrupted reply (a ZMQError) is left out: it says nothing of the notebook and
    would bury the one-line message that follows; what came before it is printed."""
    with kernel_stderr:
        kernel_stderr.seek(0)
        said = kernel_stderr.read().decode("utf-8", "replace")
    if stopped and "ZMQError" in said:
        start = said.rfind("Traceback (most recent call last)", 0, said.rfind("ZMQError"))
        said = said[:start] if start >= 0 else ""
    if said.strip():
        sys.stderr.write(said if said.endswith("\n") else said + "\n")
        sys.stderr.flush()


def numbered_notebooks() -> list[str]:
    """Names (without .ipynb) of ``notebooks/NN_*.ipynb`` in order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# Parameters that hold a path to something that must already exist, and the non-path words each accepts
# ("" = the notebook's default; splits_dir "caml" = download CAML's files).
PATH_PARAMETERS: dict[str, frozenset[str]] = {"input_path": frozenset({""}), "data_dir": frozenset({""}),
                                              "splits_dir": frozenset({"", "caml"})}
BUILT_ON_DEMAND = (TOY_MIMIC, TOY_PREPROCESSED)   # the notebooks generate these when missing
# Parameters naming a folder a run creates when missing (taken from the caller's directory too, not checked).
OUTPUT_PATH_PARAMETERS = ("runs_dir", "encoders_dir")


def resolve_path_overrides(overrides: dict[str, Any], cwd: str | Path) -> dict[str, Any]:
    """``overrides`` with every relative path in ``PATH_PARAMETERS`` and ``OUTPUT_PATH_PARAMETERS``, and every
    path among the ``encoders``, made absolute against ``cwd``.

    ``~`` and ``$VARS`` are expanded first. A path that does not exist is a ``ParameterError`` naming the
    parameter, the value as typed and where it was looked for. Example: from ``/home/me/data``,
    ``{"input_path": "notes.csv"}`` -> ``{"input_path": "/home/me/data/notes.csv"}``.
    """
    out = dict(overrides)
    for key, value in overrides.items():
        if key == "encoders" and isinstance(value, (list, tuple)):
            out[key] = [_encoder_path(v, cwd) for v in value]
        if key in OUTPUT_PATH_PARAMETERS and isinstance(value, str) and value:
            out[key] = str(_from(value, cwd).resolve())
        if key not in PATH_PARAMETERS or not isinstance(value, str) or value in PATH_PARAMETERS[key]:
            continue
        path = _from(value, cwd)
        if not path.exists() and path.resolve() not in BUILT_ON_DEMAND:
            raise P.ParameterError(f"command-line override -p {key} {value}: {path} does not exist (relative "
                                   f"paths on the command line are taken from your working directory, {cwd})")
        out[key] = str(path.resolve())
    return out


def _from(value: str, cwd: str | Path) -> Path:
    """``value`` with ``~`` and ``$VARS`` expanded, taken from ``cwd`` when relative."""
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else Path(cwd) / path


def _encoder_path(name: Any, cwd: str | Path) -> Any:
    """An ``encoders`` entry typed on the command line: made absolute against ``cwd`` when it is a path (starts
    with ``.``, ``/`` or ``~``, or holds a ``/`` and exists there); names and hub ids (``owner/name``) stay."""
    if not isinstance(name, str) or name.startswith("local:"):
        return name
    path = _from(name, cwd)
    if name.startswith((".", "/", "~")) or (os.sep in name and path.exists()):
        return str(path.resolve())
    return name


def is_file_argument(run: str) -> bool:
    """True when ``run`` is the path of a YAML file rather than a name in ``parameters/<notebook>/``."""
    return Path(run).suffix in (".yaml", ".yml")


def parameter_file(notebook: str, run: str, cwd: str | Path | None = None) -> Path:
    """``parameters/<notebook>/<run>.yaml``, or ``run`` itself when it is a YAML path (relative to ``cwd``).

    Example: ``parameter_file("01_preprocess", "toy")`` -> ``<repo>/parameters/01_preprocess/toy.yaml``;
    ``parameter_file("01_preprocess", "my.yaml", "/home/me")`` -> ``/home/me/my.yaml``.
    """
    if is_file_argument(run):
        return _from(run, cwd or os.getcwd())
    return PARAMETERS / notebook / f"{run}.yaml"


def parameter_files(notebook: str) -> tuple[list[str], list[str]]:
    """``(runs, bases)``: the stems of ``parameters/<notebook>/*.yaml`` that can run, and the base files."""
    stems = sorted(p.stem for p in (PARAMETERS / notebook).glob("*.yaml"))
    return [s for s in stems if not P.is_base(s)], [s for s in stems if P.is_base(s)]


def describe_source(notebook: str, run: str) -> str:
    """The parameter file behind a run and what it extends, for records: ``a.yaml (extends b.yaml, c.yaml)``."""
    file = parameter_file(notebook, run)
    if not file.exists():
        return f"{shown(file)} (absent: the notebook's defaults)"
    chain = [shown(f) for f in P.extends_chain(file)]
    return chain[0] + (f" (extends {', '.join(chain[1:])})" if len(chain) > 1 else "")


def source_file(notebook: str, run: str) -> str:
    """The parameter file alone, as :func:`describe_source` starts with it (its path normalised)."""
    return shown(Path(os.path.normpath(parameter_file(notebook, run).absolute())))


def _file_values(notebook: str, run: str) -> tuple[Path, dict[str, Any]]:
    file = parameter_file(notebook, run)
    if P.is_base(file):
        users = [f"{nb}/{r}" for nb in numbered_notebooks() for r in parameter_files(nb)[0]
                 if file in P.extends_chain(PARAMETERS / nb / f"{r}.yaml")]
        raise P.ParameterError(f"{shown(file)}: a base file (shared settings that other files extend), not a run; "
                               f"run one that extends it: {', '.join(users) or '(none yet)'}")
    if not file.exists():
        if run == "toy":                      # every notebook runs on the toy fixture with its defaults
            return file, {}
        runs, _ = parameter_files(notebook)
        raise P.ParameterError(f"{shown(file)}: parameter file not found (parameters/{notebook}/ has: "
                               f"{', '.join(runs) or 'none'}; or give the path of a YAML file)")
    return file, P.load_file(file)


def run_name(notebook: str, run: str, overrides: dict[str, Any] | None = None) -> str:
    """The output folder name of a run: an override, else the file's ``run_name``, else the file's stem."""
    if overrides and "run_name" in overrides:
        return str(overrides["run_name"])
    file, values = _file_values(notebook, run)
    return str(values.get("run_name", file.stem))


def resolve_parameters(notebook: str, run: str, overrides: dict[str, Any] | None = None,
                       overrides_source: str = "command-line override") -> dict[str, Any]:
    """Parameters of the run's file (``extends`` resolved) plus overrides, checked against the notebook
    (``overrides_source`` names where the overrides come from in a message: ``-p``, a study profile's ``params``)."""
    nb_path = NOTEBOOKS / f"{notebook}.ipynb"
    if not nb_path.exists():
        raise P.ParameterError(f"{nb_path}: no such notebook (have: {', '.join(numbered_notebooks())})")
    defaults = P.notebook_defaults(nb_path)
    file, values = _file_values(notebook, run)
    values = P.coerce(values, defaults)
    P.check(values, defaults, shown(file))
    overrides = P.coerce(overrides or {}, defaults)
    P.check(overrides, defaults, overrides_source)
    values = {**values, **overrides}
    if "run_name" in defaults:
        values.setdefault("run_name", file.stem)
    return values


def execute(notebook: str, run: str, overrides: dict[str, Any] | None = None, timeout: int | None = None,
            dry_run: bool = False, progress_bar: bool = True) -> Path:
    """Run one notebook with papermill; return the executed copy's path.

    ``dry_run``: check and print the resolved parameters and the target, execute nothing, create nothing.
    """
    import papermill as pm

    values = resolve_parameters(notebook, run, overrides)
    target = out_dir(notebook, str(values.get("run_name", run)), create=not dry_run) / f"{notebook}.ipynb"
    source = describe_source(notebook, run)
    label = Path(run).name if is_file_argument(run) else run
    if dry_run:
        print(f"[mcanb] dry run: {notebook} / {label} -> {shown(target)}\n# parameter file: {source}\n"
              + yaml.safe_dump(values, sort_keys=True, allow_unicode=True), end="", flush=True)
        return target
    print(f"[mcanb] {notebook} / {label} -> {shown(target)} (parameters: {source})", flush=True)
    before = os.environ.get(PARAMETER_FILE_ENV)
    os.environ[PARAMETER_FILE_ENV] = source          # the kernel inherits it; params.yaml names the file
    kernel_stderr = tempfile.TemporaryFile()
    stopped = False
    try:
        pm.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), str(target), parameters=values,
                            kernel_name="python3", cwd=str(ROOT), log_output=False, progress_bar=progress_bar,
                            execution_timeout=timeout, **kernel_manager(kernel_stderr))
    except Exception as e:
        stopped = type(e).__name__ == "CellTimeoutError"      # nbclient's, --timeout
        raise
    finally:
        if before is None:
            os.environ.pop(PARAMETER_FILE_ENV, None)
        else:
            os.environ[PARAMETER_FILE_ENV] = before
        _pass_on(kernel_stderr, stopped)
    return target
