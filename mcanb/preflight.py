"""Pre-flight: every parameter, name, path and environment variable a notebook run needs, checked before it starts.

:func:`problems` runs the validators registered for the notebook's parameters (:data:`VALIDATORS`, by parameter
name; :data:`COMMON` for every notebook) on the resolved values and returns one line per problem, each naming the
parameter, the value and what was expected. :func:`require` raises them as one ``ParameterError``. ``mcanb run``,
``mcanb run --dry-run``, ``mcanb study`` and ``mcanb study --dry-run`` all call it before anything is written, so
a misspelled model name fails in a second instead of after the earlier models trained. Types and unknown keys are
checked before this, against the notebook's parameters cell (:mod:`mcanb.params`).

``produced``: the run folders that earlier runs of the same study will write (``data_dir`` may name one of them;
notebook 05's ``runs`` may match one). A check that needs another parameter reads it with :meth:`Context.get`
(the notebook's default when the run does not give it); :data:`CHECKED_BY_DEFAULT` names the parameters checked
even when only their default applies (notebook 05 with nothing to read).
"""
from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from . import names
from . import params as P
from .paths import NOTEBOOKS, OUTPUTS, TOY_PREPROCESSED, resolve
from .preflight_inputs import (data_dir, encoder_names, encoders, encoding, input_path, prediction_runs,
                               segment_heads, segment_length, splits_dir, verify_caml_splits)


@dataclass
class Context:
    notebook: str
    values: dict[str, Any]
    produced: frozenset[Path] = field(default_factory=frozenset)

    def get(self, key: str, default: Any = None) -> Any:
        """The run's value of ``key``: as given, else the notebook's default (its parameters cell)."""
        if key in self.values:
            return self.values[key]
        return _notebook_defaults(self.notebook).get(key, default)


@lru_cache(maxsize=None)
def _notebook_defaults(notebook: str) -> dict[str, Any]:
    path = NOTEBOOKS / f"{notebook}.ipynb"
    return P.notebook_defaults(path) if path.exists() else {}


Check = Callable[[Any, Context], "str | None"]
_UNSET_VAR = re.compile(r"\$(\w+|\{\w+\})")


# ------------------------------------------------------------------------------------------------ validators
def one_of(*allowed: Any) -> Check:
    return lambda v, ctx: None if v in allowed else f"expected one of {', '.join(map(repr, allowed))}, got {v!r}"


def unknown(bad: list, valid: tuple[str, ...], what: str = "", shown: str | None = None) -> str:
    """``unknown 'cmal' (did you mean caml?); valid: cnn, caml, ...``: each of ``bad`` with the valid name nearest to
    it (:func:`mcanb.params.close_names`, never the same text), and the valid names (``shown`` in their place)."""
    close = [c for x in bad for c in P.close_names(x, valid, n=1)]
    return (f"unknown {what}{', '.join(map(repr, bad))}" + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f"; valid: {shown or ', '.join(valid)}")


RUN_TWICE = "a repeated entry would run and be counted again"


def repeated(v: list | tuple, why: str = RUN_TWICE) -> str | None:
    """Why a list that names an item more than once is refused (``why``: by default, each item is one run), or
    None."""
    twice = [x for i, x in enumerate(v) if x in v[:i]]
    twice = [x for i, x in enumerate(twice) if x not in twice[:i]]
    return f"{', '.join(map(repr, twice))} given more than once; list each once ({why})" if twice else None


def distinct(check: Check, why: str = RUN_TWICE) -> Check:
    """``check``, after refusing a list that names an item more than once (:func:`repeated`, ``why`` its reason)."""
    return lambda v, ctx: (isinstance(v, (list, tuple)) and repeated(v, why)) or check(v, ctx)


def subset_of(allowed: Callable[[], tuple[str, ...]], empty_ok: bool = True) -> Check:
    def check(v, ctx):
        if not isinstance(v, (list, tuple)):
            return f"expected a list, got {v!r}"
        if not v and not empty_ok:
            return f"expected at least one of {', '.join(allowed())}, got []"
        bad = [x for x in v if x not in allowed()]
        return unknown(bad, allowed()) if bad else repeated(v)
    return check


def unknown_keys(v: dict, valid: tuple[str, ...], shown: str | None = None) -> str | None:
    """Why a mapping with keys outside ``valid`` is refused (an entry nothing reads), or None."""
    bad = [k for k in v if k not in valid]
    return unknown(bad, valid, "key " if len(bad) == 1 else "keys ", shown) if bad else None


