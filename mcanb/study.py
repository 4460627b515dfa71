"""A study profile and what it would do: notebook runs in dependency order, each with the fingerprint that says
whether it is up to date. Running them is :mod:`mcanb.study_run`.

A *profile* (``parameters/study/<profile>.yaml``) lists notebook runs in the order they depend on each other::

    runs:
      - {notebook: 01_preprocess, run: toy}
      - {notebook: 04_cnn_retraining, run: toy, seeds: [13, 14], reads: [01_preprocess/toy]}

``run`` names ``parameters/<notebook>/<run>.yaml``; ``params`` adds overrides, ``seeds`` sets the notebook's
``seeds`` parameter (each notebook aggregates its own seeds as mean ± sd), ``reads`` names the runs whose outputs
this one reads (default: every earlier run of the profile, the safe choice). An optional top-level ``jobs: N``
runs up to N notebook runs at once, each as soon as every run it reads has finished (:mod:`mcanb.study_run`).

Every run folder ``outputs/<notebook>/<run_name>/`` gets ``.mcanb-run.json`` (:data:`RECORD`): a *fingerprint* (hash
of the resolved parameters, the notebook's cell sources, the mcanb package's source, the fingerprints of the runs it
reads, and the content of every other file it reads: ``input_path``, ``splits_dir``, ``data_dir`` and the encoder
folders in ``encoders``, file by file, through :mod:`mcanb.identity`), a status (``running`` / ``done`` / ``failed``) and timings. A run is skipped when its
record is ``done`` with the same fingerprint (:func:`why` says why it is not). Explained in the README section
"The whole study".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import identity
from . import params as P
from .errors import UserError, load_yaml, yaml_problem
from .paths import NOTEBOOKS, OUTPUTS, PARAMETERS, TOY_MIMIC, shown
from .paths import resolve as resolve_path

RECORD = ".mcanb-run.json"
EXECUTION_ONLY = ("resume",)       # parameters that change how a run executes, not what it computes
STUDY_PROFILES = PARAMETERS / "study"


class StudyError(UserError, RuntimeError):
    """A profile that cannot run: bad file, unknown notebook or run, an input that has not been produced."""


class DamagedRecord(StudyError):
    """A run folder's ``.mcanb-run.json`` exists but cannot be read: the study will not guess what the folder holds."""


@dataclass
class RunSpec:
    """One entry of a profile."""

    notebook: str
    run: str
    overrides: dict[str, Any] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)   # "<notebook>/<run_name>" keys
    source: str = "command-line override"            # where the overrides come from, for messages

    @property
    def key(self) -> str:
        return f"{self.notebook}/{self.run_name}"

    @property
    def run_name(self) -> str:
        from .pipeline import run_name     # the file's run_name (or its stem) unless overridden

        return run_name(self.notebook, self.run, self.overrides)


@dataclass
class Profile:
    name: str
    path: Path
    description: str
    runs: list[RunSpec]
    jobs: int = 1          # notebook runs at once (``jobs:`` in the profile, ``mcanb study --jobs``)


def profile_path(profile: str) -> Path:
    """``parameters/study/<profile>.yaml`` for a name, or the given path to a YAML file."""
    p = Path(profile)
    if p.suffix in (".yaml", ".yml"):
        return p if p.is_absolute() else Path.cwd() / p
    return STUDY_PROFILES / f"{profile.replace('-', '_')}.yaml"


