"""Threshold fitting on dev: exact optimum, applied consistently, per-code option, refuses its own labels."""
from __future__ import annotations

import numpy as np
import pytest

from mcanb import metrics as M


def _split(seed: int, n: int = 120, m: int = 15, scale: float = 0.45):
    """Scores all below 0.5 but informative: threshold 0.5 predicts nothing, a tuned one does well."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, m)) < 0.2).astype(int)
    s = scale * np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, (n, m)), 0, 1)
    return y, s


def _brute_micro_f1(y, s):
    cands = np.concatenate([[s.min() - 1], np.unique(s)])
    return max(M.micro_f1(y, s, float(t)) for t in cands)


def test_fit_improves_dev_micro_f1_over_half():
    y, s = _split(0)
    thr = M.Threshold.fit(y, s)
    assert M.micro_f1(y, s, 0.5) == 0.0
    assert thr.dev_score > 0.8
    assert M.micro_f1(y, s, thr.threshold) == pytest.approx(thr.dev_score)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_is_the_exact_optimum(seed):
    y, s = _split(seed, n=40, m=6)
    s = np.round(s, 2)  # ties
    thr = M.Threshold.fit(y, s)
    assert thr.dev_score == pytest.approx(_brute_micro_f1(y, s))
    assert not np.any(s == thr.threshold)  # sits between dev scores


def test_apply_and_evaluate_are_consistent():
    y_dev, s_dev = _split(0)
    y_test, s_test = _split(1)
    thr = M.Threshold.fit(y_dev, s_dev)
    np.testing.assert_array_equal(thr.apply(s_test), s_test > thr.threshold)
    assert M.evaluate(y_test, s_test, threshold=thr) == M.evaluate(y_test, s_test, threshold=thr.threshold)
    assert M.evaluate(y_test, s_test, threshold=thr)["threshold"] == thr.threshold


def test_threshold_fitted_on_evaluated_labels_is_refused():
    y, s = _split(0)
    thr = M.Threshold.fit(y, s)
    with pytest.raises(ValueError, match="fitted on the labels being evaluated"):
        M.evaluate(y, s, threshold=thr)
    with pytest.raises(ValueError, match="fitted on the labels being evaluated"):
        M.bootstrap_ci(y, s, threshold=thr, n_resamples=10)
    M.evaluate(y, s, threshold=thr.threshold)  # scoring dev on purpose: pass the plain value


def test_per_code_thresholds():
    y, s = _split(3, n=60, m=8)
    y[:, 7] = 0  # no dev positive: falls back to the global threshold
    thr = M.Threshold.fit(y, s, per_code=True)
    glob = M.Threshold.fit(y, s)
    assert thr.per_code and thr.threshold.shape == (8,) and thr.n_fallback == 1
    assert thr.threshold[7] == glob.threshold
    for j in range(7):  # each code's own F1 is maximal at its threshold
        col_y, col_s = y[:, [j]], s[:, [j]]
        best = _brute_micro_f1(col_y, col_s)
        assert M.micro_f1(col_y, col_s, float(thr.threshold[j])) == pytest.approx(best)
    assert thr.dev_score == pytest.approx(M.micro_f1(y, s, thr.threshold))
    np.testing.assert_array_equal(thr.apply(s), s > thr.threshold[None, :])
    e = M.evaluate(*_split(4, n=60, m=8), threshold=thr)
    assert "threshold_median" in e and "threshold" not in e


def test_fit_errors():
    y, s = _split(0)
    with pytest.raises(ValueError, match="objective"):
        M.Threshold.fit(y, s, objective="macro_f1")
    with pytest.raises(ValueError, match="no positive"):
        M.Threshold.fit(np.zeros_like(y), s)
    thr = M.Threshold.fit(y, s, per_code=True)
    with pytest.raises(ValueError, match="per-code threshold has 15 codes"):
        thr.apply(s[:, :3])


def test_threshold_between_adjacent_float32_scores_is_exact():
    """A Python-float threshold between two adjacent float32 scores must not round onto the upper one."""
    a = np.float32(0.1)
    b = np.nextafter(a, np.float32(1))
    s = np.array([[a, b]], dtype=np.float32)
    y = np.array([[0, 1]])
    t = (float(a) + float(b)) / 2
    assert M.micro_f1(y, s, t) == 1.0
    np.testing.assert_array_equal(M.Threshold(t).apply(s), [[False, True]])
    thr = M.Threshold.fit(y, s)
    assert float(a) <= thr.threshold < float(b) and thr.dev_score == 1.0
    assert M.micro_f1(y, s, thr.threshold) == 1.0
