"""Published MIMIC-III results of the CNN family, as data with a source for every number (percent).

Two sources per number, because they disagree (docs/reference.md §Published numbers):

* ``"paper"``: as printed in Ji, Hölttä & Marttinen 2021, Table 6 (Ji et al. 2021, Table 6).
* ``"original"``: as reported by each model's own publication, taken from docs/reference.md §Published numbers (CAML:
  Mullenbach et al. 2018; MultiResCNN: Li & Yu 2020; LAAT: Vu et al. 2020). The clearest disagreement: the paper
  prints 44.5 for CAML's full-code P@15, CAML's paper reports 56.1 (the CNN's 44.3 agrees in both).

Numbers missing from a source are simply absent (``value`` returns ``None``); nothing is filled in from memory.
Read by :func:`mcanb.cnn_study.table6`; explained in notebooks/04_cnn_retraining.ipynb, §5.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Column order of one label space in Table 6; keys are mcanb.metrics.evaluate names.
METRICS = {"50": ("macro_auc", "micro_auc", "macro_f1_caml", "micro_f1", "p@5"),
           "full": ("macro_auc", "micro_auc", "macro_f1_caml", "micro_f1", "p@8", "p@15")}
METRIC_LABELS = {"macro_auc": "macro-AUC", "micro_auc": "micro-AUC", "macro_f1_caml": "macro-F1",
                 "micro_f1": "micro-F1", "p@5": "P@5", "p@8": "P@8", "p@15": "P@15"}
SOURCES = {"paper": "as printed in the paper", "original": "original publication"}


@dataclass(frozen=True)
class Published:
    """One published number (percent)."""

    model: str          # row name in Table 6, e.g. "CNN (retrained)"
    label_space: str    # "50" | "full"
    metric: str         # an mcanb.metrics.evaluate name
    value: float        # percent, as printed
    source: str         # "paper" | "original"
    where: str          # citation: table and line, or publication


_TABLE6 = "Ji et al. 2021, Table 6"
_REF = "docs/reference.md §Published numbers ({pub})"

# (model, label space, source, where, values in METRICS[label space] order; None = not reported there)
_ROWS = [
    ("CNN (Kim, 2014)", "50", "paper", _TABLE6, (87.6, 90.7, 57.6, 62.5, 62.0)),
    ("CAML", "50", "paper", _TABLE6, (87.5, 90.9, 53.2, 61.4, 60.9)),
    ("MultiResCNN", "50", "paper", _TABLE6, (89.9, 92.8, 60.6, 67.0, 64.1)),
    ("HyperCore", "50", "paper", _TABLE6, (89.5, 92.9, 60.9, 66.3, 63.2)),
    ("CNN (retrained)", "50", "paper", _TABLE6, (90.8, 93.1, 62.4, 67.1, 64.0)),
    ("CNN (Kim, 2014)", "full", "paper", _TABLE6, (80.6, 96.9, 4.2, 41.9, 58.1, 44.3)),
    ("CAML", "full", "paper", _TABLE6, (89.5, 98.6, 8.8, 53.9, 70.9, 44.5)),
    ("MultiResCNN", "full", "paper", _TABLE6, (91.0, 98.6, 8.5, 55.2, 73.4, 58.4)),
    ("HyperCore", "full", "paper", _TABLE6, (93.0, 98.9, 9.0, 55.1, 72.2, 57.9)),
    ("CNN (retrained)", "full", "paper", _TABLE6, (85.0, 97.4, 5.9, 36.5, 49.0, 39.4)),
    # The paper is the retrained CNN's own publication (docs/reference.md §Published numbers lists its top-50
    # row as such).
    ("CNN (retrained)", "50", "original", _REF.format(pub="Ji et al. 2021, Table 6"),
     (90.8, 93.1, 62.4, 67.1, 64.0)),
    ("MultiResCNN", "50", "original", _REF.format(pub="Li & Yu 2020"), (89.9, 92.8, 60.6, 67.0, 64.1)),
    ("LAAT", "50", "original", _REF.format(pub="Vu et al. 2020"), (92.5, 94.6, 66.6, 71.5, 67.5)),
    ("CNN (Kim, 2014)", "full", "original", _REF.format(pub="CAML paper's CNN: P@15 44.3"),
     (None, None, None, None, None, 44.3)),
    ("CAML", "full", "original", _REF.format(pub="Mullenbach et al. 2018"), (89.5, 98.6, 8.8, 53.9, 70.9, 56.1)),
    ("MultiResCNN", "full", "original", _REF.format(pub="Li & Yu 2020"), (91.0, 98.6, 8.5, 55.2, 73.4, 58.4)),
    ("LAAT", "full", "original", _REF.format(pub="Vu et al. 2020"), (91.9, 98.8, 9.9, 57.5, 73.8, 59.1)),
]

NUMBERS: tuple[Published, ...] = tuple(
    Published(model, space, metric, value, source, where)
    for model, space, source, where, values in _ROWS
    for metric, value in zip(METRICS[space], values, strict=True) if value is not None)


def value(model: str, label_space: str, metric: str, source: str) -> float | None:
    """One published number in percent, or ``None`` if that source does not report it.

    Example: ``value("CNN (retrained)", "50", "micro_f1", "paper")`` -> ``67.1``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    hits = [n.value for n in NUMBERS if (n.model, n.label_space, n.metric, n.source) ==
            (model, label_space, metric, source)]
    return hits[0] if hits else None


def frame() -> pd.DataFrame:
    """Every published number as a tidy table (model, label_space, metric, value, source, where)."""
    return pd.DataFrame([n.__dict__ for n in NUMBERS])
