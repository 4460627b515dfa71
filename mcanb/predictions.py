"""Saved scores of a run: ``predictions_{dev,test}.parquet`` with one row per document.

Columns: ``hadm_id`` (int64) and ``scores`` (fixed-size list<float32>[C], column order = label index of the
label space's ``labels.csv``). Written by ``mcanb.train.fit`` and the baselines, read without Python loops by the
notebooks' comparisons (:mod:`mcanb.paired`: the paired bootstrap of two runs over the test notes) and by Figure 3
(:mod:`mcanb.frequency`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def save_predictions(path: str | Path, hadm_ids: np.ndarray, y_score: np.ndarray) -> Path:
    """Write ``hadm_ids (n,)`` and ``y_score (n, C)`` (stored as float32) to the parquet file ``path``."""
    flat = pa.array(np.ascontiguousarray(y_score, dtype=np.float32).reshape(-1))
    table = pa.table({"hadm_id": pa.array(hadm_ids, pa.int64()),
                      "scores": pa.FixedSizeListArray.from_arrays(flat, y_score.shape[1])})
    pq.write_table(table, path)
    return Path(path)


def load_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``save_predictions``: ``(hadm_ids (n,), y_score (n, C) float32)`` without Python loops."""
    table = pq.read_table(path)
    col = table.column("scores").combine_chunks()
    y_score = col.flatten().to_numpy(zero_copy_only=False).reshape(len(table), col.type.list_size)
    return table.column("hadm_id").to_numpy(), y_score