def load_profile(profile: str) -> Profile:
    """Read and check a profile (unknown keys, missing notebooks and parameter files are errors naming the entry)."""
    path = profile_path(profile)
    if not path.exists():
        have = ", ".join(sorted(p.stem.replace("_", "-") for p in STUDY_PROFILES.glob("*.yaml")))
        raise StudyError(f"{path}: no such profile (have: {have})")
    try:
        doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise StudyError(yaml_problem(path, e)) from e
    except UnicodeDecodeError as e:
        raise StudyError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise StudyError(f"{path}: expected a mapping with a non-empty 'runs' list")
    unknown = set(doc) - {"description", "runs", "jobs"}
    if unknown:
        raise StudyError(f"{path}: unknown key(s) {sorted(unknown)}; valid: description, runs, jobs")
    jobs = doc.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise StudyError(f"{path}: jobs: expected a whole number >= 1 (notebook runs at once), got {jobs!r}")
    specs: list[RunSpec] = []
    for i, entry in enumerate(doc["runs"]):
        where = f"{path}, runs[{i}]"
        if not isinstance(entry, dict) or not {"notebook", "run"} <= set(entry):
            raise StudyError(f"{where}: each entry needs 'notebook' and 'run'")
        unknown = set(entry) - {"notebook", "run", "params", "seeds", "reads"}
        if unknown:
            raise StudyError(f"{where}: unknown key(s) {sorted(unknown)}; valid: notebook, run, params, seeds, reads")
        for key, want, example in (("params", dict, "{num_epochs: 2}"), ("seeds", list, "[13, 14]"),
                                    ("reads", list, "[01_preprocess/toy]")):
            if key in entry and not isinstance(entry[key], want) and not (key == "params" and entry[key] is None):
                raise StudyError(f"{where}: {key}: expected a {'mapping' if want is dict else 'list'} like {example}, "
                                 f"got {entry[key]!r}")
        overrides = dict(entry.get("params") or {})
        if "seeds" in entry:
            overrides["seeds"] = list(entry["seeds"])
        spec = RunSpec(str(entry["notebook"]), str(entry["run"]), overrides,
                       source="params" + ("/seeds" if "seeds" in entry else ""))   # the profile's, not -p
        try:
            resolve(spec)
        except P.ParameterError as e:
            raise StudyError(f"{where}: {e}") from e
        earlier = [s.key for s in specs]
        if spec.key in earlier:                 # two entries, one folder: each would overwrite the other's results
            raise StudyError(f"{where}: writes outputs/{spec.key}, as runs[{earlier.index(spec.key)}] does; give one "
                             "of them another run_name (params: {run_name: ...})")
        spec.reads = [str(r) for r in entry.get("reads", earlier)]
        missing = [r for r in spec.reads if r not in earlier]
        if missing:
            raise StudyError(f"{where}: reads {missing}, which no earlier entry produces (earlier: {earlier})")
        for key, value in input_paths(spec).items():   # an earlier entry's output not in reads: a race under jobs
            producer = next((k for k in earlier if _written_by(value, [k])), None)
            if producer:
                raise StudyError(f"{where}: {key} {shown(value)} is what runs[{earlier.index(producer)}] ({producer}) "
                                 f"writes, but its reads {spec.reads} leave that run out, so it could start before "
                                 f"that run finishes; add {producer} to reads (or drop reads to read every earlier run)")
        specs.append(spec)
    return Profile(path.stem.replace("_", "-"), path, str(doc.get("description", "")), specs, jobs)


def resolve(spec: RunSpec) -> dict[str, Any]:
    """The notebook's parameter values for ``spec`` (file + overrides, checked against the notebook)."""
    from .pipeline import resolve_parameters

    return resolve_parameters(spec.notebook, spec.run, spec.overrides, spec.source)


# ---------------------------------------------------------------------------------------------- fingerprints

def package_hash() -> str:
    """The version of the code that computes results, library versions included (:func:`mcanb.identity.code_version`)."""
    return identity.code_version()


def notebook_hash(notebook: str) -> str:
    """Hash of the notebook's cell types and sources (outputs and metadata do not count)."""
    nb = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())
    cells = [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
             for c in nb["cells"]]
    return identity.of_settings(cells)


