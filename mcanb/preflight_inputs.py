"""Pre-flight checks of what a run reads: the preprocessed folder, the raw input and its headers, split files, the
text encoding, encoders and the hub, and notebook 05's predictions. Each takes a parameter's value and the run's
:class:`mcanb.preflight.Context` and returns a problem or None; :data:`mcanb.preflight.COMMON` and
:data:`mcanb.preflight.VALIDATORS` register them. Only headers and file lists are read (the rows are checked while
preprocessing), so the checks take well under a second on MIMIC-III.
"""
from __future__ import annotations

import codecs
import difflib
import fnmatch
import os
from functools import lru_cache
from pathlib import Path

from . import names
from .paths import OUTPUTS, TOY_PREPROCESSED, resolve
from .processed import preprocessed_problem


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
    enc = str(ctx.values.get("encoding") or "utf-8")
    why = _header_problem(p, table, enc)
    if why or table:
        from .coded_table import split_problem
        return why or split_problem(p, enc)
    if ctx.get("splits_dir") not in (None, ""):
        return None
    return split_files_problem(p / "splits", "splits_dir None reads the split files from <input_path>/splits")


def _header_problem(p: Path, table: bool, enc: str) -> str | None:
    """The input's files and columns, from the headers only (the rows are checked while preprocessing)."""
    from . import coded_table, data

    try:
        if not table:
            for name, columns in data.READ_COLUMNS.items():
                found = data.find_table(p, name, required=name not in data.OPTIONAL_TABLES)
                if found is not None:
                    data.column_map(found, data.read_header(found, enc), columns)
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
    if ctx.get("input_format") == "table":      # not read (preflight.input_format says so when it is given)
        return None
    if v == "caml":
        return caml_splits_problem()
    if v in (None, ""):
        return None
    p = resolve(v)
    if not p.is_dir():
        return f"{p} is not a folder (expected the split files' folder, None or 'caml')"
    return split_files_problem(p)


def verify_caml_splits(v, ctx) -> str | None:
    """With ``verify_caml_splits: true``, the split files of a folder (``splits_dir``, or ``<input_path>/splits``)
    must be CAML's, byte for byte: checked here, in milliseconds, rather than after all of NOTEEVENTS is read.
    ``splits_dir: caml`` is verified when downloaded."""
    if v is not True:
        return None if v is False else f"expected true or false, got {v!r}"
    given, raw = ctx.get("splits_dir"), ctx.get("input_path")
    if given == "caml" or (given in (None, "") and raw in (None, "")):
        return None
    folder = resolve(given) if given not in (None, "") else resolve(raw) / "splits"
    from .splits import SHA256, sha256
    differ = [f for f, want in SHA256.items() if (folder / f).is_file() and sha256(folder / f) != want]
    return (f"{', '.join(differ)} in {folder} differ from CAML's published files (SHA-256); use CAML's files "
            "(splits_dir: caml), or set verify_caml_splits: false to run on your own split files") if differ else None


def split_files_problem(folder: Path, why: str = "") -> str | None:
    """Which split files notebook 01 reads (``mcanb.documents.assign_splits``) are missing from ``folder``: the
    three of the full code set, and the top-50 ones all or none (``why``: how the folder was chosen)."""
    from .splits import SPLITS, split_filename

    full, fifty = ([split_filename(s, space) for s in SPLITS] for space in ("full", "50"))
    lost, lost_50 = ([f for f in files if not (folder / f).is_file()] for files in (full, fifty))
    where = f"{folder}{f' ({why})' if why else ''}"
    if lost:
        return (f"{where}: no {', '.join(lost)}; notebook 01 reads {', '.join(full)}, and {', '.join(fifty)} "
                "when all three are there")
    if 0 < len(lost_50) < len(fifty):
        return (f"{where}: top-50 split file(s) {', '.join(lost_50)} not found beside the others; give all three "
                "or none (none: the top-50 space takes its documents from the full splits)")
    return None


def encoding(v, ctx) -> str | None:
    try:
        codecs.lookup(str(v))
    except LookupError:
        return f"unknown text encoding {v!r} (e.g. 'utf-8', 'latin-1', 'cp1252')"
    return None


