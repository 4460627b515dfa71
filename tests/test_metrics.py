"""mcanb.metrics against scikit-learn, CAML's definitions and a hand-computed example; degenerate cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (average_precision_score, f1_score, precision_recall_fscore_support,
                             roc_auc_score)

from mcanb import metrics as M
from mcanb import reporting

# ---------------------------------------------------------------- a 3 x 4 example worked by hand
# Codes 0..3; code 3 has no gold document. Scores > 0.5 are predicted (0.5 itself is not).
Y = np.array([[1, 0, 1, 0],
              [0, 1, 0, 0],
              [1, 1, 0, 0]])
S = np.array([[0.9, 0.2, 0.6, 0.1],
              [0.8, 0.8, 0.4, 0.7],
              [0.7, 0.4, 0.5, 0.6]])
# predicted:   [1,0,1,0] / [1,1,0,1] / [1,0,0,1]
# per code (TP, #predicted, #gold): c0 (2,3,2)  c1 (1,1,2)  c2 (1,1,1)  c3 (0,2,0)
# micro: TP 4, predicted 7, gold 5 -> P 4/7, R 4/5, F1 8/12
# CAML macro: P = (2/3 + 1 + 1 + 0)/4 = 2/3, R = (1 + 1/2 + 1 + 0)/4 = 5/8, F1 = 20/31
# per-code F1 = 2TP/(pred+gold): 4/5, 2/3, 1, 0 -> macro_f1_present (codes 0-2) = 37/45,
#     macro_f1_all (codes 0-3, code 3 counts 0) = (4/5 + 2/3 + 1 + 0)/4 = 37/60
# AUC: c0 pos {.9,.7} neg {.8} -> 1/2; c1 pos {.8,.4} neg {.2} -> 1; c2 pos {.6} neg {.4,.5} -> 1;
#      c3 skipped (no positive) -> macro 5/6, 1 skipped
# micro AUC: positives .9 .6 .8 .7 .4 beat 7, 4+½, 6+½, 5+½, 2+½ of the 7 negatives -> 26/35
# P@1: doc 1 ties .8/.8 on codes 0,1 -> lower index (code 0, not gold) wins -> (1 + 0 + 1)/3
# P@2: (2/2 + 1/2 + 1/2)/3 = 2/3; R@2: (2/2 + 1/1 + 1/2)/3 = 5/6
# R-precision: R = 2, 1, 2 -> (1 + 0 + 1/2)/3 = 1/2
# AP: doc 0 -> 1; doc 1: gold .8 tied with a non-gold .8 -> 1/2; doc 2: ranks 1 and 4 -> (1 + 2/4)/2
#     -> mAP = (1 + 1/2 + 3/4)/3 = 3/4
HAND = {"micro_precision": 4 / 7, "micro_recall": 4 / 5, "micro_f1": 8 / 12, "macro_precision": 2 / 3,
        "macro_recall": 5 / 8, "macro_f1_caml": 20 / 31, "macro_f1_present": 37 / 45, "macro_f1_all": 37 / 60,
        "macro_auc": 5 / 6,
        "macro_auc_n_skipped": 1, "micro_auc": 26 / 35, "p@1": 2 / 3, "p@2": 2 / 3, "r@2": 5 / 6,
        "r_precision": 1 / 2, "map": 3 / 4, "n_gold": 5, "n_predicted": 7, "n_codes_present": 3}


def test_hand_computed_example():
    got = M.evaluate(Y, S, k=(1, 2))
    for name, want in HAND.items():
        assert got[name] == pytest.approx(want, abs=1e-12), name
    np.testing.assert_allclose(M.per_code_f1(Y, S), [4 / 5, 2 / 3, 1, 0])
    np.testing.assert_allclose(M.per_code_auc(Y, S), [0.5, 1, 1, np.nan])


def test_hand_computed_frequency_bins():
    table = M.f1_by_frequency(Y, S, train_counts=[0, 5, 12, 1000])
    assert list(table["bin"]) == ["0", "1-9", "10-49", "50-99", "100-499", "500-999", "1000+"]
    assert list(table["n_codes"]) == [1, 1, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(table["micro_f1"], [4 / 5, 2 / 3, 1, np.nan, np.nan, np.nan, 0])
    np.testing.assert_allclose(table["macro_f1_present"], [4 / 5, 2 / 3, 1, np.nan, np.nan, np.nan, np.nan])
    got = M.evaluate(Y, S, train_counts=[0, 5, 12, 1000])
    assert got["micro_f1_freq_1-9"] == pytest.approx(2 / 3) and got["n_codes_freq_50-99"] == 0
    assert "micro_f1_freq_50-99" not in got and "macro_f1_present_freq_1000+" not in got
    assert got["micro_f1_freq_1000+"] == 0.0


# ---------------------------------------------------------------- random and adversarial matrices

def _case(name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if name == "random":
        y = (rng.random((40, 30)) < 0.2).astype(int)
        return y, rng.random((40, 30))
    if name == "zipf":  # Zipf-like code frequencies, rare codes without positives, float32 sigmoid
        freq = 0.6 / (np.arange(60) + 1.0) ** 1.1
        y = (rng.random((80, 60)) < freq).astype(np.int8)
        logit = np.log(freq / (1 - freq)) + 2.5 * y + rng.normal(0, 1.2, y.shape)
        return y, (1 / (1 + np.exp(-logit))).astype(np.float32)
    if name == "ties":  # heavy ties, bool labels
        y = rng.random((50, 20)) < 0.3
        return y, np.round(rng.random((50, 20)) * 0.6 + 0.3 * y, 1)
    if name == "degenerate":  # empty and all-positive columns, empty and all-positive rows
        y = (rng.random((30, 12)) < 0.3).astype(float)
        y[:, 0], y[:, 1], y[3], y[5] = 0, 1, 0, 1
        return y, rng.random((30, 12)).astype(np.float32)
    if name == "logits":  # raw logits: negative scores and signed zeros
        y = (rng.random((40, 25)) < 0.25).astype(int)
        s = np.round(rng.normal(0, 2, (40, 25)) + 1.5 * y, 1).astype(np.float32)
        s[0, :5] = -0.0
        s[1, :5] = 0.0
        return y, s
    if name == "float64_close":  # distinct float64 values that collapse in float32 (64-bit key path)
        y = (rng.random((30, 15)) < 0.3).astype(int)
        return y, 0.5 + rng.random((30, 15)) * 1e-9 + 1e-10 * y
    raise KeyError(name)


CASES = ["random", "zipf", "ties", "degenerate", "logits", "float64_close"]


def _sk_reference(y, s, ks, t=0.5):
    """The same numbers from scikit-learn per-code/per-document functions (P@k: stable, lower index first)."""
    y = np.asarray(y).astype(int)
    n, m = y.shape
    pos = y.sum(0)
    ok = (pos > 0) & (pos < n)
    pred = s > t
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    pc, rc, _, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    fc = f1_score(y, pred, average=None, zero_division=0)
    out = {"macro_auc": np.mean([roc_auc_score(y[:, j], s[:, j]) for j in np.flatnonzero(ok)]),
           "micro_auc": roc_auc_score(y.ravel(), s.ravel()), "micro_precision": p, "micro_recall": r,
           "micro_f1": f, "macro_precision": pc.mean(), "macro_recall": rc.mean(),
           "macro_f1_caml": 2 * pc.mean() * rc.mean() / (pc.mean() + rc.mean()) if pc.mean() + rc.mean() else 0.0,
           "macro_f1_present": fc[pos > 0].mean(), "macro_f1_all": fc.mean(), "macro_auc_n_skipped": int((~ok).sum())}
    order = np.argsort(-s, axis=1, kind="stable")
    hits = np.take_along_axis(y, order, axis=1).cumsum(1)
    g = y.sum(1)
    for k in ks:
        out[f"p@{k}"] = np.mean(hits[:, k - 1] / k)
        out[f"r@{k}"] = np.mean(np.where(g > 0, hits[:, k - 1] / np.maximum(g, 1), 0))
    out["r_precision"] = np.mean(np.where(g > 0, hits[np.arange(n), np.maximum(g, 1) - 1] / np.maximum(g, 1), 0))
    out["map"] = np.mean([average_precision_score(y[i], s[i]) if g[i] else 0.0 for i in range(n)])
    return out, fc


@pytest.mark.parametrize("name", CASES)
def test_matches_sklearn(name):
    y, s = _case(name)
    got = M.evaluate(y, s, k=(1, 3, 5))
    want, per_code = _sk_reference(y, s, (1, 3, 5))
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-10), key
    np.testing.assert_allclose(M.per_code_f1(y, s), per_code, atol=1e-12)


@pytest.mark.parametrize("name", ["random", "zipf", "degenerate"])
def test_matches_caml_definitions(name):
    """CAML's formulas (docs/reference.md §Metrics): macro over ALL codes, +1e-10; P@k from argsort[::-1]."""
    y, s = _case(name)
    y = np.asarray(y).astype(int)
    yhat = np.round(s)  # CAML thresholds by rounding: 0.5 -> 0
    tp = (yhat * y).sum(0)
    mp, mr = np.mean(tp / (yhat.sum(0) + 1e-10)), np.mean(tp / (y.sum(0) + 1e-10))
    caml_f1 = 0.0 if mp + mr == 0 else 2 * mp * mr / (mp + mr)
    top = np.argsort(s)[:, ::-1]
    got = M.evaluate(y, s, k=(5, 8))
    assert got["macro_f1_caml"] == pytest.approx(caml_f1, abs=1e-8)
    for k in (5, 8):
        hits = np.array([y[i, top[i, :k]].sum() for i in range(len(y))])
        with np.errstate(invalid="ignore", divide="ignore"):
            rec = hits / y.sum(1)
        rec[np.isnan(rec)] = 0.0
        assert got[f"p@{k}"] == pytest.approx(np.mean(hits / k), abs=1e-12)
        assert got[f"r@{k}"] == pytest.approx(np.mean(rec), abs=1e-12)


