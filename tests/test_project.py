"""Project hygiene: stripped notebooks, checked parameter files, a consistent environment.yml."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement

from mcanb import params as P
from mcanb import pipeline
from mcanb.paths import NOTEBOOKS, PARAMETERS, ROOT


def _tracked_notebooks() -> list:
    try:
        out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True)
        files = [ROOT / f for f in out.stdout.split()]
    except (OSError, subprocess.CalledProcessError):
        files = []
    return sorted(set(files) | set(NOTEBOOKS.glob("*.ipynb")))


@pytest.mark.parametrize("path", _tracked_notebooks(), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    """Clinical text must never reach git: no outputs, no execution counts in source notebooks."""
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them (nbstripout) before committing"


def test_every_numbered_notebook_has_a_tagged_parameters_cell_and_toy_file():
    assert pipeline.numbered_notebooks(), "no numbered notebooks found"
    for nb in pipeline.numbered_notebooks():
        cells = json.loads((NOTEBOOKS / f"{nb}.ipynb").read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb}: expected one cell tagged 'parameters'"
        assert (PARAMETERS / nb / "toy.yaml").exists(), f"parameters/{nb}/toy.yaml missing"


@pytest.mark.parametrize("path", sorted(p for p in PARAMETERS.glob("*/*.yaml") if p.parent.name != "study"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parameter_files_only_use_known_keys(path):
    defaults = P.notebook_defaults(NOTEBOOKS / f"{path.parent.name}.ipynb")
    P.check(P.load_file(path), defaults, str(path))


def test_misspelled_key_is_an_error(tmp_path):
    defaults = {"top_k": 50, "caml_compat": False, "run_name": "toy", "lr": 0.001}
    with pytest.raises(P.ParameterError, match="unknown parameter 'top_kk'.*did you mean top_k"):
        P.check({"top_kk": 10}, defaults, "x.yaml")
    with pytest.raises(P.ParameterError, match="'caml_compat' should be bool"):
        P.check({"caml_compat": "yes"}, defaults, "x.yaml")
    P.check({"lr": 1, "run_name": "a"}, defaults, "x.yaml")  # an int where a float is expected is fine
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(P.ParameterError, match="expected a mapping"):
        P.load_file(bad)


def test_environment_yml_matches_the_setup_script():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    spec = importlib.util.spec_from_file_location("run_py", ROOT / "run.py")
    run_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_py)
    assert pip[0] == run_py.TORCH_PIN, "torch must be pinned before the package, as run.py does"
    assert "-e .[dev]" in pip
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["dev"]:
        Requirement(line)  # every requirement parses
    torch_req = next(Requirement(d) for d in project["dependencies"] if d.startswith("torch"))
    assert torch_req.specifier.contains(run_py.TORCH_PIN.split("==")[1]), "pyproject must accept the pinned torch"


@pytest.mark.parametrize("nb", pipeline.numbered_notebooks())
def test_papermill_sees_every_parameter(nb):
    """papermill skips lines it cannot parse (e.g. ';' in a comment); then a key would go unchecked."""
    cells = json.loads((NOTEBOOKS / f"{nb}.ipynb").read_text())["cells"]
    src = "".join(next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))["source"])
    assigned = [line.split("=")[0].strip() for line in src.splitlines() if line and not line.startswith("#")]
    assert sorted(assigned) == sorted(P.notebook_defaults(NOTEBOOKS / f"{nb}.ipynb"))


def test_no_fixture_every_test_uses_is_shared_above_function_scope():
    """An autouse fixture of session, package or module scope is a set-up every test of its folder shares, and
    conftest.py at the root keeps the tests that share a set-up on one xdist worker: such a fixture puts every test in
    one group, and `python run.py test` ran 13 min instead of 9 (it happened once). Autouse fixtures stay
    function-scoped."""
    import ast

    shared = []
    for path in sorted(ROOT.glob("**/conftest.py")):
        if ".venv" in path.parts or "outputs" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for dec in getattr(node, "decorator_list", []):
                if not isinstance(dec, ast.Call):
                    continue
                kw = {k.arg: k.value for k in dec.keywords}
                autouse = isinstance(kw.get("autouse"), ast.Constant) and kw["autouse"].value is True
                scope = kw.get("scope")
                if autouse and isinstance(scope, ast.Constant) and scope.value != "function":
                    shared.append(f"{path.relative_to(ROOT)}::{node.name} (scope={scope.value!r})")
    assert shared == []
