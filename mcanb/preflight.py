"""Pre-flight: every parameter, name, path and environment variable a notebook run needs, checked before it starts.

:func:`problems` runs the validators registered for the notebook's parameters (:data:`VALIDATORS`, by parameter
name; :data:`COMMON` for every notebook) on the resolved values and returns one line per problem, each naming the
parameter, the value and what was expected. :func:`require` raises them as one ``ParameterError``. ``mcanb run``,
``mcanb run --dry-run``, ``mcanb study`` and ``mcanb study --dry-run`` all call it before anything is written, so
a misspelled model name fails in a second instead of after the earlier models trained. Types and unknown keys are
checked before this, against the notebook's parameters cell (:mod:`mcanb.params`).

``produced``: the run folders that earlier runs of the same study will write (``data_dir`` may name one of them).
"""
from __future__ import annotations

import codecs
import difflib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from . import names
from . import params as P
from .paths import OUTPUTS, TOY_PREPROCESSED, resolve
from .processed import preprocessed_problem


@dataclass
class Context:
    notebook: str
    values: dict[str, Any]
    produced: frozenset[Path] = field(default_factory=frozenset)


Check = Callable[[Any, Context], "str | None"]
_UNSET_VAR = re.compile(r"\$(\w+|\{\w+\})")


# ------------------------------------------------------------------------------------------------ validators
def one_of(*allowed: Any) -> Check:
    return lambda v, ctx: None if v in allowed else f"expected one of {', '.join(map(repr, allowed))}, got {v!r}"


def subset_of(allowed: Callable[[], tuple[str, ...]], empty_ok: bool = True) -> Check:
    def check(v, ctx):
        if not isinstance(v, (list, tuple)):
            return f"expected a list, got {v!r}"
        if not v and not empty_ok:
            return f"expected at least one of {', '.join(allowed())}"
        bad = [x for x in v if x not in allowed()]
        if not bad:
            return None
        close = [c for x in bad for c in difflib.get_close_matches(str(x), allowed(), n=1)]
        return (f"unknown {', '.join(map(repr, bad))}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; valid: {', '.join(allowed())}")
    return check


def at_least(lo: float, optional: bool = False, kind: type = int) -> Check:
    def check(v, ctx):
        if v is None and optional:
            return None
        ok = isinstance(v, kind) and not isinstance(v, bool) if kind is int else isinstance(v, (int, float))
        return None if ok and v >= lo else (f"expected {'None or ' if optional else ''}"
                                            f"{'a whole number' if kind is int else 'a number'} >= {lo}, got {v!r}")
    return check


def positive_number(optional: bool = False) -> Check:
    def check(v, ctx):
        if v is None and optional:
            return None
        return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else (
            f"expected {'None or ' if optional else ''}a number > 0, got {v!r}")
    return check


def output_bias(v: Any, ctx) -> str | None:
    """``"default"`` or ``"prior"``, or a mapping of them per head or architecture (``mcanb.bert_study.rows``)."""
    ok = ("default", "prior")
    if v in ok or (isinstance(v, dict) and all(x in ok for x in v.values())):
        return None
    return f"expected a mapping of 'default' or 'prior' per head, e.g. {{'fcn': 'prior'}} ({{}}: 'default'), got {v!r}"


def rates(optional: bool = False) -> Check:
    """A learning rate > 0, or a mapping ``{name: rate}`` (per model, per encoder or per head; ``default`` for the
    rest), each rate > 0."""
    one = positive_number(optional)

    def check(v, ctx):
        if not isinstance(v, dict):
            return one(v, ctx)
        bad = {k: r for k, r in v.items() if positive_number()(r, ctx)}
        return None if not bad else f"expected a number > 0 for each entry, got {bad}"
    return check


def int_list(lo: int = 0, optional: bool = False, empty_ok: bool = False) -> Check:
    def check(v, ctx):
        if v is None and optional:
            return None
        if (not isinstance(v, (list, tuple)) or (not v and not empty_ok)
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo for x in v)):
            return f"expected a {'' if empty_ok else 'non-empty '}list of whole numbers >= {lo}, got {v!r}"
        return None
    return check


def run_name(v, ctx):
    if not isinstance(v, str) or not v or v in (".", "..") or "/" in v or "\\" in v:
        return f"expected a folder name (no '/', not empty), got {v!r}"
    return None


def label_space(v, ctx):
    from .processed import LABEL_SPACES
    return None if v in LABEL_SPACES else f"expected one of {', '.join(map(repr, LABEL_SPACES))}, got {v!r}"


def data_dir(v, ctx) -> str | None:
    """A finished output folder of notebook 01 (or one an earlier run of the study writes, or the toy default)."""
    if v is None or v == "":
        return None
    d = resolve(v)
    if (d / "report.json").exists() or d == TOY_PREPROCESSED or d in ctx.produced:
        return None
    return preprocessed_problem(d)


