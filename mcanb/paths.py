"""Where things live: the repository root, outputs, packaged resources.

Notebooks run with different working directories (nbval starts the kernel in ``notebooks/``; papermill
uses the caller's cwd), so every path a notebook uses is resolved against the repository root here.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
RESOURCES = PACKAGE_DIR / "resources"
OUTPUTS = Path(os.environ.get("MCANB_OUTPUTS", ROOT / "outputs")).expanduser().absolute()
if "MCANB_OUTPUTS" in os.environ:   # a relative $MCANB_OUTPUTS names the caller's folder, for the kernels it starts too
    os.environ["MCANB_OUTPUTS"] = str(OUTPUTS)
NOTEBOOKS = ROOT / "notebooks"
PARAMETERS = ROOT / "parameters"
TOY_MIMIC = OUTPUTS / "fixtures" / "toy_mimic"     # the generated toy MIMIC-III-shaped folder
TOY_PREPROCESSED = OUTPUTS / "01_preprocess" / "toy"  # notebook 01 on the toy fixture
TOY_CORPUS = OUTPUTS / "fixtures" / "toy_corpus"   # the generated coded-notes table (not MIMIC-shaped)
RUNS = OUTPUTS / "runs"                            # the run store: every training run (mcanb.grid, docs/runs.md)
# Set by mcanb.pipeline.execute for the kernel (the run's parameter file, named in params.yaml); without it a
# notebook runs outside `mcanb run` and `mcanb study` (JupyterLab, papermill, the notebook tests).
PARAMETER_FILE_ENV = "MCANB_PARAMETER_FILE"


def resolve(path: str | os.PathLike) -> Path:
    """Absolute path: ``~`` and environment variables expanded, relative paths taken from the repo root.

    A relative path that starts with ``outputs/`` names the outputs folder, which ``$MCANB_OUTPUTS`` may move.
    Notebook parameters and parameter files go through here; relative paths typed on the command line are
    made absolute against the caller's directory first (``mcanb.pipeline``).
    Example: ``resolve("outputs/01_preprocess/toy")`` -> ``<repo>/outputs/01_preprocess/toy``.
    """
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if p.is_absolute():
        return p
    if p.parts and p.parts[0] == "outputs":
        return OUTPUTS.joinpath(*p.parts[1:])
    return ROOT / p


def out_dir(notebook: str, run: str, create: bool = True) -> Path:
    """``outputs/<notebook>/<run>/``, the one place a run writes to."""
    d = OUTPUTS / notebook / run
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def portable(path: str | os.PathLike) -> str:
    """``path`` as a record keeps it: ``outputs/...`` when inside the outputs folder, so that :func:`resolve` finds it
    wherever that folder is later (moved, copied, another ``$MCANB_OUTPUTS``); any other path or name as it is."""
    p = Path(path)
    return f"outputs/{p.relative_to(OUTPUTS).as_posix()}" if p.is_absolute() and p.is_relative_to(OUTPUTS) else str(path)


def resolve_near(path: str | os.PathLike, holder: str | os.PathLike) -> Path:
    """:func:`resolve` for a path a record in ``holder`` names: ``outputs/...`` (:func:`portable`) is first looked for
    in the nearest folder above ``holder`` that has it (the outputs folder the record lies in: a copy, a rehearsal's),
    then in the outputs folder of now."""
    p = Path(str(path))
    if not p.is_absolute() and p.parts and p.parts[0] == "outputs":
        for above in Path(holder).absolute().parents:
            if above.joinpath(*p.parts[1:]).exists():
                return above.joinpath(*p.parts[1:])
    return resolve(path)


def shown(path: str | os.PathLike) -> str:
    """``path`` as printed for a user: relative to the repository when inside it (so no one's home folder appears in
    messages, tables and notebooks), else as it is (outputs may live elsewhere: ``$MCANB_OUTPUTS``)."""
    p = Path(path)
    return str(p.relative_to(ROOT)) if ROOT in p.parents else str(p)
