"""Bootstrap intervals and the paired test: vectorised == naive, seeded, sensible widths and p-values."""
from __future__ import annotations

import numpy as np
import pytest

from mcanb import metrics as M
from mcanb.metrics._arrays import Prepared
from mcanb.metrics import bootstrap
from mcanb.metrics.bootstrap import AUCS, THRESHOLDED, Scored

NAMES = list(THRESHOLDED) + ["p@3", "r@3", "r_precision", "map", *AUCS]


def _data(n: int, seed: int = 0, m: int = 30, signal: float = 2.5):
    rng = np.random.default_rng(seed)
    freq = 0.5 / (np.arange(m) + 1.0) ** 0.8
    y = (rng.random((n, m)) < freq).astype(int)
    logit = np.log(freq / (1 - freq)) + signal * y + rng.normal(0, 1.0, (n, m))
    return y, 1 / (1 + np.exp(-logit))


def test_vectorised_resamples_equal_evaluate_on_resampled_documents():
    y, s = _data(60)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 60, size=(4, 60))
    w = np.stack([np.bincount(i, minlength=60) for i in idx]).astype(float)
    samples = Scored(Prepared(y, s), 0.5, NAMES).samples(w)
    for b in range(4):
        want = M.evaluate(y[idx[b]], s[idx[b]], k=3)
        for name in NAMES:
            if name in want:
                assert samples[name][b] == pytest.approx(want[name], abs=1e-12), name


def test_interval_contains_estimate_and_estimate_equals_evaluate():
    y, s = _data(300)
    ci = M.bootstrap_ci(y, s, metrics=NAMES, n_resamples=300, seed=1)
    e = M.evaluate(y, s, k=3)
    for name in NAMES:
        assert ci[name].estimate == pytest.approx(e[name], abs=1e-12), name
        assert ci[name].low <= ci[name].estimate <= ci[name].high, name
        assert ci[name].n_undefined == 0
    flat = ci["micro_f1"].as_dict("micro_f1")
    assert set(flat) == {"micro_f1", "micro_f1_ci_low", "micro_f1_ci_high"}


def test_seeded_and_default_metrics():
    y, s = _data(100)
    a = M.bootstrap_ci(y, s, n_resamples=150, seed=7)
    assert a == M.bootstrap_ci(y, s, n_resamples=150, seed=7)
    assert a != M.bootstrap_ci(y, s, n_resamples=150, seed=8)
    assert list(a) == ["micro_f1", "macro_f1_caml", "macro_f1_present", "p@5"]


def test_narrower_with_more_documents():
    small = M.bootstrap_ci(*_data(100), metrics=["micro_f1", "p@5"], n_resamples=200)
    large = M.bootstrap_ci(*_data(1600), metrics=["micro_f1", "p@5"], n_resamples=200)
    for name in ("micro_f1", "p@5"):
        assert large[name].high - large[name].low < 0.5 * (small[name].high - small[name].low)


def test_paired_detects_better_model_and_not_itself():
    y, s_good = _data(400, seed=0, signal=3.0)
    rng = np.random.default_rng(1)
    s_bad = np.clip(s_good + rng.normal(0, 0.3, s_good.shape), 0, 1)
    res = M.paired_bootstrap(y, s_good, s_bad, metric="micro_f1", n_resamples=500)
    assert res.diff > 0 and res.low > 0 and res.p_value < 0.01
    assert res.diff == pytest.approx(M.micro_f1(y, s_good) - M.micro_f1(y, s_bad))
    rev = M.paired_bootstrap(y, s_bad, s_good, metric="p@5", n_resamples=500)
    assert rev.diff < 0 and rev.p_value > 0.99
    same = M.paired_bootstrap(y, s_good, s_good, metric="macro_f1_caml", n_resamples=200)
    assert same.diff == 0 and same.low == same.high == 0 and same.p_value == 1.0
    two = M.paired_bootstrap(y, s_good, s_bad, n_resamples=500, alternative="two-sided")
    assert two.p_value < 0.01
    assert res.as_dict("a_vs_b/")["a_vs_b/p_value"] == res.p_value


