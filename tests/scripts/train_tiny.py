"""Train the tiny task with ``mcanb.train.fit`` in its own process (used by the resume and multi-process tests).

    python tests/scripts/train_tiny.py OUT_DIR [--resume] [--dropout 0.2] [--model bert_hier] ...
    accelerate launch --multi_gpu --num_processes 2 tests/scripts/train_tiny.py OUT_DIR --dropout 0

Set TINY_KILL_AT_FORWARD=n to make the process SIGKILL itself at its n-th training forward pass.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_task import TinyModel, make_data, tiny_bert_hier, tiny_metrics  # noqa: E402

from mcanb.train import TrainConfig, fit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--every-steps", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--n-train", type=int, default=96)
    ap.add_argument("--warmup", default="linear")
    ap.add_argument("--model", choices=("tiny", "bert_hier"), default="tiny")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    train_ds, dev_ds, test_ds = make_data(n_train=args.n_train)
    torch.manual_seed(args.seed)                       # model initialisation
    if args.model == "bert_hier":
        model, optimizer, lr = tiny_bert_hier(dropout=args.dropout), "adamw", 3e-3
    else:
        model, optimizer, lr = TinyModel(dropout=args.dropout), "adam", 0.2
    config = TrainConfig(optimizer=optimizer, lr=lr, num_epochs=args.epochs, patience=None,
                         batch_size=args.batch_size, grad_accum_steps=args.accum, warmup=args.warmup, max_grad_norm=1.0, seed=args.seed,
                         num_threads=1, progress=False, early_stopping_metric="loss",
                         checkpoint_every_steps=args.every_steps,
                         keep_last_checkpoint=True)   # the tests compare the final optimizer and RNG states
    fit(model, train_ds, dev_ds, config, args.out_dir, test_ds=test_ds, metric_fn=tiny_metrics,
        resume=args.resume, extra_params={"script": "train_tiny.py"})
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():   # under `accelerate launch`: leave the process group cleanly
        dist.barrier()                                  # (without it gloo's threads were sometimes torn down at exit:
        dist.destroy_process_group()                    # "terminate called without an active exception", SIGABRT)


if __name__ == "__main__":
    main()
