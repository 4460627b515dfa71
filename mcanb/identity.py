"""Content identities: the one place that fingerprints what a result was computed from.

Every cache key and run key of the package is made here, from content, never from a path or a date:

* :func:`digest` / :func:`of_settings`: SHA-256 (16 hex digits) of bytes, or of the canonical JSON of settings
  (keys sorted, no spaces, tuples as lists);
* :func:`file_sha256` / :func:`of_files` / :func:`of_path`: the bytes of files and folders, cached by
  (path, size, modification time) in the process and, for files of 16 MiB and more, in
  ``outputs/.cache/file-sha256.json`` (real MIMIC-III tables are hashed once, not at every ``mcanb study``);
* :func:`of_texts`: a corpus (the MLM pretraining cache); :func:`of_tokenizer`: a tokenizer's files;
  :func:`of_encoder`: an encoder's weights, configuration and tokenizer files (a hub id: its downloaded snapshot);
* :func:`of_processed`: the preprocessed documents a model trains on (text, codes, admission ids per split);
* :func:`code_version`: the package's source, except the modules that only orchestrate (:data:`ORCHESTRATION`);
  given modules, the source of their import closure (:func:`import_closure`: a training run, a cache).

A training run's identity (:func:`run_identity`) hashes its *parts* (data, encoder, model, train, seed, code),
each a dict with a ``sha`` and human-readable fields that do not count; :func:`write` stores them as
``identity.json`` in the run folder and :func:`differences` says in words what changed (docs/runs.md).
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import __version__
from .paths import OUTPUTS, PACKAGE_DIR

CHARS = 16                     # hex digits kept of a SHA-256
IDENTITY_FILE = "identity.json"
USES_FILE = "training_runs.json"   # in a notebook run folder: the training runs its results come from
# Files whose bytes define a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "merges.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json")
# Modules that only orchestrate or present runs (never imported by a notebook's computation): changing them must
# not rerun hours of training. Every other source file of the package counts in code_version().
ORCHESTRATION = {"cli.py", "pipeline.py", "study.py", "study_run.py", "progress.py", "report.py", "report_answers.py",
                 "predict.py", "runs.py", "preflight.py", "preflight_inputs.py", "errors.py", "rehearse.py",
                 "rehearse_table.py"}
# The modules whose code runs inside a training run of the run store (mcanb.grid.train and the rows of both
# families): a training run's code version is their import closure (code_version), so editing a module they never
# import (a table, a figure, a verdict, the report) reuses every finished run.
TRAINING_CODE = ("grid", "bert_study", "cnn_study")
# The libraries whose code computes the numbers of a training run, a cache (word pieces, pretraining) and a paired
# test: their installed versions count in every code version, so a run trained under another torch is trained again,
# not mixed with this one's. A notebook's results also count what preprocessing, word2vec and the baselines use.
COMPUTE_LIBRARIES = ("numpy", "scipy", "torch", "transformers", "tokenizers")
NOTEBOOK_LIBRARIES = ("pandas", "scikit-learn", "gensim", "nltk")
_BIG = 16 << 20                # files this large have their hash kept on disk between processes


def digest(*chunks: bytes | str) -> str:
    """SHA-256 (first :data:`CHARS` hex digits) of the chunks, each followed by a NUL separator."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode() if isinstance(c, str) else c)
        h.update(b"\0")
    return h.hexdigest()[:CHARS]


def _plain(v: Any) -> Any:
    if isinstance(v, (set, frozenset)):
        return sorted(v, key=str)
    return v.tolist() if hasattr(v, "tolist") else str(v)     # numpy arrays and scalars, torch tensors; paths


def canonical(obj: Any) -> str:
    """Canonical JSON: keys sorted, no spaces, tuples as lists, paths as strings, numpy values as Python ones."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def of_settings(obj: Any) -> str:
    """The digest of ``obj``'s canonical JSON (settings, parameters)."""
    return digest(canonical(obj))


# ------------------------------------------------------------------------------------------------ files
_memo: dict[tuple[str, int, int], str] = {}
_DISK = OUTPUTS / ".cache" / "file-sha256.json"


