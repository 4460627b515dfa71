"""Preprocessing speed and memory at 1 %, 10 % and 100 % of MIMIC-III scale (run on demand, not a test).

    python benchmarks/bench_preprocess.py                      # scales 0.01 0.1 1.0, no word2vec
    python benchmarks/bench_preprocess.py --scales 0.1 --word2vec
    python benchmarks/bench_preprocess.py --scales 1 --input outputs/fixtures/mimic_full   # a fixture already made

For each scale it generates the ``full`` MIMIC-shaped fixture once (cached under ``--root``; generation is
not timed), checks at scale 1.0 that the fixture really has MIMIC-III's size, then runs the whole
preprocessing (read NOTEEVENTS, select, join, tokenise, codes, splits, vocabulary; word2vec off) in a fresh
process and prints wall time per step, CPU seconds (user + sys of the whole process tree: it does not
depend on what else the machine runs, as wall time does), peak memory (the largest sum of PSS over the
process and its tokenising workers, sampled every 0.1 s: pages the workers share with the parent counted
once), the load average, and tokens/s. Target on the 2-core machine: <= 30 s and <= 2 GB at scale 1.0.
``--word2vec`` times word2vec separately (2 workers) on the same documents.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from mcanb import preprocess
cfg = preprocess.PreprocessConfig(input_path=sys.argv[1], out_dir=sys.argv[2], word2vec=False, progress=False)
t = time.perf_counter()
report = preprocess.run(cfg, force=True)
wall = time.perf_counter() - t
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "self_mb": self_kb / 1024, "child_mb": child_kb / 1024,
                  "timings": report["timings_s"], "counts": report["counts"]}))
"""

MIMIC3 = {"admissions": 52726, "notes": 2083180, "text_gb": 3.8, "codes": 8921}


def check_full_size(summary: dict) -> list[str]:
    c = summary["counts"]
    rows = [("admissions with a discharge summary", c["admissions_with_ds"], MIMIC3["admissions"]),
            ("notes (all categories)", c["notes"], MIMIC3["notes"]),
            ("NOTEEVENTS text (GB)", round(c["text_bytes"] / 1e9, 2), MIMIC3["text_gb"]),
            ("distinct codes", c["distinct_codes"], MIMIC3["codes"])]
    out = []
    for name, got, want in rows:
        ok = got is not None and abs(got - want) <= 0.1 * want
        out.append(f"  {name:<38} {got!s:>12} vs MIMIC-III {want!s:>10}  {'ok' if ok else 'OFF'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--root", default="/tmp/mcanb_bench", help="where fixtures and outputs go (needs ~5 GB at 1.0)")
    ap.add_argument("--input", help="a full fixture folder made before (read, never written); one scale only")
    ap.add_argument("--word2vec", action="store_true", help="also time word2vec (2 workers)")
    args = ap.parse_args()
    if args.input and len(args.scales) != 1:
        ap.error("--input is the fixture of one scale: give that scale alone with --scales")
    from mcanb import fixture

    root = Path(args.root)
    print(f"{'scale':>6} {'adm.':>7} {'notes':>9} {'read s':>7} {'token s':>8} {'label+vocab s':>13} "
          f"{'total s':>8} {'CPU s':>6} {'peak MB':>8} {'Mtok/s':>7} {'load':>5}")
    for scale in args.scales:
        raw = Path(args.input) if args.input else root / f"full_{scale:g}"
        t = time.perf_counter()
        if not args.input:
            fixture.ensure(raw, size="full", scale=scale)
        gen = time.perf_counter() - t
        summary = json.loads((raw / "fixture.json").read_text())
        load = os.getloadavg()[0]
        r, cpu, peak = _measure([sys.executable, "-c", CHILD, str(raw.resolve()), str(root / f"out_{scale:g}")])
        tm, c = r["timings"], r["counts"]
        print(f"{scale:>6g} {c['documents']:>7,} {c['notes_total']:>9,} {tm['read']:>7.1f} {tm['tokenise']:>8.1f} "
              f"{tm['labels_and_vocab']:>13.1f} {r['wall']:>8.1f} {cpu:>6.1f} {peak:>8.0f} "
              f"{c['tokens'] / r['wall'] / 1e6:>7.2f} {load:>5.1f}"
              f"   (main process alone peaks at {r['self_mb']:.0f} MB RSS; fixture ready in {gen:.0f} s)")
        if scale == 1.0:
            print("\n".join(check_full_size(summary)))
        if args.word2vec:
            _time_word2vec(root / f"out_{scale:g}")


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += _tree(int(child))
    except OSError:  # gone meanwhile
        pass
    return out


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return total / 1024


def _measure(cmd: list[str]) -> tuple[dict, float, float]:
    """Run ``cmd``; its last stdout line (JSON), its CPU seconds (user + sys, with its workers) and the
    peak PSS of its process tree in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _pss_mb(_tree(proc.pid)))
        time.sleep(0.1)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"preprocessing failed (exit {proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.strip().splitlines()[-1]), cpu, peak


def _time_word2vec(out: Path) -> None:
    import pandas as pd

    from mcanb.embeddings import train_word2vec
    from mcanb.preprocess import PreprocessConfig

    texts = pd.read_parquet(out / "full" / "train.parquet", columns=["text"])["text"].tolist()
    vocab = (out / "vocab.csv").read_text().split("\n")[:-1]
    cfg = PreprocessConfig(input_path="-", out_dir="-", w2v_workers=2)
    t = time.perf_counter()
    train_word2vec(texts, vocab, cfg)
    tokens = sum(t.count(" ") + 1 for t in texts)
    wall = time.perf_counter() - t
    print(f"       word2vec (2 workers, 5 epochs): {wall:.1f} s, {tokens * 5 / wall / 1e6:.2f} M tokens/s")


if __name__ == "__main__":
    main()
