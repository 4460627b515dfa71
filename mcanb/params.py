"""Parameter files for papermill: every key is checked against the notebook's parameters cell.

papermill only warns about a parameter the notebook does not define, so a misspelled key in a YAML file
would be silently ignored (a known trap of this field's configs). Here it is an error naming the file,
the key and the closest valid names; a value of the wrong type is an error too.

A file holds only what differs from another: ``extends: base.yaml`` (a path relative to the file) reads that
file first and lays this one's keys over it, top-level key by key (a list replaces a list). Chains are allowed;
a cycle or a missing file is one error naming the file. A file whose name is ``base.yaml`` or ends in
``_base.yaml`` holds shared settings only and is never run by itself (:func:`is_base`). Example:
``parameters/02_pretraining_domains/mimic3_50.yaml`` extends ``mimic3_table2_base.yaml``, which extends
``mimic3_base.yaml``.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError, read_yaml_mapping


class ParameterError(UserError, ValueError):
    """A parameter file or override does not fit the notebook's parameters cell."""


def notebook_defaults(notebook: str | Path) -> dict[str, Any]:
    """``{name: default}`` of the cell tagged ``parameters`` (via papermill's inspector)."""
    import papermill

    info = papermill.inspect_notebook(str(notebook))
    out = {}
    for name, p in info.items():
        try:
            out[name] = yaml.safe_load(p["default"]) if p["default"] not in ("None",) else None
        except yaml.YAMLError:
            out[name] = p["default"]
        if p["default"] in ("True", "False"):
            out[name] = p["default"] == "True"
    return out


EXTENDS = "extends"


def is_base(path: str | Path) -> bool:
    """True for a base file (``base.yaml``, ``*_base.yaml``): settings other files extend, never a run of its own."""
    stem = Path(path).stem
    return stem == "base" or stem.endswith("_base")


def _read_mapping(path: Path, named_by: Path | None) -> dict[str, Any]:
    if not path.is_file():
        where = f" (named by 'extends' in {named_by})" if named_by else ""
        raise ParameterError(f"{path}: parameter file not found{where}")
    return read_yaml_mapping(path, ParameterError)


def extends_chain(path: str | Path) -> list[Path]:
    """The file and every file it extends, the file itself first (absolute paths).

    Raises :class:`ParameterError` naming the file for a missing file, a cycle, or an ``extends`` that is not a path.
    """
    chain: list[Path] = []
    current, named_by = Path(path).absolute(), None
    while True:
        current = Path(os.path.normpath(current))
        if current in chain:
            loop = " -> ".join(str(p) for p in [*chain[chain.index(current):], current])
            raise ParameterError(f"{chain[0]}: 'extends' makes a cycle: {loop}")
        doc = _read_mapping(current, named_by)
        chain.append(current)
        parent = doc.get(EXTENDS)
        if parent is None:
            return chain
        if not isinstance(parent, str) or not parent.strip():
            raise ParameterError(f"{current}: 'extends' should be the path of another parameter file "
                                 f"(relative to this one), got {parent!r}")
        named_by, current = current, current.parent / os.path.expandvars(os.path.expanduser(parent))


def load_file(path: str | Path) -> dict[str, Any]:
    """A YAML parameter file as a flat mapping, ``extends`` resolved (clear error for anything else).

    The result never holds ``extends``: it is what the notebook receives and ``params.yaml`` records.
    """
    values: dict[str, Any] = {}
    for file in reversed(extends_chain(path)):      # the base first, each file's keys over it
        values.update({k: v for k, v in _read_mapping(file, None).items() if k != EXTENDS})
    return values


def _type_ok(value: Any, default: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


# A number with an exponent that YAML 1.1 (PyYAML) reads as text: ``1e-3``, ``3E5``, ``1.5e3`` (no dot or no sign).
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def _number(value: Any) -> Any:
    """``value`` as a float when it is text that YAML 1.2 reads as a number with an exponent, else unchanged."""
    return float(value) if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()) else value


def _whole_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int)


def _coerce_one(value: Any, default: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value == "None" and not isinstance(default, str):      # Python's None, as the parameter cells write it
        return None
    if isinstance(default, str):
        return str(value) if _whole_number(value) else value
    if isinstance(default, list) and default and all(isinstance(d, str) for d in default):
        return [str(x) if _whole_number(x) else x for x in value] if isinstance(value, list) else value
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(x) for x in value]
    n = _number(value)
    whole = isinstance(default, int) and not isinstance(default, bool)
    return int(n) if whole and n is not value and n.is_integer() else n


def coerce(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``params`` with what YAML reads otherwise than the user means taken as meant, the same for files and ``-p``:

    * a whole number for a text parameter is its text (YAML reads ``50`` as an int): ``{"label_space": 50}`` ->
      ``{"label_space": "50"}``; so is a whole number in a list whose default lists text (``label_spaces: [50]``);
    * a number with an exponent, which PyYAML (YAML 1.1) reads as text, is a number for every parameter that is not
      text, and in its lists and mappings: ``{"lr": "1e-3"}`` -> ``{"lr": 0.001}``, ``{"lr": {"cnn": "1e-4"}}``.
    * ``None``, which the notebooks' parameter cells write and YAML reads as text, is YAML's ``null`` for every
      parameter that is not text: ``-p lr None`` -> ``{"lr": None}``; a text parameter keeps the text.

    Nothing else changes."""
    return {k: _coerce_one(v, defaults.get(k)) for k, v in params.items()}


def close_names(word: Any, choices, n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` near ``word`` (case ignored), never ``word`` itself: difflib's close matches,
    then names that contain it or that it contains (``lr_rate`` -> ``lr``), the most similar first."""
    w = str(word).lower()
    by_lower = {str(c).lower(): str(c) for c in choices}
    found = difflib.get_close_matches(w, list(by_lower), n=n)
    similar = sorted((c for c in by_lower if min(len(c), len(w)) > 1 and (c in w or w in c) and c not in found),
                     key=lambda c: -difflib.SequenceMatcher(None, w, c).ratio())
    return [by_lower[c] for c in found + similar if by_lower[c] != str(word)][:n]


def check(params: dict[str, Any], defaults: dict[str, Any], source: str) -> None:
    """Raise :class:`ParameterError` for unknown keys or values whose type differs from the default's."""
    for key, value in params.items():
        if key not in defaults:
            close = close_names(key, defaults)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ParameterError(f"{source}: unknown parameter {key!r}{hint} "
                                 f"(valid: {', '.join(sorted(defaults))})")
        if not _type_ok(value, defaults[key]):
            raise ParameterError(f"{source}: parameter {key!r} should be {type(defaults[key]).__name__} "
                                 f"like its default {defaults[key]!r}, got {value!r}")