def encoders(v, ctx) -> str | None:
    """Local stand-in names, ``local:minilm``, a directory with ``config.json``, or a hub id (checked when loaded).

    A near-miss of a local name (``in-domian``) that is no folder and not of the hub's ``owner/name`` form is refused
    with the name it is close to, even when the hub can be reached."""
    from .encoders import EncoderNotFound, encoder_folder_lacks, resolve_encoder

    local = (*names.LOCAL_ENCODERS, "local:minilm")

    def near_miss(name: str) -> str | None:
        key = name.strip().lower()
        if name in local or "/" in name or os.sep in name or resolve(name).is_dir():
            return None
        close = (difflib.get_close_matches(key, local, n=1, cutoff=0.75)
                 or difflib.get_close_matches(key.removeprefix("local:"), names.LOCAL_ENCODERS, n=1, cutoff=0.75))
        return close[0] if close else None

    if not isinstance(v, (list, tuple)) or not v:
        return f"expected a non-empty list of encoders, got {v!r}"
    out, hub = [], []
    for name in v:
        if name in names.LOCAL_ENCODERS:
            continue
        near = near_miss(str(name))
        if near:
            out.append(f"unknown encoder {name!r} (did you mean {near}?); expected a local stand-in "
                       f"({', '.join(local)}), a folder, or a hub id of the form owner/name")
            continue
        try:
            found = resolve_encoder(name)
            if not Path(found).is_dir():             # not a directory: a hub id
                hub.append(name)
            elif encoder_folder_lacks(Path(found)):  # the model loads, but the run needs its tokenizer too
                out.append(f"encoder directory {found} holds no tokenizer files (tokenizer.json or vocab.txt): a "
                           "saved encoder folder needs them beside config.json and the weights")
        except EncoderNotFound as e:
            out.append(str(e))
    why = hub_problem(hub)
    return "; ".join(out + ([why] if why else [])) or None


# The local encoders this project builds (at mlm_hidden_size, segment_heads); "minilm" is a packaged checkpoint.
MLM_ENCODERS = tuple(n for n in names.LOCAL_ENCODERS if n != "minilm")


def _encoder_size(name: str, key: str, ctx) -> tuple[int, str] | None:
    """``(value, where it comes from)`` of ``key`` (``hidden_size``, ``max_position_embeddings``) of one of
    ``encoders``: for the local encoders this project pretrains, ``mlm_hidden_size`` and the pretraining's positions
    (``encoders.MlmConfig.max_position``); else the ``config.json`` of a folder, the packaged MiniLM or a hub id in
    the local cache; None when it cannot be known before loading (a hub id not yet downloaded)."""
    import json

    if name in MLM_ENCODERS:
        if key == "hidden_size":
            width = ctx.get("mlm_hidden_size")
            return (width, "mlm_hidden_size") if isinstance(width, int) and width > 0 else None
        from .encoders import MlmConfig
        return MlmConfig.max_position, "the local encoders' pretraining"
    try:
        from .encoders import resolve_encoder
        where = resolve_encoder("local:minilm" if name == "minilm" else name)
        config = Path(where) / "config.json"
        if not config.exists():
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(where, "config.json")
            config = Path(cached) if isinstance(cached, str) else None
        value = json.loads(config.read_text()).get(key) if config else None
    except Exception:  # noqa: BLE001 - an encoder that cannot be read is the encoders check's to report
        return None
    return (value, "its config.json") if isinstance(value, int) else None


def _said_by_source(wrong: dict[str, tuple[int, str]]) -> str:
    """``"general, in-domain (64, from mlm_hidden_size); minilm (384, from its config.json)"``."""
    groups: dict[tuple[int, str], list[str]] = {}
    for n, found in wrong.items():
        groups.setdefault(found, []).append(n)
    return "; ".join(f"{', '.join(ns)} ({w}, from {src})" for (w, src), ns in groups.items())


def encoder_names(ctx) -> list[str]:
    """The run's ``encoders``, as strings ([] when the value is not a list: its own check reports it)."""
    given = ctx.get("encoders")
    return [str(n) for n in given] if isinstance(given, (list, tuple)) else []