def _disk_cache() -> dict[str, list]:
    try:
        return json.loads(_DISK.read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 (64 hex) of a file's bytes, cached by (absolute path, size, modification time in ns)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    disk = _disk_cache() if st.st_size >= _BIG else {}
    if disk.get(key[0], [None])[:2] == [st.st_size, st.st_mtime_ns]:
        _memo[key] = disk[key[0]][2]
        return _memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    _memo[key] = h.hexdigest()
    if st.st_size >= _BIG:
        try:
            disk = _disk_cache()
            disk[key[0]] = [st.st_size, st.st_mtime_ns, _memo[key]]
            _DISK.parent.mkdir(parents=True, exist_ok=True)
            tmp = _DISK.with_name(f"{_DISK.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(disk, indent=0))
            os.replace(tmp, _DISK)
        except OSError:
            pass                             # a read-only outputs folder only costs speed
    return _memo[key]


def of_file(path: str | os.PathLike) -> str:
    """A file's content digest (:data:`CHARS` hex digits)."""
    return file_sha256(path)[:CHARS]


def of_files(files: Iterable[str | os.PathLike], root: str | os.PathLike) -> dict[str, Any]:
    """``{"sha", "files": {path relative to root: digest}}``: a manifest; names count, locations above do not."""
    root = Path(root)
    manifest = {Path(f).relative_to(root).as_posix() if Path(f).is_relative_to(root) else str(f): of_file(f)
                for f in files}
    manifest = dict(sorted(manifest.items()))
    return {"sha": of_settings(manifest), "files": manifest}


def of_path(path: str | os.PathLike, files: Sequence[str | os.PathLike] | None = None) -> dict[str, Any]:
    """A file, or a folder's files (every file below it, or the given ``files``), as a manifest with ``path``;
    ``{"sha": "absent"}`` when nothing is there."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "sha": of_file(path), "files": {path.name: of_file(path)}}
    if path.is_dir():
        chosen = files if files is not None else sorted(p for p in path.rglob("*") if p.is_file())
        return {"path": str(path), **of_files(chosen, path)}
    return {"path": str(path), "sha": "absent", "files": {}}


def changed_files(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Names of the files that differ between two manifests of :func:`of_path` (added, removed or changed)."""
    a, b = old.get("files", {}) or {}, new.get("files", {}) or {}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# ---------------------------------------------------------------------------------------------- content
def of_texts(texts: Iterable[str]) -> str:
    """A corpus in order (the MLM cache key)."""
    return digest(*texts)


def of_tokenizer(tokenizer) -> str:
    """The files that define ``tokenizer`` (its saved directory); a tokenizer never saved: its class and vocabulary."""
    path = Path(getattr(tokenizer, "name_or_path", "") or "")
    h = hashlib.sha256()
    found = False
    for fname in TOKENIZER_FILES:
        f = path / fname
        if f.is_file():
            h.update(fname.encode() + b"\0" + f.read_bytes())
            found = True
    if not found:
        h.update(type(tokenizer).__name__.encode())
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()[:CHARS]


def _model_files(d: Path) -> list[Path]:
    """What ``AutoModel``/``AutoTokenizer`` read from a model directory: config, weights, tokenizer files."""
    return sorted(p for p in d.iterdir() if p.is_file() and (
        p.name == "config.json" or p.name in TOKENIZER_FILES
        or p.name.endswith((".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json"))))


def of_encoder(name: str, path: str, init: str = "pretrained") -> dict[str, Any]:
    """An encoder's identity: the bytes of its configuration, weights and tokenizer files, and ``init``.

    ``path`` is the resolved name (``mcanb.encoders.resolve_encoder``): a directory, or a hub id whose files are
    then read from the local Hugging Face cache (the snapshot the model was loaded from; its revision is shown).
    """
    about: dict[str, Any] = {"name": name, "init": init}
    d = Path(path)
    if not d.is_dir():
        from huggingface_hub import snapshot_download
        try:
            d = Path(snapshot_download(path, local_files_only=True))
        except Exception as e:   # noqa: BLE001 - any failure means the files are not on this machine
            raise FileNotFoundError(f"encoder {path!r}: its files are not in the local Hugging Face cache, so "
                                    f"its identity cannot be computed ({type(e).__name__})") from e
        about["revision"] = d.name
    files = _model_files(d)
    if init == "random":      # fresh weights: only the configuration and the tokenizer are read
        files = [f for f in files if f.name == "config.json" or f.name in TOKENIZER_FILES]
    manifest = of_files(files, d)
    return {"sha": of_settings([init, manifest["sha"]]), **about, "path": str(d), "files": manifest["files"]}


def of_processed(processed, *, words: bool = False) -> dict[str, Any]:
    """The preprocessed data a model trains on: per split the admission ids, texts and codes, and the label codes.

    ``words=True`` adds what the word-level CNN family also reads: the vocabulary, the word2vec matrix, the code
    descriptions and the token rule. The content is hashed as it is in memory, so a notebook that changes the data after
    loading it gets another identity.
    """
    h, labels = hashlib.sha256(), processed.labels
    h.update(canonical(labels["code"].tolist()).encode())
    if words:                                 # and how words are cut from text (descriptions: DR-CAML)
        h.update(canonical([labels["description"].fillna("").tolist(), processed.token_rule,
                            processed.regex_engine]).encode())
        h.update(canonical(list(processed.vocab)).encode())
        if processed.embeddings is not None:
            h.update(processed.embeddings.tobytes())
    for split in sorted(processed.frames):
        f = processed.frames[split]
        h.update(f"\x1d{split}\x1d".encode())
        for hadm, text, codes in zip(f["hadm_id"], f["text"], f["codes"]):
            h.update(f"{int(hadm)}\x1f{chr(31).join(map(str, codes))}\x1f".encode())
            h.update(text.encode("utf-8"))
            h.update(b"\x1e")
    return {"sha": h.hexdigest()[:CHARS], "data_dir": str(processed.data_dir), "label_space": processed.label_space,
            "documents": {s: len(f) for s, f in sorted(processed.frames.items())}}


def _module_files(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every Python module under ``package_dir`` (a package's ``__init__.py`` is
    the package itself)."""
    out = {}
    for f in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        parts = [package_dir.name, *f.relative_to(package_dir).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(module: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source (inside functions too: a function that
    runs may import late), with the packages above each (importing ``a.b.c`` runs ``a`` and ``a.b``)."""
    import ast
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join([*up[: len(up) - (node.level - 1)], *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)   # ``from . import x``: x may be a module
    out: set[str] = set()
    for name in found:
        parts = name.split(".")
        out.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in known)
    return out


def import_closure(roots: Iterable[str], package_dir: str | os.PathLike = PACKAGE_DIR) -> list[Path]:
    """The source files of ``roots`` (module names inside the package: ``"grid"``, ``"models.bert"``) and of every
    module of the package they import, directly or not, at module level or inside a function: every file of the
    package whose code can run when the roots' code runs. Read from the source (``ast``), never by importing."""
    package_dir = Path(package_dir)
    known = _module_files(package_dir)
    todo = [f"{package_dir.name}.{r}" for r in roots]
    missing = [m for m in todo if m not in known]
    if missing:
        raise ValueError(f"no such module in {package_dir}: {', '.join(missing)}")
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m, known[m], known) - seen)
    return sorted(known[m] for m in seen)


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """``{distribution: installed version}`` ("absent" when not installed); a build tag counts (``2.13.0+cpu``)."""
    return {name: _installed(name) for name in names}


@lru_cache(maxsize=None)
def _installed(name: str) -> str:
    """One distribution's version, read once per process (every code version and run identity asks)."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=None)
def code_version(*roots: str, package_dir: str | os.PathLike = PACKAGE_DIR) -> str:
    """The version of the code a result was computed by: the mcanb version, the versions of the libraries that compute
    it (:data:`COMPUTE_LIBRARIES`; without ``roots`` also :data:`NOTEBOOK_LIBRARIES`), the package's data files and

    * without ``roots``, every source file of the package except :data:`ORCHESTRATION` (a notebook's results: a
      change to the code that computes results changes it; a change to the command line or the report does not);
    * with ``roots``, the files of :func:`import_closure` (a training run: :data:`TRAINING_CODE`; a cache: the
      module that fills it), so a change to a module they never import (a table, a figure, a verdict) leaves it.
    """
    package_dir = Path(package_dir)
    files = (import_closure(roots, package_dir) if roots else
             [f for f in package_dir.rglob("*.py") if "__pycache__" not in f.parts
              and not (f.parent == package_dir and f.name in ORCHESTRATION)])
    data = [f for f in package_dir.rglob("*") if f.is_file() and "__pycache__" not in f.parts   # not an editor's
            and f.suffix in (".csv", ".json", ".txt", ".yaml", ".gz", ".tsv")]         # swap or backup file
    h = hashlib.sha256(__version__.encode())
    h.update(canonical(library_versions(COMPUTE_LIBRARIES + (() if roots else NOTEBOOK_LIBRARIES))).encode())
    for f in sorted({*files, *data}):
        h.update(str(f.relative_to(package_dir)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:CHARS]


# --------------------------------------------------------------------------------------------- run folders
# TrainConfig fields that change how a run executes or reports, never its numbers (the seed is a part of its own).
EXECUTION_ONLY = ("seed", "progress", "log_every", "num_workers", "eval_batch_size", "checkpoint_every_epoch",
                  "checkpoint_every_steps", "keep_last_checkpoint")


def train_settings(config) -> dict[str, Any]:
    """A ``TrainConfig``'s fields that decide the result (:data:`EXECUTION_ONLY` left out)."""
    import dataclasses
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in EXECUTION_ONLY}