def test_bad_arguments():
    y, s = _data(20)
    with pytest.raises(ValueError, match="cannot bootstrap"):
        M.bootstrap_ci(y, s, metrics=["coverage"])
    with pytest.raises(ValueError, match="n_resamples"):
        M.bootstrap_ci(y, s, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        M.bootstrap_ci(y, s, confidence=95)
    with pytest.raises(ValueError, match="alternative"):
        M.paired_bootstrap(y, s, s, alternative="less")
    with pytest.raises(ValueError, match="shape mismatch"):
        M.paired_bootstrap(y, s, s[:, :3])


def test_auc_resamples_count_each_drawn_note_with_ties_as_evaluate_and_stop_at_a_size(monkeypatch):
    """Scores rounded to one decimal (many ties) and a constant column: each resample's AUCs equal ``evaluate`` on the
    drawn notes themselves, a code that lost its positives in a resample is left out of its macro-AUC, the constant
    most-frequent floor is exactly 0.5 in every resample, a model that ranks the codes beats it with the smallest p,
    and scores whose comparison matrices would pass ``AUC_MAX_BYTES`` are refused with the reason."""
    y, s = _data(40, seed=3, m=12)
    s = np.round(s, 1)
    s[:, 0] = 0.3
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 40, size=(8, 40))
    w = np.stack([np.bincount(i, minlength=40) for i in idx]).astype(float)
    samples = Scored(Prepared(y, s), 0.5, list(AUCS)).samples(w)
    lost = 0
    for b in range(8):
        want = M.evaluate(y[idx[b]], s[idx[b]], k=3)
        lost += want["macro_auc_n_skipped"] > M.evaluate(y, s, k=3)["macro_auc_n_skipped"]
        for name in AUCS:
            assert samples[name][b] == pytest.approx(want[name], abs=1e-12), (name, b)
    assert lost > 0                                   # the rare codes lose their positives in some resamples
    floor = np.tile(y.mean(0), (40, 1))
    assert (Scored(Prepared(y, floor), 0.5, ["macro_auc"]).samples(w)["macro_auc"] == 0.5).all()
    test = M.paired_bootstrap(y, s, floor, metric="macro_auc", n_resamples=200)
    assert test.estimate_b == 0.5 and test.diff > 0.2 and test.p_value == pytest.approx(1 / 201)
    n_gold = int(y.sum())
    assert bootstrap.auc_bytes(40, n_gold) == 40 * n_gold + 8 * 40 * 40
    monkeypatch.setattr(bootstrap, "AUC_MAX_BYTES", bootstrap.auc_bytes(40, n_gold) - 1)
    with pytest.raises(ValueError, match=f"AUCs of 40 documents with {n_gold} gold codes: .* over AUC_MAX_BYTES"):
        M.paired_bootstrap(y, s, floor, metric="micro_auc")
    assert M.paired_bootstrap(y, s, floor, metric="map", n_resamples=10).p_value < 1      # the others still are


def test_auc_resamples_with_more_codes_than_notes_as_at_full_codes():
    """MIMIC-III's full-code shape in small: more codes than notes, most codes rare or absent, float32 scores with
    ties across codes. Each resample's AUCs equal ``evaluate`` on the drawn notes, and the memory the comparison
    matrices take is what ``auc_bytes`` says."""
    y, s = _data(30, seed=7, m=400, signal=1.5)
    s = np.round(s, 2).astype(np.float32)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 30, size=(5, 30))
    w = np.stack([np.bincount(i, minlength=30) for i in idx]).astype(float)
    model = Scored(Prepared(y, s), 0.5, list(AUCS))
    samples = model.samples(w)
    for b in range(5):
        want = M.evaluate(y[idx[b]], s[idx[b]], k=5)
        assert want["macro_auc_n_skipped"] > 200                       # most codes have no positive in the draw
        for name in AUCS:
            assert samples[name][b] == pytest.approx(want[name], abs=1e-12), (name, b)
    held = model.aucs["macro_auc"].A.nbytes + model.aucs["micro_auc"].M.nbytes
    assert held == bootstrap.auc_bytes(30, int(y.sum()))