def input_paths(spec: RunSpec) -> dict[str, Path]:
    """``{parameter: path}`` of the files and folders ``spec`` reads that no run it reads produces: the values of
    ``mcanb.pipeline.PATH_PARAMETERS`` (``input_path``, ``splits_dir``, ``data_dir``), notebook 01's default input
    being the toy fixture, and each entry of ``encoders`` that names a folder (``encoders[i]``; a hub id's files are
    not fingerprinted here). A path inside the output folder of a run in ``reads`` is left out: that run's
    fingerprint covers it."""
    from .pipeline import PATH_PARAMETERS

    defaults = P.notebook_defaults(NOTEBOOKS / f"{spec.notebook}.ipynb")
    values = {**defaults, **resolve(spec)}
    out: dict[str, Path] = {}
    for key, words in PATH_PARAMETERS.items():
        if key not in defaults:
            continue
        value = values.get(key)
        if key == "input_path" and value in (None, ""):
            path = TOY_MIMIC                                  # notebook 01: None reads the toy fixture
        elif isinstance(value, str) and value not in words:
            path = resolve_path(value)
        else:
            continue
        out[key] = path
    for i, name in enumerate(values.get("encoders") or []):   # an encoder folder: its weights and tokenizer
        path = resolve_path(name) if isinstance(name, str) and not name.startswith("local:") else None
        if path is not None and path.is_dir():
            out[f"encoders[{i}]"] = path
    return {k: p for k, p in out.items() if not _written_by(p, spec.reads)}


def _written_by(path: Path, keys: list[str]) -> bool:
    """Whether ``path`` is, or lies in, the output folder of one of the runs ``keys`` (``<notebook>/<run>``)."""
    return any(path == OUTPUTS / k or OUTPUTS / k in path.parents for k in keys)


def read_files(path: Path) -> list[Path] | None:
    """The files a notebook reads below a folder: a MIMIC-III folder's tables (``mcanb.data.input_files``) and
    ``splits/``; a preprocessed data folder's data files (``mcanb.processed.load``); any other folder: all."""
    from .data import input_files

    if not path.is_dir():
        return None
    if (path / "report.json").exists():                       # notebook 01's output
        return sorted(f for f in path.rglob("*") if f.is_file() and "wordpiece" not in f.relative_to(path).parts
                      and (f.suffix == ".parquet" or f.name in ("labels.csv", "vocab.csv", "embeddings.npy",
                                                                 "preprocess_config.yaml")))
    tables = [Path(f) for f in input_files(path)[0].values()]
    if tables:
        return sorted(tables + [f for f in (path / "splits").glob("*") if f.is_file()])
    return None


def input_identities(spec: RunSpec) -> dict[str, dict[str, Any]]:
    """``{parameter: manifest}`` (:func:`mcanb.identity.of_path`) of every input of :func:`input_paths`."""
    return {key: identity.of_path(path, read_files(path)) for key, path in sorted(input_paths(spec).items())}


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The ``.mcanb-run.json`` of a run folder, or None when there is none.

    A record that exists but cannot be read (truncated, edited by hand, not an mcanb record) raises
    :class:`DamagedRecord`: the study then neither skips, resumes nor empties the folder, and says how to go on."""
    path = run_dir / RECORD
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        why = None if isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str) else "no fingerprint"
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if why:
        raise DamagedRecord(f"{path}: damaged run record ({why}); mcanb cannot tell which settings produced the files "
                            f"in {run_dir}, so it will neither skip, resume nor empty that folder. Keep what you need "
                            f"from it, then remove the folder (rm -r {run_dir}) to rerun it from scratch")
    return rec


def parts(spec: RunSpec) -> dict[str, Any]:
    """What the fingerprint hashes: params, notebook, package, the fingerprint of every run it reads, and the
    content of every other file it reads (``files``, :func:`input_identities`).

    Raises ``StudyError`` when a run it reads has not finished (its fingerprint is then unknown)."""
    inputs = {}
    for key in spec.reads:
        rec = read_record(OUTPUTS / key)
        if rec is None or rec.get("status") != "done":
            raise StudyError(f"{spec.key} reads {key}, which has not finished (outputs/{key}/{RECORD})")
        inputs[key] = rec["fingerprint"]
    return {"params": params_sha(spec), "notebook": notebook_hash(spec.notebook),
            "package": package_hash(), "inputs": inputs, "files": input_identities(spec)}


def params_sha(spec: RunSpec) -> str:
    """The fingerprint's ``params`` part: the resolved parameters that decide results (not the execution-only ones)."""
    return identity.of_settings({k: v for k, v in resolve(spec).items() if k not in EXECUTION_ONLY})


