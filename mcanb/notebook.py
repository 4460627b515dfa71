"""What every numbered notebook does in its first cells, written once: parameters, seeding, output folder.

Explained in ``notebooks/README.md``. Notebooks call :func:`setup` right after the ``parameters`` cell,
and :func:`ensure_preprocessed` when they read the output of ``01_preprocess`` (an idempotent step, so
each notebook also runs alone, for example under nbval).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import __version__
from .identity import USES_FILE
from .paths import NOTEBOOKS, PARAMETER_FILE_ENV, ROOT, TOY_CORPUS, TOY_MIMIC, TOY_PREPROCESSED, out_dir, resolve
from .reporting import save_params


def parameters(namespace: dict[str, Any], notebook: str) -> dict[str, Any]:
    """The values of the notebook's ``parameters``-cell names, as papermill left them in ``namespace``."""
    from .params import notebook_defaults

    names = notebook_defaults(NOTEBOOKS / f"{notebook}.ipynb")
    return {k: namespace[k] for k in names}


def setup(notebook: str, params: dict[str, Any]) -> Path:
    """Create ``outputs/<notebook>/<run_name>/``, write ``params.yaml``, seed, print a banner.

    Outside ``mcanb run`` and ``mcanb study`` (no ``$MCANB_PARAMETER_FILE``: JupyterLab, papermill, the notebook
    tests) the folder's run record goes: it describes an execution whose results this one overwrites, so the report
    and ``mcanb study`` must not vouch for them (``mcanb.study.RECORD``; the report then says "no run record")."""
    out = out_dir(notebook, str(params.get("run_name", "default")))
    if not os.environ.get(PARAMETER_FILE_ENV):
        from .study import RECORD

        (out / RECORD).unlink(missing_ok=True)
    save_params(out, params)
    (out / USES_FILE).unlink(missing_ok=True)          # mcanb.identity.record_use: this execution's runs only
    from .train_config import seed_everything  # imported here so that importing mcanb.notebook stays light

    seed = int(params.get("seed", 0))
    os.environ.setdefault("PYTHONHASHSEED", str(seed))  # processes started later hash strings reproducibly
    seed_everything(seed)
    data = params.get("data_dir") or params.get("input_path") or "the toy MIMIC-shaped fixture"
    print(f"mcanb {__version__} · {notebook} · run '{params.get('run_name')}' · data: {data}\n"
          f"outputs -> {out.relative_to(ROOT) if ROOT in out.parents else out}")
    return out


def toy_mimic() -> Path:
    """The toy MIMIC-III-shaped folder, generated (deterministically) if missing."""
    from . import fixture

    fixture.ensure(TOY_MIMIC, size="toy")
    return TOY_MIMIC


def toy_input(input_format: str) -> Path:
    """Notebook 01's input when ``input_path`` is None: the toy MIMIC-III-shaped folder (``mimic3``) or the toy
    coded-notes table (``table``: ICD-10 codes, string ids, short reports; ``mcanb.fixture.corpus``), generated
    if missing. Its ``fixture.json`` sits in the same folder."""
    if input_format == "table":
        from .fixture import corpus

        return corpus.ensure(TOY_CORPUS)
    return toy_mimic()


def toy_preprocess_config(**overrides):
    """Notebook 01's default settings on the toy fixture (one definition for every notebook)."""
    from .preprocess import PreprocessConfig

    return PreprocessConfig(input_path=str(TOY_MIMIC), out_dir=str(TOY_PREPROCESSED),
                            **{"progress": False, **overrides})


def ensure_preprocessed(data_dir: str | Path) -> Path:
    """``data_dir`` if it holds preprocessing output; builds it when it is the toy default and missing."""
    d = resolve(data_dir)
    if (d / "report.json").exists():
        return d
    if d == TOY_PREPROCESSED:
        from .preprocess import run

        toy_mimic()
        run(toy_preprocess_config())
        return d
    from .params import ParameterError
    from .processed import preprocessed_problem
    raise ParameterError(f"data_dir: {preprocessed_problem(d)}")