def at_least(lo: float, optional: bool = False, kind: type = int) -> Check:
    def check(v, ctx):
        if v is None and optional:
            return None
        ok = isinstance(v, kind) and not isinstance(v, bool) if kind is int else isinstance(v, (int, float))
        return None if ok and v >= lo else (f"expected {'None or ' if optional else ''}"
                                            f"{'a whole number' if kind is int else 'a number'} >= {lo}, got {v!r}")
    return check


def between(lo: float, hi: float) -> Check:
    """A number strictly between ``lo`` and ``hi``."""
    def check(v, ctx):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo < v < hi
        return None if ok else f"expected a number strictly between {lo:g} and {hi:g}, got {v!r}"
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
    if v in ok:
        return None
    if isinstance(v, dict) and all(x in ok for x in v.values()):
        return unknown_keys(v, _head_keys(ctx))
    return f"expected a mapping of 'default' or 'prior' per head, e.g. {{'fcn': 'prior'}} ({{}}: 'default'), got {v!r}"


def rates(optional: bool = False, keys: Callable[[Context], tuple[str, ...]] | None = None,
          shown: Callable[[Context], str] | None = None) -> Check:
    """A learning rate > 0, or a mapping ``{name: rate}`` (per model, per encoder or per head; ``default`` for the
    rest), each rate > 0; with ``keys``, each name one of ``keys(ctx)`` (``shown(ctx)`` lists them in a message)."""
    one = positive_number(optional)

    def check(v, ctx):
        if not isinstance(v, dict):
            return one(v, ctx)
        bad = {k: r for k, r in v.items() if positive_number()(r, ctx)}
        if bad:
            return f"expected a number > 0 for each entry, got {bad}"
        return unknown_keys(v, keys(ctx), shown(ctx) if shown else None) if keys else None
    return check


def _head_keys(ctx=None) -> tuple[str, ...]:
    """Keys of a per-head mapping (``mcanb.bert_study.setting_for``): an architecture, a head (the architecture's
    second part: fcn, lan) or ``default``."""
    archs = _architectures()
    return (*archs, *dict.fromkeys(a.split("_")[1] for a in archs), "default")


def _encoder_keys(ctx) -> tuple[str, ...]:
    """Keys of ``encoder_lrs`` (``mcanb.bert_study.rows``): a name in ``encoders`` or of a local encoder, an encoder
    row's label (the local encoders', the paper's) or ``default``."""
    from .published import BERT_ENCODERS, LOCAL_LABELS

    given = [e for e in ctx.get("encoders") or () if isinstance(e, str)]
    less = ctx.get("less_data")
    pct = round(100 * less) if isinstance(less, (int, float)) else "{pct}"
    labels = [label.format(pct=pct) for label in LOCAL_LABELS.values()]
    return (*dict.fromkeys([*given, *names.LOCAL_ENCODERS, *BERT_ENCODERS, *labels]), "default")


def _encoder_keys_shown(ctx) -> str:
    given = [e for e in ctx.get("encoders") or () if isinstance(e, str)]
    return (f"a name in encoders ({', '.join(given)}) or of a local encoder ({', '.join(names.LOCAL_ENCODERS)}), "
            "an encoder's row label, or 'default'")


def int_list(lo: int = 0, optional: bool = False, empty_ok: bool = False) -> Check:
    """A list of whole numbers >= ``lo``."""
    def check(v, ctx):
        if v is None and optional:
            return None
        if (not isinstance(v, (list, tuple)) or (not v and not empty_ok)
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo for x in v)):
            return f"expected a {'' if empty_ok else 'non-empty '}list of whole numbers >= {lo}, got {v!r}"
        return None
    return check


def stopping_metric(v, ctx) -> str | None:
    """None (the training engine's default) or a dev metric that training computes for the run's label space: the
    names :func:`mcanb.metrics.check_metric_name` accepts, for the label space's codes (:func:`_code_count`)."""
    if v is None:
        return None
    from .metrics import check_metric_name, evaluate

    n, ks, where = _code_count(ctx)
    valid = tuple(check_metric_name(functools.partial(evaluate, k=ks), "loss", n))
    shown = [m for m in valid if not (m.startswith("n_") or "_n_" in m or m == "threshold")]   # counts: no criterion
    return None if v in valid else unknown([v], valid, "dev metric ", f"{', '.join(shown)} ({where})")


def _code_count(ctx) -> tuple[int, tuple[int, ...], str]:
    """The run's number of codes, the P@k cut-offs training uses for them (``mcanb.metrics.default_k``) and where
    that comes from: ``data_dir``'s ``labels.csv`` of the label space when it exists, else the label space's own
    k values (on 50 codes)."""
    from .metrics import default_k, k_for_label_space

    space = str(ctx.get("label_space", "50"))
    labels = resolve(ctx.get("data_dir") or TOY_PREPROCESSED) / space / "labels.csv"
    try:
        with open(labels, newline="", encoding="utf-8") as f:
            n = max(1, sum(1 for _ in csv.reader(f)) - 1)
        return n, default_k(n), f"label space {space!r}: {n} codes in {labels}"
    except (OSError, UnicodeDecodeError, csv.Error):
        return 50, k_for_label_space(space if space in ("50", "full") else "50"), f"label space {space!r}"


