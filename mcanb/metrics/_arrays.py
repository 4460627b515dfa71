"""Input checks and the sorting/counting primitives every metric family shares (internal).

The fast paths avoid sorting the whole (n_docs, n_codes) matrix: scores are mapped to monotone integer
keys, only the entries that can matter ("candidates", e.g. entries at or above a row's lowest gold score)
are sorted, and counts below a gold score come from packed (group, key) integers and ``searchsorted``.
"""
from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np

# Buckets of the global count (micro AUC, global threshold): 2**22 over the key range (fastest of 18-24 bits
# measured at MIMIC-III full shape; the histogram is 32 MB).
_BUCKET_BITS = 22


def _first_bad(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the first True entry of a 2-D mask in row-major order."""
    flat = int(np.argmax(mask.ravel()))
    return flat // mask.shape[1], flat % mask.shape[1]


def check_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(gold, scores)``: gold as bool (n_docs, n_codes), scores float32/float64, all finite.

    Raises ``ValueError`` on a shape mismatch, an empty matrix, labels other than 0/1, or NaN/inf scores
    (naming how many and the first (row, col)); ``TypeError`` on non-numeric scores.
    Example: ``check_inputs([[1, 0]], [[0.9, 0.1]])`` -> ``(array([[True, False]]), array([[0.9, 0.1]]))``.
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if y_true.ndim != 2 or y_score.ndim != 2:
        raise ValueError(f"y_true and y_score must be 2-D (n_docs, n_codes); got shapes "
                         f"{y_true.shape} and {y_score.shape}")
    if y_true.shape != y_score.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_score {y_score.shape}")
    if 0 in y_true.shape:
        raise ValueError(f"empty input: shape {y_true.shape}; need at least one document and one code")
    return _check_labels(y_true), _check_scores(y_score)


def _check_scores(y_score: np.ndarray) -> np.ndarray:
    if y_score.dtype.kind in "biu":
        y_score = y_score.astype(np.float64)
    elif y_score.dtype not in (np.float32, np.float64):
        if y_score.dtype.kind != "f":
            raise TypeError(f"y_score must hold real numbers, got dtype {y_score.dtype}")
        y_score = y_score.astype(np.float64)  # float16 / longdouble
    if not np.isfinite(y_score).all():
        nan, bad = np.isnan(y_score), ~np.isfinite(y_score)
        row, col = _first_bad(bad)
        raise ValueError(f"y_score has {int(bad.sum())} non-finite values ({int(nan.sum())} NaN, "
                         f"{int(bad.sum() - nan.sum())} inf); first at row {row}, col {col}")
    return np.ascontiguousarray(y_score)


def _check_labels(y_true: np.ndarray) -> np.ndarray:
    if y_true.dtype == bool:
        return np.ascontiguousarray(y_true)
    if y_true.dtype.kind in "iu":
        ok = y_true.min() >= 0 and y_true.max() <= 1
    elif y_true.dtype.kind == "f":
        ok = bool(((y_true == 0) | (y_true == 1)).all())
    else:
        raise TypeError(f"y_true must be a 0/1 (multi-hot) array, got dtype {y_true.dtype}")
    if not ok:
        bad = (y_true != 0) & (y_true != 1)
        row, col = _first_bad(bad)
        raise ValueError(f"y_true must be multi-hot 0/1; {int(bad.sum())} other values, first "
                         f"{y_true[row, col].item()!r} at row {row}, col {col}")
    return np.ascontiguousarray(y_true != 0)


def sortable_keys(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Monotone integer keys of finite floats (``a < b`` iff ``key(a) < key(b)``; -0.0 equals 0.0), and their bit width.

    float32 input (or float64 that is exactly float32) gives non-negative keys below 2**32: a zero-copy
    uint32 view when no sign bit is set (sigmoid scores), else int64. Other float64 input gives signed
    int64 keys (64 bits). Example: ``sortable_keys(np.float32([-1, 0, 2]))[0]`` is increasing.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        x32 = x.astype(np.float32)
        if np.array_equal(x32, x):
            x = x32
    if x.dtype == np.float32:
        i = x.view(np.int32)
        if not (i < 0).any():  # all >= 0 and no -0.0: the bit pattern is already monotone
            return i.view(np.uint32), 32
        i = (x + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into 0.0
        i = i ^ ((i >> 31) & np.int32(0x7FFFFFFF))  # negative floats: reverse the magnitude order
        return i.astype(np.int64) + (1 << 31), 32
    i = (x.astype(np.float64) + 0.0).view(np.int64)
    return i ^ ((i >> 63) & np.int64(0x7FFFFFFFFFFFFFFF)), 64


def cast_threshold(t, dtype: np.dtype) -> np.ndarray:
    """Threshold(s) in the scores' dtype such that ``score > cast`` equals the exact ``score > t``.

    Needed because NumPy compares float32 scores with a Python float in float32, which can round a
    threshold lying between two float32 scores onto the upper one. Rounds down instead.
    Example: ``cast_threshold(0.5, np.float32)`` -> ``array(0.5, dtype=float32)``.
    """
    t = np.asarray(t, dtype=np.float64)
    if np.dtype(dtype) == np.float64:
        return t
    low = t.astype(dtype)
    return np.where(low > t, np.nextafter(low, np.asarray(-np.inf, dtype)), low).astype(dtype)


def dense_keys(keys: np.ndarray, bits: int, queries: np.ndarray | None = None):
    """Non-negative keys of at most 32 bits: unchanged if already so, else dense ranks (queries must be in keys).

    Returns ``(keys, queries, bits)``. Example: 64-bit keys ``[5, -3, 5]`` -> ``[1, 0, 1]``, 1 bit.
    """
    if bits <= 32:
        return keys.astype(np.int64, copy=False), None if queries is None else queries.astype(np.int64), bits
    uniq, inv = np.unique(keys, return_inverse=True)
    q = None if queries is None else np.searchsorted(uniq, queries)
    return inv.astype(np.int64), q, max(int(len(uniq) - 1).bit_length(), 1)


def pack(*fields: tuple[np.ndarray, int]) -> np.ndarray | None:
    """Pack non-negative integer fields (most significant first) into one int64; None if over 63 bits.

    Example: ``pack((np.array([1]), 2), (np.array([3]), 2))`` -> ``array([7])``.
    """
    if sum(bits for _, bits in fields) > 63:
        return None
    out = np.zeros(len(fields[0][0]), dtype=np.int64)
    for values, bits in fields:
        out <<= bits
        out |= values
    return out


def bit_width(n: int) -> int:
    """Bits needed to store 0..n-1. Example: ``bit_width(8921)`` -> 14."""
    return max(int(n - 1).bit_length(), 1)


def count_below_global(keys: np.ndarray, bits: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query key: how many of ``keys`` are strictly smaller, and how many are equal.

    keys: (n,) from ``sortable_keys``; queries: (q,) keys of the same kind. Entries are counted in (up to)
    2**22 buckets of the key range; only entries in a bucket that holds a query are sorted, so the cost is a
    few passes plus a sort of the entries near the queries (worst case: one full sort).
    """
    n_bits = min(_BUCKET_BITS, max(8, int(keys.size).bit_length() - 3))  # small inputs: small histogram
    shift = bits - n_bits
    offset = 0 if bits == 32 else 1 << (n_bits - 1)  # 64-bit keys are signed
    bucket, q_bucket = keys >> shift, (queries >> shift).astype(np.int64) + offset
    if offset:
        bucket += offset
    hist = np.bincount(bucket, minlength=1 << n_bits)
    below_bucket = np.cumsum(hist) - hist
    busy = np.zeros(1 << n_bits, dtype=bool)
    busy[q_bucket] = True
    sub = keys[busy[bucket]]
    del bucket
    sub.sort()
    first = np.searchsorted(sub, (queries >> shift) << shift, side="left")  # first entry of the bucket
    lo = np.searchsorted(sub, queries, side="left")
    hi = np.searchsorted(sub, queries, side="right")
    return below_bucket[q_bucket] + (lo - first), hi - lo


def count_below_sorted(values: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(#values < q, #values == q) for each query, ``values`` already sorted.

    Example: ``count_below_sorted(np.array([1, 2, 2]), np.array([2]))`` -> ``([1], [2])``.
    """
    lo = np.searchsorted(values, queries, side="left")
    return lo, np.searchsorted(values, queries, side="right") - lo


class Prepared:
    """Validated inputs plus the gold entries' positions, computed once and shared by all metrics.

    gold: (n_docs, n_codes) bool; score: (n_docs, n_codes) float; rows/cols: (n_gold,) positions of the
    gold entries in row-major order.
    """

    def __init__(self, y_true, y_score):
        self.gold, self.score = check_inputs(y_true, y_score)
        self.n_docs, self.n_codes = self.gold.shape
        flat = np.flatnonzero(self.gold)
        self.rows, self.cols = np.divmod(flat, self.n_codes)

    @cached_property
    def gold_scores(self) -> np.ndarray:
        """(n_gold,) scores of the gold entries."""
        return self.score[self.rows, self.cols]

    @cached_property
    def per_doc(self) -> np.ndarray:
        """(n_docs,) number of gold codes per document."""
        return np.bincount(self.rows, minlength=self.n_docs)

    @cached_property
    def per_code(self) -> np.ndarray:
        """(n_codes,) number of documents with each code."""
        return np.bincount(self.cols, minlength=self.n_codes)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the gold labels; used to refuse a threshold tuned on the labels being evaluated."""
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(self.gold.shape, dtype=np.int64).tobytes())
        h.update(self.rows.astype(np.int64).tobytes())
        h.update(self.cols.astype(np.int64).tobytes())
        return h.hexdigest()


def code_candidates(d: "Prepared") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per code, the entries scoring at or above that code's lowest gold score, as packed sortable keys.

    Only these entries matter for a per-code rank or cut: every other entry is a negative below all positives.
    Returns ``(candidates sorted, gold keys in d.cols order, n_candidates per code)``; used by the per-code AUC
    and the per-code threshold fit.
    """
    lowest = np.full(d.n_codes, np.inf, dtype=d.score.dtype)
    np.minimum.at(lowest, d.cols, d.gold_scores)
    r, c = np.divmod(np.flatnonzero(d.score >= lowest), d.n_codes)
    n_cand = np.bincount(c, minlength=d.n_codes)
    keys, bits = sortable_keys(np.concatenate([d.score[r, c], d.gold_scores]))
    keys, _, bits = dense_keys(keys, bits)
    cb = bit_width(d.n_codes)
    cand = pack((c, cb), (keys[: len(r)], bits))
    if cand is None:
        raise ValueError(f"too many codes to rank ({d.n_codes}); per-code ranking supports up to 2**29 codes")
    cand.sort()
    return cand, pack((d.cols, cb), (keys[len(r):], bits)), n_cand
