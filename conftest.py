"""How the test tiers share the cores: pytest-xdist workers (``python run.py test`` runs ``-n 2``), and what must stay
on one worker.

pyproject.toml's ``addopts`` name ``--dist loadgroup``, so every ``pytest -n N`` in this repository (tests/,
notebooks/ or both) keeps these together, each group on one worker:

* every notebook cell (nbval): a notebook runs cell by cell in one kernel, and the notebooks run in order, because
  05 reads the predictions 04 writes;
* the tests that share a set-up computed once per worker process: users of one session-scoped fixture of the
  project (tests/conftest.py ``tiny_study`` runs a whole `mcanb study`) or of one module-scoped fixture; tests that
  share two such fixtures join both groups into one.

Without ``-n`` nothing here changes a run. This file is the repository root's ``conftest.py`` (not tests/'s) so that
``pytest -n 2 notebooks`` groups the cells too; the test fixtures live in tests/conftest.py.
"""
from __future__ import annotations

import re

import pytest

NOTEBOOKS = "notebooks"


def _shared_setups(item: pytest.Item) -> list[str]:
    """The set-ups ``item`` shares with other tests: its notebook, or the project's fixtures above function scope
    that it uses (pytest's own, such as tmp_path_factory, have no baseid)."""
    if item.path.suffix == ".ipynb":
        return [NOTEBOOKS]
    info = getattr(item, "_fixtureinfo", None)
    keys = []
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info else None
        if defs and defs[-1].scope != "function" and defs[-1].baseid:
            keys.append(f"{defs[-1].baseid.rsplit('/', 1)[-1]}::{name}")      # e.g. tests::tiny_study
    return keys


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """``{nodeid: group}`` for the items that must share a worker; items that share a set-up share a group."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    keys = {item.nodeid: _shared_setups(item) for item in items}
    for ks in keys.values():
        for k in ks[1:]:
            parent[find(k)] = find(ks[0])
    return {nodeid: re.sub(r"[@\[\]]", "_", find(ks[0])) for nodeid, ks in keys.items() if ks}


@pytest.hookimpl(tryfirst=True)   # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):   # not an xdist worker: a plain run keeps pytest's order, no marks
        return
    groups = xdist_groups(items)
    for item in items:
        if item.nodeid in groups:
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    # Longest first (--no-loadscope-reorder keeps this order): the notebooks, then whatever holds a slow test, then
    # the rest, which fills the gaps at the end. Within a rank, collection order.
    slow_groups = {groups.get(i.nodeid, i.nodeid) for i in items if i.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        group = groups.get(item.nodeid, item.nodeid)
        return 0 if group == NOTEBOOKS else 1 if group in slow_groups else 2

    items[:] = sorted(items, key=rank)


@pytest.hookimpl(trylast=True)    # after xdist has started its workers
def pytest_sessionstart(session: pytest.Session) -> None:
    """With workers, build the toy preprocessing (outputs/01_preprocess/toy) once, before anything reads it.

    Notebook 01's cells (nbval) and tests on another worker (tests/test_cnn_study.py, test_models_toy.py) would
    otherwise both write it from a fresh clone at the same time, and one could read a half-written file. Built
    here, both find it up to date (same settings, same fingerprint) and only read it."""
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("tx", None) or config.getoption("dist", "no") == "no":
        return
    from mcanb import notebook, preprocess

    notebook.toy_mimic()
    preprocess.run(notebook.toy_preprocess_config())   # skipped when up to date; rebuilt when its settings changed