def input_path(v, ctx) -> str | None:
    if v is None:
        return None
    p = resolve(v)
    table = ctx.values.get("input_format") == "table"
    if not p.exists():
        return f"{p} does not exist (expected {'a coded-notes table file' if table else 'a MIMIC-III folder'})"
    if table and not p.is_file():
        return f"{p} is a folder; input_format 'table' expects a .csv or .parquet file"
    if not table and not p.is_dir():
        return f"{p} is a file; input_format 'mimic3' expects the MIMIC-III folder (or set input_format: table)"
    raw, out = (p.parent if table else p), OUTPUTS / ctx.notebook / str(ctx.values.get("run_name"))
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        return (f"the output folder {out} would be inside the raw data folder {raw}; nothing is written next to raw "
                "data: move the input or set MCANB_OUTPUTS elsewhere")
    return _header_problem(p, table, str(ctx.values.get("encoding") or "utf-8"))


def _header_problem(p: Path, table: bool, enc: str) -> str | None:
    """The input's files and columns, from the headers only (the rows are checked while preprocessing)."""
    from . import coded_table, data

    try:
        if not table:
            for name in ("NOTEEVENTS", "DIAGNOSES_ICD", "PROCEDURES_ICD"):
                data.find_table(p, name)
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq
            try:
                names = pq.read_schema(p).names
            except Exception as e:  # noqa: BLE001 - any reader failure is one message
                return f"{p}: cannot be read as a Parquet table ({str(e).splitlines()[0]})"
            data.column_map(p, names, coded_table.COLUMNS)
        else:
            data.column_map(p, data.read_header(p, enc), coded_table.COLUMNS)
    except data.DataError as e:
        return str(e)
    return None


def splits_dir(v, ctx) -> str | None:
    if v in (None, "", "caml"):
        return None
    p = resolve(v)
    return None if p.is_dir() else f"{p} is not a folder (expected the split files' folder, None or 'caml')"


def encoding(v, ctx) -> str | None:
    try:
        codecs.lookup(str(v))
    except LookupError:
        return f"unknown text encoding {v!r} (e.g. 'utf-8', 'latin-1', 'cp1252')"
    return None


def encoders(v, ctx) -> str | None:
    """Local stand-in names, ``local:minilm``, a directory with ``config.json``, or a hub id (checked when loaded)."""
    from .encoders import EncoderNotFound, resolve_encoder

    if not isinstance(v, (list, tuple)) or not v:
        return f"expected a non-empty list of encoders, got {v!r}"
    out, hub = [], []
    for name in v:
        if name in names.LOCAL_ENCODERS:
            continue
        try:
            if resolve_encoder(name) == name:        # not a directory: a hub id
                hub.append(name)
        except EncoderNotFound as e:
            out.append(str(e))
    why = hub_problem(hub)
    return "; ".join(out + ([why] if why else [])) or None


