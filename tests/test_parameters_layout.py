"""The layout of ``parameters/``: files that extend a base, one output folder per file, files anywhere on disk.

Every parameter file resolves (its ``extends`` chain included) and passes its notebook's parameter check; no two
files of one notebook write to the same output folder (Table 3 and 4 must not overwrite Tables 2 and 5); a base
file is never taken for a run; ``mcanb run NB path/to/file.yaml`` names its run after the file.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

import pytest
import yaml

from mcanb import params as P
from mcanb import pipeline, study
from mcanb.paths import NOTEBOOKS, PARAMETERS, ROOT

NOTEBOOK_FILES = sorted(p for nb in pipeline.numbered_notebooks() for p in (PARAMETERS / nb).glob("*.yaml"))
RUN_FILES = [p for p in NOTEBOOK_FILES if not P.is_base(p)]
BASES = [p for p in NOTEBOOK_FILES if P.is_base(p)]


def _id(path):
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", RUN_FILES, ids=_id)
def test_every_file_resolves_and_passes_its_notebooks_check(path):
    values = pipeline.resolve_parameters(path.parent.name, path.stem)        # extends chain + P.check
    assert "extends" not in values
    assert values["run_name"] == pipeline.run_name(path.parent.name, path.stem)


@pytest.mark.parametrize("path", BASES, ids=_id)
def test_a_base_cannot_be_mistaken_for_a_run(path):
    notebook = path.parent.name
    P.check(P.load_file(path), P.notebook_defaults(NOTEBOOKS / f"{notebook}.ipynb"), str(path))
    assert "run_name" not in P.load_file(path), "a base names no output folder; the files extending it do"
    users = [f for f in RUN_FILES if path in P.extends_chain(f)]
    assert users, f"{path} is extended by no run file"
    with pytest.raises(P.ParameterError, match=rf"{path.name}: a base file .* run one that extends it"):
        pipeline.resolve_parameters(notebook, path.stem)
    runs, bases = pipeline.parameter_files(notebook)
    assert path.stem in bases and path.stem not in runs                     # `mcanb list` shows it apart


def test_no_two_files_of_one_notebook_write_to_the_same_folder():
    folders = defaultdict(list)
    for path in RUN_FILES:
        folders[(path.parent.name, pipeline.run_name(path.parent.name, path.stem))].append(path.stem)
    shared = {k: v for k, v in folders.items() if len(v) > 1}
    assert not shared, f"these files write to one output folder: {shared}"
    # the paper's Tables 3 and 4 no longer overwrite Tables 2 and 5; their training runs are shared through the one
    # run store (outputs/runs/, keyed by identity), so no file names a runs folder of its own
    for nb, table, other in [("02_pretraining_domains", "mimic3_50_more_data", "mimic3_50"),
                             ("02_pretraining_domains", "mimic3_full_more_data", "mimic3_full"),
                             ("03_hierarchy", "mimic3_50_table4", "mimic3_50")]:
        assert pipeline.run_name(nb, table) != pipeline.run_name(nb, other)
        assert "runs_dir" not in pipeline.resolve_parameters(nb, table)


def test_real_runs_hold_only_what_differs():
    """Notebook 02's four MIMIC-III files (and 03's Table 5 and 4 files) share their settings through bases."""
    for name in ("mimic3_50", "mimic3_full", "mimic3_50_more_data", "mimic3_full_more_data"):
        own = yaml.safe_load((PARAMETERS / "02_pretraining_domains" / f"{name}.yaml").read_text())
        assert len(own) <= 6 and "extends" in own, (name, sorted(own))   # extends, run name, runs dir, label space, its stopping metric, pairs
    base = P.load_file(PARAMETERS / "02_pretraining_domains" / "mimic3_table2_base.yaml")
    table5 = pipeline.resolve_parameters("03_hierarchy", "mimic3_50")
    table2 = pipeline.resolve_parameters("02_pretraining_domains", "mimic3_50")
    # Table 5 reuses Table 2's BERT-hier + LAN runs only if every shared setting is equal: one base makes it so
    assert {k: table5[k] for k in base} == {k: table2[k] for k in base} == base


def test_profiles_key_runs_by_their_output_folder():
    for name in ("toy", "mimic3-50", "mimic3-full"):
        for spec in study.load_profile(name).runs:
            assert spec.run_name == study.resolve(spec)["run_name"], (name, spec.notebook, spec.run)


# ------------------------------------------------------------------------------------------- extends: the loader

def _write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return path


def test_extends_chain_lays_each_file_over_its_base(tmp_path):
    _write(tmp_path / "bases" / "root_base.yaml", {"top_k": 50, "token_rule": "alpha", "word2vec": True})
    _write(tmp_path / "bases" / "mid_base.yaml", {"extends": "root_base.yaml", "top_k": 20})
    leaf = _write(tmp_path / "runs" / "leaf.yaml", {"extends": "../bases/mid_base.yaml", "word2vec": False})
    assert P.load_file(leaf) == {"top_k": 20, "token_rule": "alpha", "word2vec": False}
    assert [p.name for p in P.extends_chain(leaf)] == ["leaf.yaml", "mid_base.yaml", "root_base.yaml"]


def test_a_cycle_or_a_missing_base_is_one_error_naming_the_file(tmp_path):
    a = _write(tmp_path / "a.yaml", {"extends": "b.yaml", "top_k": 1})
    _write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(P.ParameterError, match=r"a.yaml: 'extends' makes a cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        P.load_file(a)
    lost = _write(tmp_path / "lost.yaml", {"extends": "nowhere.yaml"})
    with pytest.raises(P.ParameterError, match=r"nowhere.yaml: parameter file not found \(named by 'extends' in "
                                               rf".*{lost.name}\)"):
        P.load_file(lost)
    odd = _write(tmp_path / "odd.yaml", {"extends": ["a.yaml"]})
    with pytest.raises(P.ParameterError, match=r"odd.yaml: 'extends' should be the path of another parameter file"):
        P.load_file(odd)


# ------------------------------------------------------------------------------------ parameter files anywhere

def test_a_file_anywhere_on_disk_names_its_run_after_itself(tmp_path):
    mine = _write(tmp_path / "corpora" / "mycorpus.yaml", "# my coded notes\ntop_k: 20\n")
    values = pipeline.resolve_parameters("01_preprocess", str(mine))
    assert values == {"top_k": 20, "run_name": "mycorpus"}
    assert pipeline.parameter_file("01_preprocess", "corpora/mycorpus.yaml", tmp_path) == mine
    assert pipeline.describe_source("01_preprocess", str(mine)) == str(mine)
    assert pipeline.describe_source("02_pretraining_domains", "mimic3_50") == (
        "parameters/02_pretraining_domains/mimic3_50.yaml (extends parameters/02_pretraining_domains/"
        "mimic3_table2_base.yaml, parameters/02_pretraining_domains/mimic3_base.yaml)")
    with pytest.raises(P.ParameterError, match=r"parameters/01_preprocess/mycorpus.yaml: parameter file not found "
                                               r"\(parameters/01_preprocess/ has: mimic3, mimic3_caml, toy, toy_corpus; or give"):
        pipeline.resolve_parameters("01_preprocess", "mycorpus")


def test_mcanb_run_takes_a_yaml_path_from_the_callers_directory(tmp_path):
    """``mcanb run 01_preprocess mycorpus.yaml --dry-run`` from the user's folder: no ``.yaml.yaml``, no ``toy``."""
    _write(tmp_path / "mycorpus.yaml", {"extends": "shared_base.yaml"})
    _write(tmp_path / "shared_base.yaml", {"top_k": 20})
    env = dict(os.environ, MCANB_OUTPUTS=str(tmp_path / "out"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "mcanb.cli", "run", "01_preprocess", "mycorpus.yaml", "--dry-run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"01_preprocess / mycorpus.yaml -> {tmp_path / 'out' / '01_preprocess' / 'mycorpus'}" in out.stdout
    assert f"# parameter file: {tmp_path / 'mycorpus.yaml'} (extends {tmp_path / 'shared_base.yaml'})" in out.stdout
    assert yaml.safe_load(out.stdout.split("\n", 1)[1]) == {"top_k": 20, "run_name": "mycorpus"}
    assert not (tmp_path / "out").exists(), "a dry run creates nothing"