def test_functions_agree_with_evaluate():
    y, s = _case("zipf")
    e = M.evaluate(y, s, k=(5,))
    assert M.micro_f1(y, s) == e["micro_f1"]
    assert M.micro_precision_recall_f1(y, s) == (e["micro_precision"], e["micro_recall"], e["micro_f1"])
    assert M.macro_f1_caml(y, s) == e["macro_f1_caml"] and M.macro_f1_present(y, s) == e["macro_f1_present"]
    assert M.macro_f1_all(y, s) == e["macro_f1_all"]
    assert M.macro_auc(y, s) == e["macro_auc"] and M.micro_auc(y, s) == e["micro_auc"]
    assert M.precision_at_k(y, s, 5) == e["p@5"] and M.recall_at_k(y, s, 5) == e["r@5"]
    assert M.r_precision(y, s) == e["r_precision"] and M.mean_average_precision(y, s) == e["map"]
    c = M.code_counts(y, s)
    np.testing.assert_array_equal(c.fp + c.tp, c.predicted)
    np.testing.assert_array_equal(c.fn + c.tp, np.asarray(y).sum(0))


def test_label_dtypes_give_same_result():
    y, s = _case("random")
    base = M.evaluate(y, s)
    assert M.evaluate(y.astype(bool), s) == base
    assert M.evaluate(y.astype(np.float32), s) == base
    assert M.evaluate(y.tolist(), s.tolist()) == base