def frequency_bins(v, ctx) -> str | None:
    """Notebook 05's lower bin edges: whole numbers from 0, strictly increasing (the last bin is open), so every
    code's training count falls in exactly one bin."""
    why = int_list(0)(v, ctx)
    if why or (v[0] == 0 and all(a < b for a, b in zip(v, v[1:]))):
        return why
    return f"expected strictly increasing lower edges starting at 0 (every code's training count in one bin), got {v}"


def run_name(v, ctx):
    if not isinstance(v, str) or not v or v in (".", "..") or "/" in v or "\\" in v:
        return f"expected a folder name (no '/', not empty), got {v!r}"
    return None


def label_space(v, ctx):
    from .processed import LABEL_SPACES
    return None if v in LABEL_SPACES else f"expected one of {', '.join(map(repr, LABEL_SPACES))}, got {v!r}"


def _cnn_models() -> tuple[str, ...]:
    return names.CNN_MODELS


def _baselines() -> tuple[str, ...]:
    return names.BASELINES


def more_data_pairs(v, ctx) -> str | None:
    """Notebook 02's (less data, more data) pairs of Tables 3 and 4: each two different names from ``encoders``."""
    if not isinstance(v, (list, tuple)):
        return f"expected a list of [less data, more data] pairs of names in encoders, [] for none; got {v!r}"
    known = encoder_names(ctx)
    for pair in v:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or pair[0] == pair[1]:
            return f"expected pairs of two different names [less data, more data], got {pair!r}"
        missing = [str(n) for n in pair if str(n) not in known]
        if missing:
            return (f"{list(pair)!r} names {', '.join(map(repr, missing))}, which is not in encoders {known}: add it "
                    "there or leave the pair out")
    return repeated([list(p) for p in v])


def _architectures() -> tuple[str, ...]:
    from .published import ARCHITECTURES
    return tuple(ARCHITECTURES)


def amp(v, ctx) -> str | None:
    """Mixed precision needs a CUDA GPU: on a machine without one, training would stop at its first step."""
    problem = one_of("off", "bf16", "fp16")(v, ctx)
    if problem or v == "off":
        return problem
    import torch
    return None if torch.cuda.is_available() else (f"{v!r} needs a CUDA GPU and this machine has none (torch "
                                                   f"{torch.__version__}); run with -p amp off")


# Notebook 01's settings that only MIMIC-III input reads, with the values that change nothing
MIMIC_ONLY = {"splits_dir": (None, ""), "verify_caml_splits": (False,), "caml_compat": (False,), "drop_iserror": (False,),
              "duplicate_notes": (None,)}


def input_format(v, ctx) -> str | None:
    """``mimic3`` or ``table``; a table given a setting that only MIMIC-III input reads would silently ignore it."""
    problem = one_of("mimic3", "table")(v, ctx)
    if problem or v != "table":
        return problem
    given = [k for k, neutral in MIMIC_ONLY.items() if k in ctx.values and ctx.values[k] not in neutral]
    from .paper_verdicts import join_words
    return (f"'table' takes its splits from the table's split column and reads no MIMIC-III notes, so {join_words(given)} "
            f"would be ignored; leave {'it' if len(given) == 1 else 'them'} out") if given else None


def folder_to_write(what: str) -> Check:
    """A folder a run creates and writes (``runs_dir``, ``encoders_dir``): None for the default, else a path whose
    nearest existing parent is a writable folder."""
    def check(v, ctx):
        if v is None:
            return None
        if not isinstance(v, str) or not v:
            return f"expected None or the path of a folder, got {v!r}"
        return writable_problem(resolve(v), what)
    return check


def mlm_seq_len(v, ctx) -> str | None:
    """A pretraining example must fit the local encoders' positions (``MlmConfig.max_position``)."""
    from .encoders import MlmConfig
    top = MlmConfig.max_position
    return at_least(8)(v, ctx) or (None if v <= top else f"expected at most {top} (the local encoders' positions), "
                                                          f"got {v!r}")


# Each filter size is one MultiResCNN channel (Li & Yu 2020: 3, 5, 9, 15, 19, 25); a size given twice adds a second
# channel identical to the first in shape and role (only its random start differs), not another resolution.
ONE_CHANNEL_EACH = "each size is one MultiResCNN channel: a repeated size would build two identical channels"


