"""Speed of ``mcanb.metrics`` at MIMIC-III full-code shape, checked against scikit-learn per-code loops.

Run on demand (not a test): ``.venv/bin/python benchmarks/bench_metrics.py`` (about 5 minutes on 2 cores, 4 of them
the floor check of :func:`floor_tests`). Options: ``--docs 3372 --codes 8921 --resamples 1000 --seed 0 --repeats 3
--skip-sklearn --skip-floor``.

Synthetic data: Zipf-like code frequencies (about 15 gold codes per document, rare codes without any
positive), float32 sigmoid scores from a noisy model with a code prior, 10 % of the codes' scores
rounded to 3 decimals (ties), and a second model with a weaker signal for the paired test.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from mcanb import metrics as M


def synthetic(n_docs: int, n_codes: int, seed: int = 0, codes_per_doc: float = 15.0, signal: float = 4.0):
    """(y_true int8, y_score float32) of shape (n_docs, n_codes) with Zipf-like code frequencies and ties."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / (np.arange(n_codes) + 5.0) ** 1.2
    freq *= codes_per_doc / freq.sum()
    freq = np.minimum(freq, 0.6)[rng.permutation(n_codes)]
    y = (rng.random((n_docs, n_codes), dtype=np.float32) < freq).astype(np.int8)
    logit = (np.log(freq / (1 - freq)).astype(np.float32) - 1.0
             + rng.normal(0, 1.5, size=(n_docs, n_codes)).astype(np.float32) + signal * y)
    score = (1 / (1 + np.exp(-logit))).astype(np.float32)
    tied = rng.random(n_codes) < 0.10
    score[:, tied] = np.round(score[:, tied], 3)
    return y, score


def timed(fn, *args, **kw):
    """(result, seconds) of one call, measured with perf_counter."""
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def sklearn_reference(y: np.ndarray, s: np.ndarray, ks, threshold: float = 0.5) -> dict[str, float]:
    """The same numbers with scikit-learn's per-code / per-document functions and plain numpy."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    n, m = y.shape
    pos = y.sum(0)
    aucs = [roc_auc_score(y[:, j], s[:, j]) for j in range(m) if 0 < pos[j] < n]
    pred = s > threshold
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    pc, rc, fc, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    mp, mr = pc.mean(), rc.mean()
    out = {"macro_auc": float(np.mean(aucs)), "micro_auc": roc_auc_score(y.ravel(), s.ravel()),
           "micro_precision": p, "micro_recall": r, "micro_f1": f, "macro_precision": mp, "macro_recall": mr,
           "macro_f1_caml": 2 * mp * mr / (mp + mr), "macro_f1_present": fc[pos > 0].mean()}
    order = np.argsort(-s, axis=1, kind="stable")  # ties: lower code index first, as mcanb
    hits = np.take_along_axis(y, order, axis=1).cumsum(1)
    g = y.sum(1)
    for k in ks:
        out[f"p@{k}"] = float((hits[:, k - 1] / k).mean())
        out[f"r@{k}"] = float(np.where(g > 0, hits[:, k - 1] / np.maximum(g, 1), 0).mean())
    out["r_precision"] = float(np.where(g > 0, hits[np.arange(n), np.maximum(g, 1) - 1] / np.maximum(g, 1), 0).mean())
    out["map"] = float(np.mean([average_precision_score(y[i], s[i]) if g[i] else 0.0 for i in range(n)]))
    return out


def auc_bootstrap(n_resamples: int, seed: int, shapes=((1729, 50, 5.7, 20), (3372, 8921, 15.9, 3))):
    """The paired bootstrap of the AUCs at MIMIC-III's test shapes (top-50 and full codes: documents, codes, gold codes
    per document, resamples timed the plain way), against the plain way: copy each resample's notes and call
    ``macro_auc`` / ``micro_auc`` on both models (timed on a few resamples, scaled to ``n_resamples``). Returns
    (task, seconds) rows."""
    rows = []
    for n_docs, n_codes, per_doc, naive in shapes:
        y, s = synthetic(n_docs, n_codes, seed, codes_per_doc=per_doc)
        _, weak = synthetic(n_docs, n_codes, seed, codes_per_doc=per_doc, signal=3.0)
        rng = np.random.default_rng(seed)
        for metric, fn in (("macro_auc", M.macro_auc), ("micro_auc", M.micro_auc)):
            _, t = timed(M.paired_bootstrap, y, s, weak, metric=metric, n_resamples=n_resamples, seed=seed)
            idx = rng.integers(0, n_docs, size=(naive, n_docs))
            _, t_naive = timed(lambda: [fn(y[i], a[i]) for i in idx for a in (s, weak)])
            plain = t_naive * n_resamples / naive
            rows.append((f"paired_bootstrap {metric}, {n_docs} x {n_codes}", t))
            rows.append((f"  the same by copying resamples (x{plain / t:.1f} slower)", plain))
    return rows


class _TestSplit:
    """The two things ``paired_on_test`` reads of a label space's data, for synthetic test labels."""

    def __init__(self, y: np.ndarray):
        self.y = y

    def hadm_ids(self, split: str) -> np.ndarray:
        return np.arange(len(self.y), dtype=np.int64)

    def multi_hot(self, split: str) -> np.ndarray:
        return self.y.astype(np.uint8)