def test_paired_tests_of_saved_runs_prepare_and_resample_each_run_once(tmp_path, monkeypatch):
    """A notebook tests several runs against one floor: each run's scores are prepared and resampled once per
    (labels, scores, threshold, metric), kept by content, so a rewritten prediction file is never answered from
    what was kept, and the answers are those of ``paired_bootstrap`` on the arrays."""
    from collections import OrderedDict

    from mcanb import paired as P
    from mcanb.predictions import save_predictions

    class Split:
        def __init__(self, y):
            self.y = y

        def hadm_ids(self, split):
            return np.arange(len(self.y))

        def multi_hot(self, split):
            return self.y

    monkeypatch.setattr(P, "_kept", OrderedDict())
    monkeypatch.setattr(P, "STORE", tmp_path / "store")      # nothing stored on disk yet
    y, s = _data(60, seed=5, m=8)
    data, floor_scores = Split(y), np.tile(y.mean(0), (60, 1))
    weak = np.clip(s + np.random.default_rng(9).normal(0, 0.4, s.shape), 0, 1)

    def run(name, scores):
        return {"predictions": str(save_predictions(tmp_path / f"{name}.parquet", np.arange(60), scores))}

    floor, a, b = run("floor", floor_scores), run("a", s), run("b", weak)
    want = {metric: [M.paired_bootstrap(y, sc.astype(np.float32), floor_scores.astype(np.float32), metric=metric,
                                        n_resamples=150, seed=3) for sc in (s, weak)]
            for metric in ("micro_auc", "micro_f1")}
    calls = {"prepared": 0, "resampled": 0}
    prepare, samples = P.scored, Scored.samples

    def counted_prepare(*args, **kw):
        calls["prepared"] += 1
        return prepare(*args, **kw)

    def counted_samples(self, w):
        calls["resampled"] += len(w) > 1            # a block of resamples, not the point estimate
        return samples(self, w)

    monkeypatch.setattr(P, "scored", counted_prepare)
    monkeypatch.setattr(Scored, "samples", counted_samples)
    for metric in ("micro_auc", "micro_f1"):
        assert [P.paired_on_test(data, r, floor, metric, n_resamples=150, seed=3) for r in (a, b)] == want[metric]
    assert calls == {"prepared": 6, "resampled": 12}   # 3 runs x 2 metrics; 2 blocks of 100 and 50 resamples each
    run("a", s[::-1].copy())                           # the same file, new scores
    assert P.paired_on_test(data, a, floor, "micro_f1", n_resamples=150, seed=3) == M.paired_bootstrap(
        y, s[::-1].astype(np.float32), floor_scores.astype(np.float32), n_resamples=150, seed=3)
    assert calls["prepared"] == 7
    monkeypatch.setattr(P, "KEEP_BYTES", 1)            # nothing fits: only the newest is kept
    P.paired_on_test(data, b, a, "map", n_resamples=10)
    assert len(P._kept) == 1


