"""Where the TF-IDF + logistic-regression baseline spends its time and memory (run on demand; not a test).

    python benchmarks/bench_baselines.py                          # the rehearsal's preprocessed fixture, top-50
    python benchmarks/bench_baselines.py DATA_DIR --label-space 50 --solvers primal dual --codes 10

``DATA_DIR``: a notebook-01 output folder (default ``outputs/rehearsal/01_preprocess/mimic3_caml``, written by
``mcanb study mimic3_50 --rehearse``; the full-scale fixture has MIMIC-III's 8,066 top-50 training notes). For each
liblinear formulation it times the vectoriser (fit on train, transform of dev), the per-code fits (all codes, or the
first ``--codes`` of them, scaled up to all in the projection) and the prediction, prints peak RSS, and how far
the dual's probabilities are from the primal's on dev (the two solve the same problem; they differ by the solver
tolerance only).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mcanb.models.baselines import TfidfLogisticBaseline  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", default="outputs/rehearsal/01_preprocess/mimic3_caml")
    ap.add_argument("--label-space", default="50")
    ap.add_argument("--solvers", nargs="+", default=["primal", "dual"], choices=["primal", "dual"])
    ap.add_argument("--codes", type=int, default=None, help="fit only the first N codes (projection scales up)")
    ap.add_argument("--n-jobs", type=int, default=None)
    args = ap.parse_args()
    from mcanb.paths import resolve
    from mcanb.processed import load

    data = load(resolve(args.data_dir), args.label_space)
    texts = {s: data.frames[s]["text"].tolist() for s in ("train", "dev")}
    y = data.multi_hot("train")
    n_codes = y.shape[1]
    y = y[:, : args.codes] if args.codes else y
    words = sum(t.count(" ") + 1 for t in texts["train"])
    print(f"{args.data_dir} ({args.label_space}): {len(texts['train']):,} training notes, {words / 1e6:.1f} M words, "
          f"{n_codes} codes (fitting {y.shape[1]})")
    probs = {}
    for solver in args.solvers:
        model = TfidfLogisticBaseline(n_jobs=args.n_jobs, dual={"primal": False, "dual": True}[solver])
        t = time.perf_counter()
        features = model.vectorizer.fit_transform(texts["train"])
        vec_s = time.perf_counter() - t
        t = time.perf_counter()
        model.fit_features(features, y)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        probs[solver] = model.predict_proba(texts["dev"])
        pred_s = time.perf_counter() - t
        scale = n_codes / y.shape[1]
        print(f"  {solver:>6}: vectoriser {vec_s:6.1f} s ({features.shape[1]:,} terms, {features.nnz / 1e6:.1f} M "
              f"non-zeros) · {y.shape[1]} fits {fit_s:6.1f} s ({fit_s / y.shape[1]:.2f} s/code; all {n_codes} codes "
              f"~{fit_s * scale:.0f} s) · dev predict {pred_s:5.1f} s ({len(texts['dev'])} notes) · "
              f"peak RSS {_rss_mb():,.0f} MB")
    if len(probs) == 2:
        a, b = probs.values()
        print(f"  dual vs primal on dev: max |Δp| {np.abs(a - b).max():.2e}, same 0.5 decisions "
              f"{np.mean((a > 0.5) == (b > 0.5)):.4%}")


if __name__ == "__main__":
    main()