def segment_length(v, ctx) -> str | None:
    """Word pieces per segment, ``[CLS]`` and ``[SEP]`` included: a whole number >= 3 that fits the positions of every
    encoder (512 for BERT), checked before anything is built (the model's constructor says the same later)."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 3:
        return f"expected a whole number >= 3, got {v!r}"
    short = {}
    for name in encoder_names(ctx):
        found = _encoder_size(name, "max_position_embeddings", ctx)
        if found and v > found[0]:
            short[name] = found
    if not short:
        return None
    return (f"{v} word pieces do not fit the positions of {_said_by_source(short)}: a segment, [CLS] and [SEP] "
            f"included, must fit them; use {min(w for w, _ in short.values())} or fewer")


def segment_heads(v, ctx) -> str | None:
    """A whole number >= 1 that divides the width of every encoder it splits into attention heads: the local
    encoders this project pretrains (``mlm_hidden_size``), and, with a transformer over the segments (BERT-hier,
    ``segment_layers`` >= 1), every encoder's width. Checked before anything is built, where it would fail as a
    traceback from the model's constructor."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        return f"expected a whole number >= 1, got {v!r}"
    architectures = ctx.get("architectures") or ("hier_lan",)     # notebook 02 always runs BERT-hier
    layers = ctx.get("segment_layers")
    segments = (isinstance(layers, int) and layers >= 1 and isinstance(architectures, (list, tuple))
                and any(str(a).startswith("hier") for a in architectures))
    wrong = {}
    for name in encoder_names(ctx):
        if name in MLM_ENCODERS or segments:
            found = _encoder_size(name, "hidden_size", ctx)
            if found and found[0] % v:
                wrong[name] = found
    if not wrong:
        return None
    widths = sorted({w for w, _ in wrong.values()})
    fits = [h for h in range(1, 17) if all(w % h == 0 for w in widths)]
    said = _said_by_source(wrong)
    return (f"{v} attention heads do not divide the width of {said}: each head takes an equal share of it; "
            f"use {', '.join(map(str, fits[-3:]))} or another divisor")


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
            return _not_on_hub(missing)
        reason = f"the hub cannot be reached ({reason})"
    return (f"hub id(s) {', '.join(map(repr, missing))} not in the local Hugging Face cache, and {reason}; download "
            "each where there is internet (`hf download ID --local-dir DIR`) and name DIR instead")


def _not_on_hub(names: list[str]) -> str | None:
    """With the hub reachable: the ids it says no repository has (a typo, or a private one without a token), asked
    before any work rather than found at the first encoder load; None when it has them all or cannot say."""
    try:
        absent = [n for n in names if not _on_hub(n)]
    except Exception:  # noqa: BLE001 - a hub that does not answer: the load says why, with the hub's own message
        return None
    return (f"hub id(s) {', '.join(map(repr, absent))}: no such model on the Hugging Face hub (check the spelling "
            "against the model card; a private one needs `hf auth login`)") if absent else None


def _on_hub(name: str) -> bool:
    """Whether the hub has model repository ``name`` (a gated one counts: it exists); 5 s at most per question."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    try:
        HfApi().model_info(name, timeout=5)
    except GatedRepoError:
        return True
    except RepositoryNotFoundError:
        return False
    return True


def _hub_reachable() -> str | None:
    """None when a connection to the hub opens, else the reason."""
    try:
        from huggingface_hub import constants
        return _reachable(constants.ENDPOINT)
    except ImportError:
        return _reachable("https://huggingface.co")


@lru_cache(maxsize=None)
def _reachable(url: str) -> str | None:
    """None when a connection to ``url``'s host opens (5 s at most, once per process), else the reason."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=5).close()
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def caml_splits_problem() -> str | None:
    """``splits_dir: caml`` fetches CAML's six split files into the cache (``mcanb.splits``) when they are not
    there: why that cannot happen now (the host cannot be reached), or None."""
    from . import splits

    cache = splits.cache_dir()
    if all((cache / name).exists() for name in splits.SHA256):
        return None
    url = splits.CAML_URL.format(name="")
    why = _reachable(url)
    if why is None:
        return None
    from urllib.parse import urlparse

    return (f"'caml' downloads CAML's split files into {cache}, but {urlparse(url).hostname} cannot be reached "
            f"({why}); put the six files ({', '.join(splits.SHA256)}) in a folder and name it in splits_dir, or "
            "into that cache folder")


def prediction_runs(v, ctx) -> str | None:
    """Notebook 05's ``runs``: names or glob patterns that find test predictions to read
    (:func:`mcanb.frequency.find_predictions`, whose message names the notebook to run first), or that name a run
    an earlier run of the same study writes (``ctx.produced``)."""
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) and x for x in v):
        return f"expected a non-empty list of run names or glob patterns, got {v!r}"
    if any(p.parent.parent == OUTPUTS and p.parent.name != ctx.notebook and fnmatch.fnmatchcase(p.name, pattern)
           for p in ctx.produced for pattern in v):
        return None
    from .frequency import find_predictions

    try:
        find_predictions(list(v))
    except (FileNotFoundError, ValueError) as e:
        return str(e)
    return None