def floor_tests(n_resamples: int, seed: int, n_docs: int = 3372, n_codes: int = 8921, models: int = 3,
                seeds: int = 2, metrics=("micro_auc", "macro_auc")):
    """Notebook 04's floor check at MIMIC-III's full-code shape: every (model, seed) run against the one floor run,
    by ``mcanb.paired.paired_on_test`` on each AUC: with nothing kept (``KEEP_BYTES = 0``: each test prepares both
    runs, as before 2026-12-07), with the prepared scores kept between tests (the package's way in one process), and
    with every answer read back from the disk store (``paired.STORE``: ``mcanb report`` after the notebooks, or a
    notebook run again). Same p-values all three ways. Returns (task, seconds) rows."""
    import tempfile

    from mcanb import paired as P
    from mcanb.predictions import save_predictions

    y, floor = synthetic(n_docs, n_codes, seed, codes_per_doc=15.9, signal=0.0)
    split, rows = _TestSplit(y), []
    with tempfile.TemporaryDirectory() as tmp:
        def record(name, score):
            return {"predictions": save_predictions(f"{tmp}/{name}.parquet", split.hadm_ids("test"), score)}

        base = record("floor", floor)
        runs = [record(f"m{m}s{s}", synthetic(n_docs, n_codes, seed + 1 + m * seeds + s, codes_per_doc=15.9,
                                              signal=1.0 + m)[1]) for m in range(models) for s in range(seeds)]
        kept, store, found = P.KEEP_BYTES, P.STORE, {}
        try:
            for label, keep, stored in (("nothing kept", 0, "none"), ("prepared scores kept", kept, "none"),
                                        ("answers read from the disk store", kept, "store")):
                P.KEEP_BYTES, P.STORE = keep, Path(tmp) / stored
                P._kept.clear()
                t0 = time.perf_counter()
                found[label] = [P.paired_on_test(split, r, base, m, n_resamples=n_resamples, seed=seed).p_value
                                for m in metrics for r in runs]
                rows.append((f"floor check, {len(runs)} runs x {len(metrics)} AUCs, {label}",
                             time.perf_counter() - t0))
                if stored == "none":
                    shutil.rmtree(P.STORE, ignore_errors=True)    # each timing computes every answer
                else:
                    P._kept.clear()
                    t0 = time.perf_counter()
                    found[label] = [P.paired_on_test(split, r, base, m, n_resamples=n_resamples, seed=seed).p_value
                                    for m in metrics for r in runs]
                    rows[-1] = (rows[-1][0], time.perf_counter() - t0)
        finally:
            P.KEEP_BYTES, P.STORE = kept, store
            P._kept.clear()
        assert found["nothing kept"] == found["prepared scores kept"] == found["answers read from the disk store"], found
        none, kept_s, read = (t for _, t in rows[-3:])
        rows.append((f"  kept / nothing kept: x{none / kept_s:.1f} faster", kept_s))
        rows.append((f"  read back / kept: x{kept_s / read:.0f} faster", read))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=3372)
    ap.add_argument("--codes", type=int, default=8921)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="evaluate() runs (the machine may be shared)")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-floor", action="store_true", help="leave out the full-code floor check (about 4 minutes)")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    y, s = synthetic(args.docs, args.codes, args.seed)
    _, s_weak = synthetic(args.docs, args.codes, args.seed, signal=3.0)
    ks = M.default_k(args.codes)
    print(f"shape {y.shape}, {y.sum() / len(y):.1f} gold codes/doc, {(y.sum(0) == 0).sum()} codes without "
          f"positives, {np.mean(s == np.round(s, 3)):.0%} of scores on a 3-decimal grid (ties)")
    rows = []
    M.evaluate(y[:50], s[:50])  # warm-up (imports, allocator)
    runs = [timed(M.evaluate, y, s, k=ks) for _ in range(args.repeats)]
    res, times = runs[0][0], sorted(t for _, t in runs)
    t_eval = times[0]
    rows.append((f"evaluate (all metrics), best of {args.repeats}", t_eval))
    rows.append((f"evaluate (all metrics), median of {args.repeats}", float(np.median(times))))
    _, t_f64 = timed(M.evaluate, y, s.astype(np.float64) * (1 - 1e-12), k=ks)
    rows.append(("evaluate, float64 scores not float32-exact", t_f64))
    thr, t_fit = timed(M.Threshold.fit, y, s)  # same matrix as "dev": timing only
    rows.append(("Threshold.fit (global, exact)", t_fit))
    _, t_fit_pc = timed(M.Threshold.fit, y, s, per_code=True)
    rows.append(("Threshold.fit (per code)", t_fit_pc))
    names = ["micro_f1", "macro_f1_caml", "macro_f1_present"] + [f"p@{k}" for k in ks]
    ci, t_boot = timed(M.bootstrap_ci, y, s, metrics=names, n_resamples=args.resamples, seed=args.seed)
    rows.append((f"bootstrap_ci, {args.resamples} resamples, {len(names)} metrics", t_boot))
    pair, t_pair = timed(M.paired_bootstrap, y, s, s_weak, metric="micro_f1", n_resamples=args.resamples)
    rows.append((f"paired_bootstrap, {args.resamples} resamples", t_pair))
    auc_rows = auc_bootstrap(args.resamples, args.seed) + ([] if args.skip_floor else
                                                           floor_tests(args.resamples, args.seed))
    if not args.skip_sklearn:
        ref, t_ref = timed(sklearn_reference, y, s, ks)
        rows.append(("scikit-learn per-code loops (same numbers)", t_ref))
        diff = {k: abs(res[k] - ref[k]) for k in ref}
        worst = max(diff, key=diff.get)
        assert diff[worst] < 1e-9, f"{worst}: mcanb {res[worst]} vs sklearn {ref[worst]}"
    print(f"\nload average before/after: {load0:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"\n{'task':<52}{'seconds':>9}")
    for name, sec in rows + auc_rows:
        print(f"{name:<52}{sec:>9.3f}")
    if not args.skip_sklearn:
        print(f"\nagreement with scikit-learn: max |diff| = {diff[worst]:.2e} ({worst}); "
              f"speed-up of evaluate: {t_ref / t_eval:.0f}x")
    print("\n" + ", ".join(f"{k}={res[k]:.4f}" for k in ("micro_auc", "macro_auc", "micro_f1", "macro_f1_caml",
                                                        "macro_f1_present", f"p@{ks[0]}", "map")))
    print(f"threshold fitted {thr.threshold:.4f} (dev micro-F1 {thr.dev_score:.4f}); micro_f1 CI "
          f"[{ci['micro_f1'].low:.4f}, {ci['micro_f1'].high:.4f}]; paired A-B {pair.diff:+.4f} p={pair.p_value:.4f}")


if __name__ == "__main__":
    main()