def test_sortable_keys_and_global_counts_match_brute_force():
    from mcanb.metrics._arrays import count_below_global, sortable_keys

    rng = np.random.default_rng(3)
    for x in (np.float32(np.round(rng.normal(0, 3, 5000), 1)),
              np.concatenate([rng.normal(0, 1e-30, 50), [-0.0, 0.0, 1e-45, -1e-45, 3e38, -3e38]]),
              rng.random(3000)):
        keys, bits = sortable_keys(x)
        order = np.argsort(x, kind="stable")
        assert np.all(np.diff(keys[order].astype(np.float64)) >= 0)
        q = rng.choice(len(x), 200)
        less, equal = count_below_global(keys, bits, keys[q])
        np.testing.assert_array_equal(less, [(x < x[i]).sum() for i in q])
        np.testing.assert_array_equal(equal, [(x == x[i]).sum() for i in q])


# ---------------------------------------------------------------- degenerate cases

def test_nothing_predicted_gives_zero_precision_not_nan():
    y, s = _case("random")
    e = M.evaluate(y, s * 0.1)  # every score < 0.5
    assert e["n_predicted"] == 0
    assert e["micro_precision"] == e["micro_f1"] == e["macro_precision"] == e["macro_f1_caml"] == 0.0
    assert e["macro_f1_present"] == 0.0