COMMON: dict[str, Check] = {
    "run_name": run_name, "seeds": distinct(int_list(0)), "label_space": label_space, "data_dir": data_dir,
    "batch_size": at_least(1), "num_epochs": at_least(1), "patience": at_least(1, optional=True),
    "grad_accum_steps": at_least(1), "max_words": at_least(1), "max_length": at_least(1),
    "num_threads": at_least(0, optional=True), "amp": amp,
    "encoder_lr": positive_number(), "head_lr": positive_number(), "layer_decay": positive_number(),
    "encoder_lrs": rates(keys=_encoder_keys, shown=_encoder_keys_shown), "head_lrs": rates(keys=_head_keys),
    "mlm_steps": at_least(1), "mlm_lr": positive_number(),
    "mlm_hidden_size": at_least(1), "mlm_layers": at_least(1), "mlm_vocab_size": at_least(10),
    "segment_length": segment_length, "max_segments": at_least(1), "segment_layers": at_least(0),
    "segment_heads": segment_heads, "segment_ff": at_least(1, optional=True),
    "hier_variant": one_of("paper", "segment_context"), "encoders": distinct(encoders),
    "mlm_sentence_objective": one_of("nsp", "none"), "mlm_seq_len": mlm_seq_len,
    "runs_dir": folder_to_write("the run store"), "encoders_dir": folder_to_write("the encoders folder"),
    "segment_init": one_of("default", "identity"),
    "segment_lr": positive_number(optional=True), "segment_lrs": rates(keys=_head_keys), "output_bias": output_bias,
    "early_stopping_metric": stopping_metric, "less_data": between(0, 1),
}
VALIDATORS: dict[str, dict[str, Check]] = {
    "02_pretraining_domains": {"more_data_pairs": more_data_pairs},
    "01_preprocess": {"input_format": input_format, "input_path": input_path, "splits_dir": splits_dir,
                      "verify_caml_splits": verify_caml_splits,
                      "token_rule": one_of("caml", "alpha"), "regex_engine": one_of("re", "regex"),
                      "duplicate_notes": one_of(None, "drop", "keep"), "encoding": encoding,
                      "top_k": at_least(1), "vocab_min_docs": at_least(1), "w2v_corpus": one_of("train", "all"),
                      "w2v_workers": at_least(1), "workers": at_least(0)},
    "03_hierarchy": {"architectures": subset_of(_architectures, empty_ok=False), "pooling": one_of("max", "mean"),
                     "lan_projection_dim": at_least(1, optional=True)},
    "04_cnn_retraining": {"models": subset_of(_cnn_models, empty_ok=False), "baselines": subset_of(_baselines),
                          "lr": rates(optional=True, keys=lambda ctx: _cnn_models()),
                          "num_filters": at_least(1, optional=True),
                          "filter_sizes": distinct(int_list(1, optional=True), ONE_CHANNEL_EACH),
                          "max_steps": at_least(1, optional=True)},
    "05_frequency_analysis": {"label_spaces": subset_of(lambda: ("full", "50"), empty_ok=False),
                              "bins": frequency_bins, "threshold": between(0, 1), "n_resamples": at_least(1),
                              "runs": prediction_runs},
}
# Parameters checked with the notebook's default when a run does not give them (what the run reads must exist).
CHECKED_BY_DEFAULT: dict[str, tuple[str, ...]] = {"05_frequency_analysis": ("runs",),
                                                  "02_pretraining_domains": ("segment_heads", "more_data_pairs"),
                                                  "03_hierarchy": ("segment_heads",)}   # against encoders' widths


# ---------------------------------------------------------------------------------------------------- checks
def unset_variables(value: Any) -> list[str]:
    """Environment variables named in a string (or list of strings) that are not set, or set to nothing (``export
    MIMIC3_DIR=``, which would name the repository itself): ``"$MIMIC3_DIR/x"`` -> ``["MIMIC3_DIR"]``."""
    items = value if isinstance(value, (list, tuple)) else [value]
    named = {m.group(1).strip("{}") for s in items if isinstance(s, str) for m in _UNSET_VAR.finditer(s)}
    return sorted(n for n in named if not os.environ.get(n, "").strip())


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
    defaults = {k: ctx.get(k) for k in CHECKED_BY_DEFAULT.get(notebook, ()) if k not in values}
    for key, value in {**values, **defaults}.items():
        unset = unset_variables(value)
        if unset:
            out.append(f"{key}: {value!r} uses the environment variable {', '.join('$' + u for u in unset)}, which is "
                       f"not set or is empty; export {unset[0]}=/path/to/... (see the parameter file's comment) and call again")
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