def hub_problem(names: list[str]) -> str | None:
    """Why hub ids cannot be loaded now: not in the local Hugging Face cache while offline (``HF_HUB_OFFLINE``) or
    while the hub cannot be reached (one connection attempt, 5 s at most). None when they can (or may)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        missing = [n for n in names if not isinstance(try_to_load_from_cache(n, "config.json"), str)]
    except Exception:  # noqa: BLE001 - an id the cache cannot parse fails later with the hub's own message
        return None
    if not missing:
        return None
    if any(os.environ.get(k, "0").lower() not in ("0", "", "false") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        reason = "HF_HUB_OFFLINE is set"
    else:
        reason = _hub_reachable()
        if reason is None:
            return None
        reason = f"the hub cannot be reached ({reason})"
    return (f"hub id(s) {', '.join(map(repr, missing))} not in the local Hugging Face cache, and {reason}; download "
            "each where there is internet (`hf download ID --local-dir DIR`) and name DIR instead")


@lru_cache(maxsize=1)
def _hub_reachable() -> str | None:
    """None when a connection to the hub opens, else the reason."""
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
        url = urlparse(constants.ENDPOINT)
    except Exception:  # noqa: BLE001
        url = urlparse("https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=5).close()
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def _cnn_models() -> tuple[str, ...]:
    return names.CNN_MODELS


def _baselines() -> tuple[str, ...]:
    return names.BASELINES


def _architectures() -> tuple[str, ...]:
    from .published import ARCHITECTURES
    return tuple(ARCHITECTURES)


COMMON: dict[str, Check] = {
    "run_name": run_name, "seeds": int_list(0), "label_space": label_space, "data_dir": data_dir,
    "batch_size": at_least(1), "num_epochs": at_least(1), "patience": at_least(1, optional=True),
    "grad_accum_steps": at_least(1), "max_words": at_least(1), "max_length": at_least(1),
    "num_threads": at_least(0, optional=True), "amp": one_of("off", "bf16", "fp16"),
    "encoder_lr": positive_number(), "head_lr": positive_number(), "layer_decay": positive_number(),
    "lr": rates(optional=True), "encoder_lrs": rates(), "head_lrs": rates(), "mlm_steps": at_least(1), "mlm_lr": positive_number(),
    "mlm_hidden_size": at_least(1), "mlm_layers": at_least(1), "mlm_vocab_size": at_least(10),
    "segment_length": at_least(3), "max_segments": at_least(1), "segment_layers": at_least(0),
    "segment_heads": at_least(1), "segment_ff": at_least(1, optional=True),
    "hier_variant": one_of("paper", "segment_context"), "encoders": encoders,
    "mlm_sentence_objective": one_of("nsp", "none"), "mlm_seq_len": at_least(8),
    "segment_init": one_of("default", "identity"),
    "segment_lr": positive_number(optional=True), "segment_lrs": rates(), "output_bias": output_bias,
}
VALIDATORS: dict[str, dict[str, Check]] = {
    "01_preprocess": {"input_format": one_of("mimic3", "table"), "input_path": input_path, "splits_dir": splits_dir,
                      "token_rule": one_of("caml", "alpha"), "regex_engine": one_of("re", "regex"),
                      "duplicate_notes": one_of(None, "drop", "keep"), "encoding": encoding,
                      "top_k": at_least(1), "vocab_min_docs": at_least(1), "w2v_corpus": one_of("train", "all"),
                      "w2v_workers": at_least(1), "workers": at_least(0)},
    "03_hierarchy": {"architectures": subset_of(_architectures, empty_ok=False), "pooling": one_of("max", "mean"),
                     "lan_projection_dim": at_least(1, optional=True)},
    "04_cnn_retraining": {"models": subset_of(_cnn_models), "baselines": subset_of(_baselines),
                          "num_filters": at_least(1, optional=True), "filter_sizes": int_list(1, optional=True),
                          "max_steps": at_least(1, optional=True)},
    "05_frequency_analysis": {"label_spaces": subset_of(lambda: ("full", "50"), empty_ok=False),
                              "bins": int_list(0), "threshold": lambda v, ctx: None if isinstance(v, (int, float))
                              and 0 < v < 1 else f"expected a number between 0 and 1, got {v!r}",
                              "n_resamples": at_least(1)},
}


# ---------------------------------------------------------------------------------------------------- checks
def unset_variables(value: Any) -> list[str]:
    """Environment variables named in a string (or list of strings) that are not set: ``"$MIMIC3_DIR/x"`` ->
    ``["MIMIC3_DIR"]`` when unset."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return sorted({m.group(1).strip("{}") for s in items if isinstance(s, str)
                   for m in _UNSET_VAR.finditer(os.path.expandvars(s))})


def writable_problem(folder: Path, what: str) -> str | None:
    """Why ``folder`` cannot be created or written (its nearest existing parent is a file or read-only), or None."""
    p = folder
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if p.exists() and not p.is_dir():
        return f"{what} {folder} cannot be created: {p} is a file, not a folder"
    if p.exists() and not os.access(p, os.W_OK | os.X_OK):
        return f"{what} {folder} cannot be written: {p} is read-only for this user"
    return None


def problems(notebook: str, values: dict[str, Any], produced=()) -> list[str]:
    """One line per problem of ``values`` (a notebook's resolved parameters); ``[]`` when the run may start."""
    ctx = Context(notebook, values, frozenset(resolve(p) for p in produced))
    out = []
    why = writable_problem(OUTPUTS, "the outputs folder" + (" ($MCANB_OUTPUTS)" if "MCANB_OUTPUTS" in os.environ
                                                             else ""))
    if why:
        out.append(why)
    checks = {**COMMON, **VALIDATORS.get(notebook, {})}
    for key, value in values.items():
        unset = unset_variables(value)
        if unset:
            out.append(f"{key}: {value!r} uses the environment variable {', '.join('$' + u for u in unset)}, which is "
                       f"not set; export {unset[0]}=/path/to/... (see the parameter file's comment) and call again")
            continue
        check = checks.get(key)
        msg = check(value, ctx) if check else None
        if msg:
            out.append(f"{key}: {msg}")
    return out


def require(notebook: str, values: dict[str, Any], source: str, produced=()) -> None:
    """Raise ``ParameterError`` listing every problem of :func:`problems` (``source`` says where the values came
    from, e.g. ``parameters/04_cnn_retraining/toy.yaml + -p overrides``)."""
    found = problems(notebook, values, produced)
    if found:
        raise P.ParameterError(f"{notebook} / {source}: " + ("\n  " if len(found) > 1 else "")
                               + "\n  ".join(found))