def test_no_positives_at_all():
    s = np.random.default_rng(0).random((6, 4))
    e = M.evaluate(np.zeros((6, 4), int), s, k=2)
    assert "micro_auc" not in e and "macro_auc" not in e and "macro_f1_present" not in e
    assert e["macro_auc_n_skipped"] == 4 and e["n_docs_no_gold"] == 6 and e["n_codes_present"] == 0
    assert e["p@2"] == e["r@2"] == e["map"] == e["r_precision"] == 0.0
    with pytest.raises(ValueError, match="micro AUC undefined"):
        M.micro_auc(np.zeros((6, 4)), s)
    with pytest.raises(ValueError, match="macro AUC undefined"):
        M.macro_auc(np.zeros((6, 4)), s)
    with pytest.raises(ValueError, match="no code has a gold"):
        M.macro_f1_present(np.zeros((6, 4)), s)


def test_all_positive_code_is_skipped_and_counted():
    y = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0]])
    s = np.array([[0.1, 0.9, 0.3], [0.2, 0.2, 0.8], [0.3, 0.7, 0.1]])
    e = M.evaluate(y, s, k=1)
    assert e["macro_auc_n_skipped"] == 1 and e["macro_auc"] == pytest.approx(1.0)


def test_document_without_gold_counts_zero_in_ranking_metrics():
    y = np.array([[1, 0, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.1, 0.2], [0.9, 0.1, 0.2]])
    e = M.evaluate(y, s, k=1)
    assert e["n_docs_no_gold"] == 1
    assert e["p@1"] == e["r@1"] == e["r_precision"] == e["map"] == 0.5


def test_p_at_k_ties_break_by_lower_code_index():
    y = np.array([[0, 1, 1, 0]])
    s = np.array([[0.5, 0.5, 0.5, 0.5]])
    assert M.precision_at_k(y, s, 1) == 0.0  # code 0 wins the tie
    assert M.precision_at_k(y[:, ::-1], s, 1) == 0.0
    assert M.precision_at_k(np.array([[1, 0, 0, 0]]), s, 1) == 1.0
    assert M.precision_at_k(y, s, 2) == 0.5 and M.precision_at_k(y, s, 3) == pytest.approx(2 / 3)


def test_auc_ties_are_averaged_like_sklearn():
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.5], [0.5], [0.5], [0.2]])
    assert M.macro_auc(y, s) == pytest.approx(roc_auc_score(y.ravel(), s.ravel())) == 0.75


@pytest.mark.parametrize("bad, count, where", [((1, 2), 1, "row 1, col 2"), ((0, 0), 1, "row 0, col 0")])
def test_nan_scores_raise_with_count_and_position(bad, count, where):
    s = np.random.default_rng(0).random((3, 4))
    s[bad] = np.nan
    s[2, 3] = np.inf
    with pytest.raises(ValueError, match=rf"{count + 1} non-finite values \(1 NaN, 1 inf\); first at {where}"):
        M.evaluate(Y, s)


