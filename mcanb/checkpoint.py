"""Checkpoint files: atomic writes, safe loads, RNG state capture, and clear errors for bad files.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(path, weights_only=True)``: no pickled Python objects, nothing executed on load. RNG states are
stored as tensors and lists (``capture_rng``), the configuration as a plain dict.

Writes are atomic (temporary file, fsync, ``os.replace``), so a process killed mid-write leaves the previous
checkpoint intact. A truncated or corrupt file, or one written for another model or configuration, raises
``CheckpointError`` naming the file and what does not match.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .errors import UserError

FORMAT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be read or does not fit the run that tries to load it."""


def save(obj: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``obj`` to ``path`` atomically: temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **obj}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(path: str | Path, kind: str | None = None, remedy: Callable[[], str] | None = None) -> dict:
    """Load a checkpoint with ``weights_only=True`` onto the CPU; ``CheckpointError`` if unreadable, ending with
    ``remedy()``, what to do about it, worked out only then (default: delete it; ``mcanb predict`` says how to
    retrain the run)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found" + (f"; {remedy()}" if remedy else ""))

    def advice() -> str:
        return remedy() if remedy else "delete it to start that run over"

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, unsafe global, ...: one clear message for all
        raise CheckpointError(f"{path}: cannot read checkpoint: the file is damaged (truncated or corrupt) or was "
                              f"not written by this version of mcanb ({_reason(e)}); {advice()}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        found = ckpt.get("format_version") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an mcanb checkpoint of format {FORMAT_VERSION} (found {found!r}): "
                              f"written by another version of mcanb or another program; {advice()}")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: expected a {kind!r} checkpoint, found {ckpt.get('kind')!r}; {advice()}")
    return ckpt


def _reason(err: Exception) -> str:
    """The error's type and first sentence, unless torch's text advises loading with ``weights_only=False``, which
    would run whatever code the file holds: never offered."""
    first = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:200]
    return type(err).__name__ + (f": {first}" if first and "weights" not in first.lower() else "")


def check_matches(path: str | Path, what: str, saved: Mapping[str, Any], current: Mapping[str, Any],
                  ignore: Iterable[str] = ()) -> None:
    """Raise ``CheckpointError`` listing every key whose value differs between ``saved`` and ``current``."""
    ignore = set(ignore)
    keys = sorted((set(saved) | set(current)) - ignore)
    diffs = [f"{k}: checkpoint={saved.get(k, '<absent>')!r}, now={current.get(k, '<absent>')!r}"
             for k in keys if _plain(saved.get(k, "<absent>")) != _plain(current.get(k, "<absent>"))]
    if diffs:
        raise CheckpointError(f"{path}: checkpoint was written for a different {what}:\n  " + "\n  ".join(diffs))


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def load_model_state(path: str | Path, model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` after checking names and shapes, with a readable error if they differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        lines = ([f"missing in checkpoint: {missing[:10]}"] if missing else []) + \
                ([f"not in model: {unexpected[:10]}"] if unexpected else []) + shapes[:10]
        raise CheckpointError(f"{path}: checkpoint does not fit the model ({type(model).__name__}):\n  "
                              + "\n  ".join(lines))
    model.load_state_dict(state)


def capture_rng() -> dict:
    """The process's RNG states (Python, NumPy, torch CPU and CUDA) as tensors and plain containers."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