def settings_part(values: Any) -> dict[str, Any]:
    """A part made of settings: their digest and the values themselves."""
    return {"sha": of_settings(values), "values": values}


def run_parts(*, data: dict, model: Any, train: Any, seed: int, encoder: dict | None = None) -> dict[str, Any]:
    """The parts of a training run's identity: data, [encoder,] model and training settings, seed, code version."""
    parts = {"data": data, **({"encoder": encoder} if encoder is not None else {}),
             "model": settings_part(model), "train": settings_part(train),
             "seed": {"sha": of_settings(int(seed)), "value": int(seed)},
             "code": {"sha": code_version(*TRAINING_CODE), "mcanb_version": __version__,
                      "libraries": library_versions(COMPUTE_LIBRARIES)}}
    return parts


def run_identity(parts: Mapping[str, Any], leave_out: Sequence[str] = ()) -> str:
    """The digest of the parts' ``sha`` values (their human-readable fields do not count)."""
    return of_settings({k: v["sha"] for k, v in parts.items() if k not in leave_out})


def write(run_dir: str | os.PathLike, parts: Mapping[str, Any]) -> Path:
    """``<run_dir>/identity.json``: ``{"identity", "parts"}``."""
    path = Path(run_dir) / IDENTITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{IDENTITY_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"identity": run_identity(parts), "parts": parts}, indent=2, sort_keys=True,
                              default=_plain) + "\n")
    os.replace(tmp, path)
    return path


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run folder's ``identity.json``; None when missing, unreadable or not shaped as :func:`write` writes it."""
    try:
        stored = json.loads((Path(run_dir) / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    parts = stored.get("parts") if isinstance(stored, dict) else None
    return stored if isinstance(parts, dict) and all(isinstance(v, dict) for v in parts.values()) else None


def differences(stored: Mapping[str, Any] | None, parts: Mapping[str, Any]) -> list[str]:
    """In words, which parts differ between a stored ``identity.json`` and ``parts`` (empty: the same run)."""
    if stored is None:
        return [f"no {IDENTITY_FILE}"]
    old = stored.get("parts", {})
    return [f"{k} changed" if k in old else f"{k} not recorded" for k in sorted(set(old) | set(parts))
            if (old.get(k) or {}).get("sha") != (parts.get(k) or {}).get("sha")]


def uses(notebook_dir: str | os.PathLike) -> list[Path] | None:
    """The training runs ``<notebook_dir>/training_runs.json`` lists (:func:`record_use`), as absolute paths; None
    when it is missing (a run that trains nothing, or has not run), ``DamagedOutput`` when damaged. The one reader of
    the file: an entry relative to the outputs folder holding ``<notebook>/<run>`` is read from where that folder is
    now, so a moved or copied outputs folder keeps its runs."""
    path = Path(notebook_dir) / USES_FILE
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        from .errors import DamagedOutput              # a damaged list must never read as "uses no training run"
        raise DamagedOutput(f"{path}: not the list of training runs mcanb writes, so which runs this result uses is "
                            "unknown; run that notebook run again (`mcanb study PROFILE` or its `mcanb run` reuse every "
                            "finished training run) or remove its folder")
    root = Path(notebook_dir).resolve().parent.parent
    return [root / e for e in entries]                                                  # an absolute e stays e


def record_use(notebook_dir: str | os.PathLike, run_dir: str | os.PathLike) -> None:
    """Note in ``<notebook_dir>/training_runs.json`` that this notebook run's results use the training run
    ``run_dir`` (what ``mcanb runs --prune`` keeps), relative to the outputs folder that holds ``<notebook>/<run>``
    when the run is inside it (the run store ``runs/``), else absolute (a ``runs_dir`` elsewhere).
    ``mcanb.notebook.setup`` starts the list afresh."""
    path = Path(notebook_dir) / USES_FILE
    root = Path(notebook_dir).resolve().parent.parent
    used = [str(e) for e in uses(notebook_dir) or []]
    entry = str(Path(run_dir).resolve())
    if entry not in used:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{USES_FILE}.{os.getpid()}.tmp")
        written = [str(Path(e).relative_to(root)) if Path(e).is_relative_to(root) else e for e in sorted([*used, entry])]
        tmp.write_text(json.dumps(written, indent=1) + "\n")
        os.replace(tmp, path)
