"""The switches of a rehearsal (``mcanb study --rehearse``, :mod:`mcanb.rehearse`) that the engine and the encoder
loader read: kept apart from the rehearsal itself so that the low floors of the package (``train``, ``encoders``)
never import the study's orchestration. Outside a rehearsal ``$MCANB_REHEARSE`` is unset and nothing changes.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

ENV = "MCANB_REHEARSE"          # JSON: caps and the stand-in directories, set for the study's child process


def caps() -> dict[str, Any] | None:
    """The rehearsal record of this process (``$MCANB_REHEARSE``), or None outside a rehearsal."""
    raw = os.environ.get(ENV)
    return json.loads(raw) if raw else None


def stand_in(name: str) -> str | None:
    """The stand-in directory of encoder ``name`` during a rehearsal, else None."""
    return ((caps() or {}).get("encoders") or {}).get(str(name))


def apply_caps(config, dev_ds, test_ds, out_dir: Path):
    """``(config, dev_ds, test_ds)`` as a rehearsal trains them: at most ``max_steps`` optimizer steps (dev and test
    are already cut by the rehearsal's split files). Unchanged outside a rehearsal; writes ``rehearsal.json`` into
    ``out_dir``. Refuses to run outside a ``rehearsal`` outputs folder."""
    c = caps()
    if not c:
        return config, dev_ds, test_ds
    from .paths import OUTPUTS

    if "rehearsal" not in OUTPUTS.parts:
        raise RuntimeError(f"${ENV} is set but outputs go to {OUTPUTS}: capped rehearsal runs must never land "
                           "beside real results (mcanb study --rehearse sets MCANB_OUTPUTS itself)")
    config = dataclasses.replace(config, max_steps=min(config.max_steps or c["max_steps"], c["max_steps"]))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "rehearsal.json").write_text(json.dumps({"max_steps": config.max_steps}) + "\n")
    return config, dev_ds, test_ds