def fingerprint(p: dict[str, Any]) -> str:
    return identity.of_settings(p)


def why(spec: RunSpec, will_rerun: set[str]) -> str:
    """Why ``spec`` would run, or ``"up to date"``: never ran, interrupted, params/notebook/code/input changed."""
    rec = read_record(OUTPUTS / spec.key)
    changed_inputs = [k for k in spec.reads if k in will_rerun]
    if rec is None:
        return "never ran"
    if changed_inputs:
        return f"input changed ({', '.join(changed_inputs)} reruns)"
    now = parts(spec)
    old = rec.get("parts", {})
    diffs = [{"package": "code (mcanb's or a library's version)"}.get(name, name)
             for name in ("params", "notebook", "package") if old.get(name) != now[name]]
    diffs += [f"input changed ({k})" for k in now["inputs"] if old.get("inputs", {}).get(k) != now["inputs"][k]]
    for key, manifest in now["files"].items():
        before = old.get("files", {}).get(key)
        if before is None or before.get("sha") != manifest["sha"]:
            names = identity.changed_files(before or {}, manifest) if before else []
            diffs += [f"input changed: {_shown_input(key, manifest['path'], n)}" for n in names[:3]] or \
                [f"input changed: {key} {manifest['path']}"]
    if diffs:
        return ", ".join(d if d.startswith("input") else f"{d} changed" for d in diffs)
    if rec.get("status") == "running":
        return "interrupted: resumes"
    if rec.get("status") == "failed":
        return f"failed last time: resumes ({rec.get('error', '').splitlines()[0][:80] if rec.get('error') else '?'})"
    return "up to date"


def _shown_input(key: str, path: str, name: str) -> str:
    p = Path(path)
    return shown(p / name if p.is_dir() else p)


# ---------------------------------------------------------------------------------------------- pre-flight

def preflight(spec: RunSpec, produced: list[Path] | tuple = ()) -> None:
    """Every parameter, name, path and environment variable ``spec`` needs (``mcanb.preflight``), checked before the
    run writes anything; ``produced``: run folders that earlier runs of the study write. Raises ``ParameterError``."""
    from . import preflight as pf

    from .pipeline import describe_source

    source = describe_source(spec.notebook, spec.run) + (" with overrides" if spec.overrides else "")
    pf.require(spec.notebook, resolve(spec), source, produced)
    _same_parameter_file(spec)


def _same_parameter_file(spec: RunSpec) -> None:
    """Refuse a run whose folder holds the results of another parameter file with the same run name (a file of that
    name elsewhere, or a ``run_name``): the run would empty the folder and replace them without a word."""
    from .pipeline import source_file

    try:
        rec = read_record(OUTPUTS / spec.key)
    except DamagedRecord:
        return                                         # said where the run starts, with what to do
    before, file = str((rec or {}).get("parameter_file") or ""), source_file(spec.notebook, spec.run)
    if before and before != file and not before.startswith(f"{file} ("):     # "a.yaml (extends b.yaml)"
        raise StudyError(f"outputs/{spec.key} holds the results of {before}, and {file} has the same run name "
                         f"'{spec.run_name}': give it its own (-p run_name NAME, or `run_name:` in the file), "
                         "or remove that folder to replace those results")