def test_a_paired_test_is_stored_by_what_it_was_computed_from(tmp_path, monkeypatch):
    """paired_on_test keeps each answer on disk (paired.STORE): asked again, in this process or the next (the
    report after the notebooks), it reads no prediction file; another file content, threshold, resample count or
    code version computes afresh, and an unreadable stored answer is computed again."""
    from mcanb import identity
    from mcanb import paired as P
    from mcanb.predictions import save_predictions

    class Split:
        def hadm_ids(self, split):
            return np.arange(50)

        def multi_hot(self, split):
            return y

    monkeypatch.setattr(P, "STORE", tmp_path / "store")
    y, s = _data(50, seed=2, m=6)
    a = {"predictions": str(save_predictions(tmp_path / "a.parquet", np.arange(50), s)), "dev_threshold": 0.4}
    b = {"predictions": str(save_predictions(tmp_path / "b.parquet", np.arange(50), s[::-1].copy())),
         "dev_threshold": 0.6}
    first = P.paired_on_test(Split(), a, b, "micro_f1@dev_threshold", n_resamples=40)
    assert len(list((tmp_path / "store").glob("*.json"))) == 1
    load = P.load_predictions
    monkeypatch.setattr(P, "load_predictions", lambda path: pytest.fail(f"read {path} for a stored answer"))
    assert P.paired_on_test(Split(), a, b, "micro_f1@dev_threshold", n_resamples=40) == first
    monkeypatch.setattr(P, "load_predictions", load)
    assert first == M.paired_bootstrap(y, s.astype(np.float32), s[::-1].astype(np.float32), metric="micro_f1",
                                       n_resamples=40, threshold_a=0.4, threshold_b=0.6)
    assert P.paired_on_test(Split(), {**a, "dev_threshold": 0.3}, b, "micro_f1@dev_threshold", n_resamples=40) != first
    save_predictions(tmp_path / "a.parquet", np.arange(50), s[::-1].copy())     # the same file, new scores
    flipped = s[::-1].astype(np.float32)
    assert P.paired_on_test(Split(), a, b, "micro_f1@dev_threshold", n_resamples=40) == M.paired_bootstrap(
        y, flipped, flipped, metric="micro_f1", n_resamples=40, threshold_a=0.4, threshold_b=0.6) != first
    assert P.paired_on_test(Split(), b, b, "micro_f1", n_resamples=41).n_resamples == 41
    with monkeypatch.context() as m:
        m.setattr(identity, "code_version", lambda *roots, **kw: "edited")
        stored = len(list((tmp_path / "store").glob("*.json")))
        P.paired_on_test(Split(), b, b, "micro_f1", n_resamples=41)
        assert len(list((tmp_path / "store").glob("*.json"))) == stored + 1
    for f in (tmp_path / "store").glob("*.json"):
        f.write_text("{damaged")
    assert P.paired_on_test(Split(), b, b, "micro_f1", n_resamples=41).n_resamples == 41


def test_pruning_drops_the_stored_paired_tests_whose_prediction_files_are_gone(tmp_path, monkeypatch):
    """`mcanb runs --prune` removes a training run, then the stored answers that read its predictions (paired.prune):
    an answer of two runs that are still there stays, and so does it when the outputs folder moves (each answer names
    its files relative to the store); a dry run counts a run it would remove as gone and removes nothing; an answer
    in the format before answers named their files is removed."""
    import shutil

    from mcanb import paired as P
    from mcanb.predictions import save_predictions

    class Split:
        def hadm_ids(self, split):
            return np.arange(30)

        def multi_hot(self, split):
            return y

    outputs = tmp_path / "outputs"
    monkeypatch.setattr(P, "STORE", outputs / ".cache" / "paired")
    y, s = _data(30, seed=3, m=4)
    run = {}
    for name, scores in (("a", s), ("b", s[::-1].copy()), ("c", s ** 2)):
        folder = outputs / "runs" / name / "seed13"
        folder.mkdir(parents=True)
        run[name] = {"predictions": str(save_predictions(folder / "predictions_test.parquet", np.arange(30), scores)),
                     "dev_threshold": 0.5}
    P.paired_on_test(Split(), run["a"], run["b"], "micro_f1", n_resamples=20)
    P.paired_on_test(Split(), run["a"], run["c"], "micro_f1", n_resamples=20)
    (P.STORE / "0123456789abcdef.json").write_text('{"p_value": 0.5}')          # an answer of the earlier format
    assert len(list(P.STORE.glob("*.json"))) == 3
    moved = tmp_path / "moved"
    shutil.copytree(outputs, moved)
    assert P.prune(moved / ".cache" / "paired", dry_run=True) == [moved / ".cache" / "paired" / "0123456789abcdef.json"]
    would = P.prune(P.STORE, dry_run=True, removed=[outputs / "runs" / "c"])
    assert len(would) == 2 and len(list(P.STORE.glob("*.json"))) == 3
    shutil.rmtree(outputs / "runs" / "c")
    assert sorted(P.prune()) == sorted(would) and len(list(P.STORE.glob("*.json"))) == 1
    monkeypatch.setattr(P, "load_predictions", lambda path: pytest.fail(f"read {path} for a stored answer"))
    P.paired_on_test(Split(), run["a"], run["b"], "micro_f1", n_resamples=20)   # the answer that stayed is read
