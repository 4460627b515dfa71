"""How the test tiers share the cores: pytest-xdist workers (``python run.py test`` runs ``-n 2``), and what must stay
on one worker.

pyproject.toml's ``addopts`` name ``--dist loadgroup``, so every ``pytest -n N`` in this repository (tests/,
notebooks/ or both) keeps these together, each group on one worker:

* every notebook cell (nbval): a notebook runs cell by cell in one kernel, and the notebooks run in order, because
  02 to 05 read 01's output, 03 reuses 02's encoders and 05 reads the predictions of 02, 03 and 04. With two workers
  or more, notebook 04 (which reads only 01's output, built before any worker starts: ``pytest_sessionstart``) runs
  on another worker beside 02 and 03, and 05's first cell waits until 04's last cell has run;
* the tests that share a set-up computed once per worker process: users of one session-scoped fixture of the
  project (tests/conftest.py ``tiny_study`` runs a whole `mcanb study`) or of one module-scoped fixture; tests that
  share two such fixtures join both groups into one.

Without ``-n`` nothing here changes a run. This file is the repository root's ``conftest.py`` (not tests/'s) so that
``pytest -n 2 notebooks`` groups the cells too; the test fixtures live in tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

NOTEBOOKS = "notebooks"
BESIDE = "04_cnn_retraining.ipynb"          # reads only 01's output: may run beside 02 and 03 (two workers or more)
AFTER_BESIDE = "05_frequency_analysis.ipynb"   # reads 04's predictions: waits for 04 when 04 runs on another worker
BESIDE_WAIT_S = 1800


def _shared_setups(item: pytest.Item, split: bool = False) -> list[str]:
    """The set-ups ``item`` shares with other tests: its notebook chain (``split``: notebook 04 is a chain of its
    own), or the project's fixtures above function scope that it uses (pytest's own, such as tmp_path_factory, have
    no baseid)."""
    if item.path.suffix == ".ipynb":
        return [f"{NOTEBOOKS}/{BESIDE}" if split and item.path.name == BESIDE else NOTEBOOKS]
    info = getattr(item, "_fixtureinfo", None)
    keys = []
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info else None
        if defs and defs[-1].scope != "function" and defs[-1].baseid:
            keys.append(f"{defs[-1].baseid.rsplit('/', 1)[-1]}::{name}")      # e.g. tests::tiny_study
    return keys


def xdist_groups(items: list[pytest.Item], split: bool = False) -> dict[str, str]:
    """``{nodeid: group}`` for the items that must share a worker; items that share a set-up share a group
    (``split``: notebook 04 is a group of its own)."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    keys = {item.nodeid: _shared_setups(item, split) for item in items}
    for ks in keys.values():
        for k in ks[1:]:
            parent[find(k)] = find(ks[0])
    return {nodeid: find(ks[0]) for nodeid, ks in keys.items() if ks}


def pytest_configure(config: pytest.Config) -> None:
    """On an xdist worker: torch and OpenMP use the worker's share of the cores (at least one thread), here and in
    every process it starts (notebook kernels, `mcanb` commands; a test that sets its own threads keeps them).
    Without it each worker's torch takes every core and two workers on two cores fight over them: in-process
    training ran about three times slower."""
    info = getattr(config, "workerinput", None)
    if not info:
        return
    from mcanb.study_run import usable_cores

    threads = str(max(1, usable_cores() // max(1, int(info.get("workercount", 1)))))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    import torch

    torch.set_num_threads(int(threads))


GROUPS_DIR = "mcanb_groups_dir"     # workerinput key: where each worker writes {nodeid: group} for the scheduler


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: order the items longest first and write their groups for the controller's scheduler."""
    folder = getattr(config, "workerinput", {}).get(GROUPS_DIR)
    if not folder:                # not an xdist worker: a plain run keeps pytest's order
        return
    # Two workers or more: notebook 04 on its own. The scheduler hands the first two groups to two different workers,
    # so the chain 01-02-03-05 and notebook 04 run side by side, and 05 never waits for a group queued behind it.
    split = config.workerinput.get("workercount", 1) >= 2
    groups = xdist_groups(items, split)
    # Longest first (--no-loadscope-reorder keeps this order): the notebook chain, notebook 04, then whatever holds a
    # slow test, then the rest, which fills the gaps at the end. Within a rank, collection order.
    slow_groups = {groups.get(i.nodeid, i.nodeid) for i in items if i.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        group = groups.get(item.nodeid, item.nodeid)
        return 0 if group == NOTEBOOKS else 1 if group == f"{NOTEBOOKS}/{BESIDE}" else 2 if group in slow_groups else 3

    items[:] = sorted(items, key=rank)
    beside = [i.nodeid for i in items if split and i.path.name == BESIDE]
    config._mcanb_beside = (beside[-1], Path(folder) / f"{BESIDE}.done") if beside else None
    out = Path(folder) / f"{config.workerinput['workerid']}.json"
    out.with_suffix(".tmp").write_text(json.dumps(groups))
    out.with_suffix(".tmp").replace(out)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:               # pytest-xdist missing: plain runs only
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:
    class SharedSetupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with this repository's groups (xdist_groups) as the scopes; every other test is a
        unit of its own. (xdist's own ``loadgroup`` renames node ids, which pytest 9 no longer allows.)"""

        def __init__(self, config: pytest.Config, folder: Path, log=None) -> None:
            super().__init__(config, log)
            self.folder, self.groups = folder, None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:   # first called once every worker has collected, so the files are there
                files = sorted(self.folder.glob("*.json"))
                self.groups = json.loads(files[0].read_text()) if files else {}
            return self.groups.get(nodeid, nodeid)

    def _groups_dir(config: pytest.Config) -> Path:
        """The controller's folder for the workers' group files (removed at the end of the run)."""
        if not hasattr(config, "_mcanb_groups_dir"):
            config._mcanb_groups_dir = Path(tempfile.mkdtemp(prefix="mcanb-xdist-groups-"))
            config.add_cleanup(lambda: shutil.rmtree(config._mcanb_groups_dir, ignore_errors=True))
        return config._mcanb_groups_dir

    def pytest_configure_node(node) -> None:           # controller, before each worker starts
        if node.config.getoption("dist") == "loadgroup":
            node.workerinput[GROUPS_DIR] = str(_groups_dir(node.config))

    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        if config.getoption("dist") == "loadgroup":
            return SharedSetupScheduling(config, _groups_dir(config), log)
        return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    """On the worker that runs notebook 04 beside the chain: after its last cell (and its kernel's end), tell the
    chain's worker."""
    yield
    beside = getattr(item.config, "_mcanb_beside", None)
    if beside and item.nodeid == beside[0]:
        beside[1].with_suffix(".tmp").write_text(item.nodeid)
        beside[1].with_suffix(".tmp").replace(beside[1])


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Notebook 05's first cell waits until notebook 04, on another worker, has run its last cell."""
    beside = getattr(item.config, "_mcanb_beside", None)
    if not beside or item.path.name != AFTER_BESIDE or getattr(item.config, "_mcanb_waited", False):
        return
    item.config._mcanb_waited = True
    deadline = time.time() + BESIDE_WAIT_S
    while not beside[1].exists():
        if time.time() > deadline:
            pytest.fail(f"{item.nodeid}: notebook 04 ({BESIDE}, on another worker) did not finish within "
                        f"{BESIDE_WAIT_S} s; notebook 05 reads its predictions")
        time.sleep(1)


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