@pytest.mark.parametrize("y, s, msg", [
    (Y, S[:, :3], "shape mismatch"),
    (Y[0], S[0], "must be 2-D"),
    (np.zeros((0, 4)), np.zeros((0, 4)), "empty input"),
    (Y * 2, S, "multi-hot 0/1; 5 other values, first 2 at row 0, col 0"),
])
def test_bad_inputs_raise(y, s, msg):
    with pytest.raises(ValueError, match=msg):
        M.evaluate(y, s)


def test_bad_k_threshold_bins_raise():
    with pytest.raises(ValueError, match="k must be"):
        M.evaluate(Y, S, k=5)
    with pytest.raises(ValueError, match="per-code threshold"):
        M.evaluate(Y, S, threshold=np.full(3, 0.5))
    with pytest.raises(ValueError, match="outside the bins"):
        M.f1_by_frequency(Y, S, [0, 1, 2, 3], bins=(1, 10, float("inf")))
    with pytest.raises(ValueError, match="train_counts must have shape"):
        M.evaluate(Y, S, train_counts=[1, 2])
    with pytest.raises(ValueError, match="bins must be"):
        M.frequency_bin_labels((0, 10, 5))
    with pytest.raises(TypeError):
        M.evaluate(Y, S.astype(str))


def test_k_helpers():
    assert M.default_k(50) == (5,) and M.default_k(8921) == (8, 15) and M.default_k(3) == (3,)
    assert M.k_for_label_space("full") == (8, 15) and M.k_for_label_space("50") == (5,)
    with pytest.raises(ValueError):
        M.k_for_label_space("top50")
    assert list(M.evaluate(Y, S)).count("p@4") == 1  # default k capped at n_codes = 4


def test_evaluate_is_flat_plain_numbers_and_saves(tmp_path):
    y, s = _case("degenerate")
    e = M.evaluate(y, s, train_counts=np.arange(12) * 40)
    assert all(type(v) in (int, float) and math.isfinite(v) for v in e.values())
    reporting.save_metrics(tmp_path, {f"cnn/test/{k}": v for k, v in e.items()}, notebook="t", run="toy")
    assert reporting.load_metrics(tmp_path) == {f"cnn/test/{k}": v for k, v in e.items()}


def test_the_three_macro_f1_definitions_by_hand():
    """CAML's F1 of macro-P and macro-R, the mean per-code F1 over present codes (Edin et al.) and over all codes
    differ on one example; docs/metrics.md says which paper used which."""
    y = np.array([[1, 0, 0], [1, 1, 0]])           # code 2 never gold
    s = np.array([[0.9, 0.9, 0.9], [0.2, 0.9, 0.1]])
    # predicted [1,1,1] / [0,1,0]: c0 (TP 1, pred 1, gold 2), c1 (1, 2, 1), c2 (0, 1, 0)
    # macro-P = (1 + 1/2 + 0)/3 = 1/2, macro-R = (1/2 + 1 + 0)/3 = 1/2 -> CAML 1/2
    # per-code F1 = 2/3, 2/3, 0 -> present (c0, c1) 2/3, all 4/9
    assert M.macro_f1_caml(y, s) == pytest.approx(1 / 2)
    assert M.macro_f1_present(y, s) == pytest.approx(2 / 3)
    assert M.macro_f1_all(y, s) == pytest.approx(4 / 9)
    e = M.evaluate(y, s)
    assert (e["macro_f1_caml"], e["macro_f1_present"], e["macro_f1_all"]) == pytest.approx((1 / 2, 2 / 3, 4 / 9))
    boot = M.bootstrap_ci(y, s, metrics=["macro_f1_all"], n_resamples=5)
    assert boot["macro_f1_all"].estimate == pytest.approx(4 / 9)
